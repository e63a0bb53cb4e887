"""No import cycle anywhere in toolkit/ and exporters/: every import counts, at module
level, inside functions and under TYPE_CHECKING, and so do the stage rules of
docs/architecture.md (the report and the stages before it never import a later one)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

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


# Which stage may import which (docs/architecture.md): a module never imports a stage
# that comes after it in the data flow.
FORBIDDEN = {
    "exporters": (
        "toolkit.cli",
        "toolkit.runtimes",
        "toolkit.measure.matrix",
        "toolkit.bench.run",
        "toolkit.measure.verify",
        "toolkit.bench.report",
        "toolkit.packaging",
    ),
    "toolkit.runtimes": (
        "toolkit.measure.matrix",
        "toolkit.bench.run",
        "toolkit.measure.verify",
        "toolkit.bench.report",
        "toolkit.cli",
        "toolkit.packaging",
    ),
    "toolkit.measure.matrix": (
        "toolkit.bench.run",
        "toolkit.measure.verify",
        "toolkit.bench.report",
        "toolkit.cli",
    ),
    "toolkit.measure.rows": (
        "toolkit.measure.matrix",
        "toolkit.bench.run",
        "toolkit.measure.verify",
        "toolkit.bench.report",
    ),
    "toolkit.bench.speed_probe": (
        "toolkit.bench.run",
        "toolkit.measure.verify",
        "toolkit.bench.report",
        "toolkit.cli",
    ),
    "toolkit.bench.report": (
        "toolkit.bench.run",
        "toolkit.measure.verify",
        "toolkit.measure.matrix",
        "toolkit.measure.rows",
        "toolkit.runtimes",
        "toolkit.cli",
        "toolkit.bench.gates",
    ),
    "toolkit.bench.plots": (
        "toolkit.bench.run",
        "toolkit.measure.verify",
        "toolkit.measure.matrix",
        "toolkit.measure.rows",
        "toolkit.runtimes",
        "toolkit.cli",
    ),
    "toolkit.packaging": (
        "toolkit.bench.run",
        "toolkit.measure.verify",
        "toolkit.bench.report",
        "toolkit.cli",
    ),
    "toolkit.remote": (
        "toolkit.measure.matrix",
        "toolkit.bench.run",
        "toolkit.measure.verify",
        "toolkit.bench.report",
        "toolkit.cli",
    ),
}
LIBRARY = [m for m in MODULES if not m.startswith("toolkit.cli") and m != "toolkit.__main__"]


@pytest.mark.parametrize("prefix", sorted(FORBIDDEN))
def test_stages_import_only_earlier_stages(prefix: str) -> None:
    for module in (m for m in MODULES if m == prefix or m.startswith(prefix + ".")):
        bad = {
            t for t in GRAPH[module] for f in FORBIDDEN[prefix] if t == f or t.startswith(f + ".")
        }
        assert not bad, f"{module} imports {sorted(bad)}"


def test_the_library_never_imports_the_cli() -> None:
    for module in LIBRARY:
        assert not any(t.startswith("toolkit.cli") for t in GRAPH[module]), module
