"""What an ONNX graph may hold before ONNX Runtime loads it: standard operators, and
weights inside its own folder.

An ONNX model names each operator by (domain, op type). The standard domains (`""` or
`ai.onnx`, and `ai.onnx.ml`) are operators every runtime implements from the spec; any
other domain is a custom operator, code registered by whoever ships it (a shared
library, or ONNX Runtime's contrib ops that only some builds carry), and is refused
with exit 4 unless `unsafe=True` (then a CnnxWarning). Weights stored as external data
name a file by a path: it must be relative, stay inside the model's folder and be a
regular file, whatever `unsafe` says (a path out of the folder reads another file).

The protobuf is read with `onnx.load(..., load_external_data=False)`: nothing runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from toolkit.core.limits import MAX_GRAPH_NODES, require_regular_file
from toolkit.errors import ModelError, RuntimeUnavailable
from toolkit.graph.policy import Finding, enforce

STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml"})
_CUSTOM = "a custom-op domain: code outside the ONNX standard"


def check_onnx(path: Path, *, unsafe: bool = False) -> None:
    """Refuse (ModelError, exit 4) an ONNX model with custom operators or external data
    outside its folder."""
    path = Path(path)
    require_regular_file(path, "ONNX model")
    try:
        import onnx
    except ImportError:
        raise RuntimeUnavailable(
            "onnx is not installed", "install it: pip install 'cnnx[onnx]' (make setup)"
        ) from None
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # protobuf's DecodeError, OSError, ...
        raise ModelError(f"{path} is not a readable ONNX model: {type(error).__name__}") from None
    for where, location in external_data(model):
        _check_location(path.parent, location, f"{where} of ONNX model {path}")
    enforce(onnx_findings(model), f"ONNX model {path}", unsafe=unsafe)


def onnx_findings(model: Any) -> list[Finding]:
    """Operators outside the standard domains, in the graph, its subgraphs and its
    local functions."""
    found: list[Finding] = []
    for count, (where, node) in enumerate(_nodes(model), start=1):
        if count > MAX_GRAPH_NODES:
            raise ModelError(
                f"the graph has more than {MAX_GRAPH_NODES:,} nodes",
                "cnnx refuses graphs of absurd size",
            )
        if node.domain not in STANDARD_DOMAINS:
            op = f"{node.domain}.{node.op_type}"
            found.append(Finding(op, f"{where}, node {node.name or '?'}", _CUSTOM))
    return found


def external_data(model: Any) -> Iterator[tuple[str, str]]:
    """(where, location) of each tensor stored outside the model file."""
    import onnx

    for graph_where, graph in _graphs(model):
        for tensor in graph.initializer:
            if tensor.data_location == onnx.TensorProto.EXTERNAL:
                entries = {entry.key: entry.value for entry in tensor.external_data}
                yield f"{graph_where}, tensor {tensor.name}", entries.get("location", "")


def _check_location(folder: Path, location: str, what: str) -> None:
    relative = PurePosixPath(location)
    if not location or relative.is_absolute() or ".." in relative.parts or "\\" in location:
        raise ModelError(
            f"{what} keeps its weights at {location!r}, outside the model's folder",
            "cnnx reads external data only from files beside the model",
        )
    target = folder / relative
    if not target.resolve().is_relative_to(folder.resolve()):
        raise ModelError(f"{what} keeps its weights at {location!r}, outside the model's folder")
    require_regular_file(target, "ONNX external data")


def _graphs(model: Any) -> Iterator[tuple[str, Any]]:
    """The main graph and every subgraph held in a node attribute (If, Loop, Scan)."""
    todo: list[tuple[str, Any]] = [("graph", model.graph)]
    while todo:
        where, graph = todo.pop()
        yield where, graph
        for node in graph.node:
            for attribute in node.attribute:
                for index, sub in enumerate([attribute.g, *attribute.graphs]):
                    if sub.ByteSize():
                        todo.append((f"{where}/{node.name or node.op_type}.{index}", sub))


def _nodes(model: Any) -> Iterator[tuple[str, Any]]:
    for where, graph in _graphs(model):
        for node in graph.node:
            yield where, node
    for function in model.functions:
        for node in function.node:
            yield f"function {function.domain}.{function.name}", node
