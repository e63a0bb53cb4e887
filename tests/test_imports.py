"""The layers of toolkit/ and exporters/ (docs/architecture.md), as an allow-list.

Every import counts, at module level, inside functions and under TYPE_CHECKING. LAYERS
ranks every package and top-level module from the ground up; a module may import its
own package and anything ranked below it, nothing above, and a module that belongs to
no rank fails until it is given one. No import cycle either, between modules."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("toolkit", "exporters")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "templates" in path.parts:  # bundle files, run on the device, not imported
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The module of ours that `import name` loads (a package for its attribute)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> set[str]:
    """Our modules that `module` imports anywhere in its text."""
    path = MODULES[module]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module if path.name == "__init__.py" else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{base}".rstrip(".")
            # `from package import submodule` imports the submodule.
            names = [
                f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES
            ]
            names = names or [base]
        else:
            continue
        found.update(t for t in map(_resolve, names) if t and t != module)
    return found


GRAPH = {module: imports_of(module) for module in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), plus self-loops."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_detector_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    # It reads type-only and function-level imports: the report reads rows as plain data.
    assert "toolkit.measure.rows" not in GRAPH["toolkit.bench.report"]
    assert "toolkit.runtimes" in GRAPH["toolkit.measure.matrix"]
    assert "toolkit.bench.run" in GRAPH["toolkit.cli.tables"]  # under TYPE_CHECKING only


def test_no_import_cycle_in_toolkit_and_exporters() -> None:
    assert len(GRAPH) > 50
    assert cycles(GRAPH) == []


# From the ground up. A module imports inside its own package or downward only.
LAYERS = (
    "toolkit",  # the package itself: __version__
    "toolkit.errors",
    "toolkit.core",
    "exporters",
    "toolkit.data",
    "toolkit.manifest",
    "toolkit.graph",
    "toolkit.web",
    "toolkit.sources",
    "toolkit.train",
    "toolkit.export",
    "toolkit.runtimes",
    "toolkit.measure",
    "toolkit.autoquant",
    "toolkit.packaging",
    "toolkit.remote",
    "toolkit.bench",
    "toolkit.predictor",
    "toolkit.info",
    "toolkit.doctor",
    "toolkit.api",
    "toolkit.demo",
    "toolkit.cli",
    "toolkit.__main__",
)


def layer_of(module: str, layers: tuple[str, ...] = LAYERS) -> str | None:
    """The rank a module belongs to: its package's, or its own (the root only itself)."""
    owners = [
        unit
        for unit in layers
        if module == unit or (unit != "toolkit" and module.startswith(unit + "."))
    ]
    return max(owners, key=len, default=None)


def violations(graph: dict[str, set[str]], layers: tuple[str, ...] = LAYERS) -> list[str]:
    """Each module without a rank, and each import of a higher rank, in words."""
    rank = {unit: index for index, unit in enumerate(layers)}
    found = []
    for module in sorted(graph):
        own = layer_of(module, layers)
        if own is None:
            found.append(f"{module} belongs to no layer")
            continue
        for target in sorted(graph[module]):
            theirs = layer_of(target, layers)
            if theirs is None or rank[theirs] > rank[own]:
                found.append(f"{module} imports {target}, above it")
    return found


def test_the_rule_refuses_an_upward_import_and_a_module_with_no_rank() -> None:
    upward = {"toolkit.core.atomic": {"toolkit.bench.run"}, "toolkit.bench.run": set()}
    assert violations(upward) == ["toolkit.core.atomic imports toolkit.bench.run, above it"]
    assert violations({"toolkit.bench.run": {"toolkit.core.atomic"}}) == []
    assert violations({"toolkit.extras": set()}) == ["toolkit.extras belongs to no layer"]
    # Inside a package any direction is allowed; the root is its own rank, not a prefix.
    assert violations({"toolkit.bench.gates": {"toolkit.bench.report"}}) == []
    assert layer_of("toolkit.errors") == "toolkit.errors"
    assert layer_of("toolkit.toolbox") is None


def test_every_import_goes_downward() -> None:
    assert violations(GRAPH) == []


def test_the_report_reads_plain_data() -> None:
    """The report and its plots take the report dict: nothing of bench, measure or the
    runtimes, so a row measured elsewhere reports the same."""
    for module in ("toolkit.bench.report", "toolkit.bench.plots"):
        allowed = {"toolkit.errors", "exporters.registry", "toolkit.bench.plots"}
        outside = {t for t in GRAPH[module] if layer_of(t) != "toolkit.core"} - allowed
        assert not outside, f"{module} imports {sorted(outside)}"


def test_exporters_import_only_core_and_errors() -> None:
    for module in (m for m in GRAPH if layer_of(m) == "exporters"):
        outside = {t for t in GRAPH[module] if layer_of(t) not in ("exporters", "toolkit.core")}
        assert outside <= {"toolkit.errors"}, f"{module} imports {sorted(outside)}"


# --- one public seam per module: no `_private` name crosses a module boundary ----------

# Tests may reach into a module they unit-test (a fault hook, a stand-in), not import
# its private names; the library and the benchmarks do neither.
CHECKED = (*PACKAGES, "benchmarks")


def private_uses(path: Path, tree: ast.AST, *, reads: bool = True) -> list[str]:
    """`from ours import _name`, and (with `reads`) `module._name` on a module of ours."""
    modules: set[str] = set()  # local names bound to a module of ours
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PACKAGES:
            for alias in node.names:
                if f"{node.module}.{alias.name}" in MODULES:
                    modules.add(alias.asname or alias.name)
                elif alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{path}:{node.lineno} imports {node.module}.{alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PACKAGES:
                    modules.add(alias.asname or alias.name.split(".")[0])
    for node in ast.walk(tree) if reads else ():
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            found.append(f"{path}:{node.lineno} reads {node.value.id}.{node.attr}")
    return found


def test_the_seam_check_sees_both_forms() -> None:
    tree = ast.parse("from toolkit.core import atomic\nfrom toolkit.api import _model\natomic._x")
    assert private_uses(Path("t.py"), tree) == [
        "t.py:2 imports toolkit.api._model",
        "t.py:3 reads atomic._x",
    ]


def test_no_private_name_is_used_from_another_module() -> None:
    found = []
    for folder in (*CHECKED, "tests"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "templates" in path.parts:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            found += private_uses(path.relative_to(ROOT), tree, reads=folder in CHECKED)
    assert found == []


def test_tflite_ops_are_read_in_one_module() -> None:
    """LiteRT lists a model's ops only through a private method: one module calls it."""
    callers = {
        path.relative_to(ROOT).as_posix()
        for folder in PACKAGES
        for path in (ROOT / folder).rglob("*.py")
        if "_get_ops_details" in path.read_text(encoding="utf-8")
    }
    assert callers == {"exporters/tflite_inspect.py"}
