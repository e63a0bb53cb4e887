"""What a model graph may do when it runs: compute, and nothing else.

A SavedModel or a TF.js graph is a program. Before any of it is loaded or run, every
node of the graph and of every function in its library is checked against ALLOWED_OPS
(toolkit/graph/ops.py), an allow-list of pure computation (maths, neural-network
kernels, array and control-flow ops, variables, seeded randomness). Anything else
(files, processes, the network, Python callbacks, datasets, debug sinks, memory-mapped
constants) is refused with exit 4, naming the op and where it sits, unless the caller
passes `unsafe=True`, which turns the refusal into a warning (CnnxWarning).

Two ops touch files in every SavedModel and are allowed only in their own place: the
checkpoint writer and reader (SaveV2, RestoreV2, MergeV2Checkpoints, and TF1's
Save/Restore), which TensorFlow's loader runs with the variables folder as their path.
They pass only when that path comes from the saver's filename tensor (the
`saver_def`), possibly with a constant suffix that cannot climb out of it ("_temp/part"),
and when the functions holding them are called from nowhere else. PrintV2 passes only
when it prints to stderr, stdout or the log, never to a file.

The checks read the protobuf (or the JSON) only: nothing is deserialized into
TensorFlow objects and nothing runs.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.core.limits import MAX_GRAPH_NODES, require_regular_tree
from toolkit.errors import CnnxWarning, ModelError
from toolkit.graph.ops import (
    ALLOWED_OPS,
    CALL_OPS,
    CHECKPOINT_OPS,
    PRINT_OPS,
    PRINT_STREAMS,
    reason,
)
from toolkit.graph.savedmodel import read_savedmodel_proto

# How far the checker follows a file name back through Identity / StringJoin / Pack.
_MAX_PATH_STEPS = 64


@dataclass(frozen=True)
class Finding:
    """One op the policy refuses, and where it sits."""

    op: str
    where: str  # "function __inference_serve_12, node WriteFile" or "graph, node save/Save"
    reason: str

    def text(self) -> str:
        return f"{self.op} ({self.reason}) in {self.where}"


# --- entry points ------------------------------------------------------------------------


def check_savedmodel(path: Path, *, unsafe: bool = False) -> None:
    """Refuse (ModelError, exit 4) a SavedModel whose graph does more than compute."""
    path = Path(path)
    require_regular_tree(path, "SavedModel")
    meta_graphs = read_savedmodel_proto(path)
    enforce(savedmodel_findings(meta_graphs), f"SavedModel {path}", unsafe=unsafe)


def check_tfjs_graph(model_json: Path, data: dict[str, Any], *, unsafe: bool = False) -> None:
    """Refuse a TF.js model.json (already parsed: `data`) whose graph does more than compute."""
    enforce(tfjs_findings(data), f"TF.js model {model_json}", unsafe=unsafe)


def enforce(findings: list[Finding], what: str, *, unsafe: bool) -> None:
    if not findings:
        return
    shown = "; ".join(f.text() for f in findings[:3])
    more = f" and {len(findings) - 3} more" if len(findings) > 3 else ""
    if unsafe:
        warnings.warn(
            CnnxWarning(f"{what} runs ops outside the safe list under --unsafe: {shown}{more}"),
            stacklevel=2,
        )
        return
    raise ModelError(
        f"{what} holds ops that are not pure computation: {shown}{more}",
        "cnnx runs only graphs that compute; pass --unsafe only if you trust where the "
        "model came from",
    )


# --- SavedModel graphs ------------------------------------------------------------------


@dataclass
class _Scope:
    """A graph body: the top-level graph or one function of the library."""

    name: str  # "graph" or "function NAME"
    nodes: dict[str, Any]
    args: list[str]  # function input names; at top level, the saver's filename node

    def where(self, node: Any) -> str:
        return f"{self.name}, node {node.name}"


def savedmodel_findings(meta_graphs: list[Any]) -> list[Finding]:
    findings: list[Finding] = []
    for graph in meta_graphs:
        graph_def = graph.graph_def
        total = len(graph_def.node) + sum(len(f.node_def) for f in graph_def.library.function)
        if total > MAX_GRAPH_NODES:
            raise ModelError(
                f"the graph has {total:,} nodes, more than the limit of {MAX_GRAPH_NODES:,}",
                "cnnx refuses graphs of absurd size",
            )
        library = {f.signature.name: f for f in graph_def.library.function}
        filename = graph.saver_def.filename_tensor_name.split(":")[0]
        top = _Scope("graph", {n.name: n for n in graph_def.node}, [filename] if filename else [])
        scopes = [top] + [
            _Scope(
                f"function {name}",
                {n.name: n for n in f.node_def},
                [a.name for a in f.signature.input_arg],
            )
            for name, f in library.items()
        ]
        for scope in scopes:
            findings += _op_findings(scope.nodes.values(), scope, library)
        findings += _checkpoint_findings(graph, top, scopes[1:], library)
    return findings


def _op_findings(nodes: Iterable[Any], scope: _Scope, library: dict[str, Any]) -> list[Finding]:
    found = []
    for node in nodes:
        op = node.op
        if op in ALLOWED_OPS or op in CHECKPOINT_OPS or op in library:
            continue
        if op in PRINT_OPS:
            stream = _attr_string(node, "output_stream") or "stderr"
            if stream in PRINT_STREAMS:
                continue
            found.append(Finding(op, scope.where(node), f"prints to {stream!r}"))
            continue
        found.append(Finding(op, scope.where(node), reason(op)))
    return found


def _checkpoint_findings(
    graph: Any, top: _Scope, functions: list[_Scope], library: dict[str, Any]
) -> list[Finding]:
    """Checkpoint ops must write and read only where the saver's filename tensor points."""
    found: list[Finding] = []
    by_name = {scope.name[len("function ") :]: scope for scope in functions}
    # For each function: which of its arguments flow into a checkpoint op's file name.
    path_args: dict[str, set[str]] = {name: set() for name in by_name}
    for scope in [top, *functions]:
        for node in scope.nodes.values():
            for index in CHECKPOINT_OPS.get(node.op, ()):
                roots = _path_roots(_data_inputs(node), index, scope)
                if roots is None:
                    found.append(Finding(node.op, scope.where(node), _PATH_REASON))
                elif scope is not top:
                    path_args[scope.name[len("function ") :]].update(roots)
    # Propagate to callers until nothing changes: a caller must pass a path that is
    # itself rooted in the saver's filename tensor (or in its own path arguments).
    callers = _call_sites([top, *functions], library)
    pending = [name for name, args in path_args.items() if args]
    checked: set[tuple[str, str, str]] = set()
    while pending:
        callee = pending.pop()
        sites = callers.get(callee, [])
        if not sites:
            found.append(
                Finding("checkpoint I/O", f"function {callee}", "file access no saver calls")
            )
            continue
        arg_names = by_name[callee].args
        for scope, node in sites:
            if node.op not in CALL_OPS and node.op != callee:
                found.append(Finding(node.op, scope.where(node), "passes a file name to a branch"))
                continue
            inputs = _data_inputs(node)
            for arg in sorted(path_args[callee]):
                key = (scope.name, node.name, arg)
                if key in checked:
                    continue
                checked.add(key)
                index = arg_names.index(arg)
                roots = _path_roots(inputs, index, scope)
                if roots is None:
                    found.append(Finding(node.op, scope.where(node), _PATH_REASON))
                elif scope is not top:
                    name = scope.name[len("function ") :]
                    if not roots <= path_args[name]:
                        path_args[name] |= roots
                        pending.append(name)
    found += _saver_reachable_from_entries(graph, top, path_args, library)
    return found


_PATH_REASON = "a file name that is not the saver's variables path"


def _saver_reachable_from_entries(
    graph: Any, top: _Scope, path_args: dict[str, set[str]], library: dict[str, Any]
) -> list[Finding]:
    """Top-level checkpoint nodes must run only as the saver: never as an ancestor of a
    signature's tensors or of an init op (which the loader runs without the saver's path)."""
    entries: list[str] = []
    for signature in graph.signature_def.values():
        for tensor in [*signature.inputs.values(), *signature.outputs.values()]:
            entries.append(tensor.name)
    for key in ("saved_model_main_op", "legacy_init_op", "init_op", "table_initializer"):
        if key in graph.collection_def:
            entries += list(graph.collection_def[key].node_list.value)
    saver_ops = {
        name
        for name, node in top.nodes.items()
        if node.op in CHECKPOINT_OPS or path_args.get(_called(node, library) or "", set())
    }
    found = []
    for name in _ancestors(entries, top.nodes):
        if name in saver_ops:
            node = top.nodes[name]
            found.append(Finding(node.op, top.where(node), "file access run outside the saver"))
    return found


def _ancestors(entries: list[str], nodes: dict[str, Any]) -> set[str]:
    seen: set[str] = set()
    stack = [_node_name(e) for e in entries]
    while stack:
        name = stack.pop()
        if name in seen or name not in nodes:
            continue
        seen.add(name)
        stack.extend(_node_name(i) for i in nodes[name].input)
    return seen


def _call_sites(
    scopes: list[_Scope], library: dict[str, Any]
) -> dict[str, list[tuple[_Scope, Any]]]:
    """Function name -> every (scope, node) that calls it or names it in an attribute."""
    sites: dict[str, list[tuple[_Scope, Any]]] = {}
    for scope in scopes:
        for node in scope.nodes.values():
            for name in _functions_named(node, library):
                sites.setdefault(name, []).append((scope, node))
    return sites


def _functions_named(node: Any, library: dict[str, Any]) -> Iterator[str]:
    if node.op in library:
        yield node.op
    for value in node.attr.values():
        if value.HasField("func"):
            yield value.func.name
        elif value.HasField("list"):
            yield from (f.name for f in value.list.func)


def _called(node: Any, library: dict[str, Any]) -> str | None:
    if node.op in library:
        return str(node.op)
    if node.op in CALL_OPS and "f" in node.attr:
        return str(node.attr["f"].func.name)
    return None


def _path_roots(inputs: list[str], index: int, scope: _Scope) -> set[str] | None:
    """The scope arguments a file name input derives from, or None when it derives from
    anything else (a constant, an op result) or climbs out with '..'."""
    if index >= len(inputs):
        return None
    roots: set[str] = set()
    stack = [(inputs[index], 0)]
    while stack:
        ref, steps = stack.pop()
        if steps > _MAX_PATH_STEPS:
            return None
        name = _node_name(ref)
        if name in scope.args:
            roots.add(name)
            continue
        node = scope.nodes.get(name)
        if node is None:
            return None
        data = _data_inputs(node)
        if node.op in ("Identity", "Snapshot", "ShardedFilename") and data:
            stack.append((data[0], steps + 1))
        elif node.op == "StringJoin" and data:
            if not all(_safe_suffix(ref, scope) for ref in data[1:]):
                return None
            stack.append((data[0], steps + 1))
        elif node.op == "Pack" and data:
            stack.extend((ref, steps + 1) for ref in data)
        else:
            return None
    return roots


def _safe_suffix(ref: str, scope: _Scope, depth: int = 0) -> bool:
    """A constant string (or a Select between two) that cannot leave the folder."""
    node = scope.nodes.get(_node_name(ref))
    if node is None or depth > 4:
        return False
    data = _data_inputs(node)
    if node.op in ("Select", "SelectV2") and len(data) == 3:
        return all(_safe_suffix(r, scope, depth + 1) for r in data[1:])
    if node.op == "Identity" and data:
        return _safe_suffix(data[0], scope, depth + 1)
    if node.op != "Const" or "value" not in node.attr:
        return False
    values = [v.decode("utf-8", "replace") for v in node.attr["value"].tensor.string_val]
    return all(".." not in v and not v.startswith("/") and "\x00" not in v for v in values)


def _data_inputs(node: Any) -> list[str]:
    return [str(i) for i in node.input if not str(i).startswith("^")]


def _node_name(ref: str) -> str:
    return ref.lstrip("^").split(":")[0]


def _attr_string(node: Any, key: str) -> str | None:
    if key not in node.attr:
        return None
    raw = node.attr[key].s
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


# --- TF.js graphs -------------------------------------------------------------------------


def tfjs_findings(data: dict[str, Any]) -> list[Finding]:
    """Ops of a TF.js graph model (topology, its function library and its initializer)."""
    found: list[Finding] = []
    total = 0
    for section in ("modelTopology", "modelInitializer"):
        graph = data.get(section)
        if not isinstance(graph, dict):
            continue
        bodies: list[tuple[str, Any]] = [(f"{section}", graph.get("node"))]
        library = graph.get("library")
        functions = library.get("function") if isinstance(library, dict) else None
        names: set[str] = set()
        for function in functions if isinstance(functions, list) else []:
            if not isinstance(function, dict):
                continue
            signature = function.get("signature")
            name = str(signature.get("name", "?")) if isinstance(signature, dict) else "?"
            names.add(name)
            bodies.append((f"{section} function {name}", function.get("nodeDef")))
        for where, nodes in bodies:
            for node in nodes if isinstance(nodes, list) else []:
                total += 1
                if total > MAX_GRAPH_NODES:
                    raise ModelError(
                        f"the graph has more than {MAX_GRAPH_NODES:,} nodes",
                        "cnnx refuses graphs of absurd size",
                    )
                op = node.get("op") if isinstance(node, dict) else None
                if isinstance(op, str) and (op in ALLOWED_OPS or op in names):
                    continue
                name = node.get("name", "?") if isinstance(node, dict) else "?"
                found.append(Finding(str(op), f"{where}, node {name}", reason(str(op))))
    return found
