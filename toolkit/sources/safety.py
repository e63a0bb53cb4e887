"""What refuses models that would run code: Lambda layers in a stored configuration
(found before anything is deserialized) and graph ops that call Python or touch files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from toolkit.errors import ModelError, first_line

# Layers whose configuration carries Python code that deserializing would run.
CODE_LAYERS = {"Lambda", "TFOpLambda", "SlicingOpLambda"}
# Graph ops that call back into Python or touch the file system when a model runs.
UNSAFE_OPS = {"PyFunc", "PyFuncStateless", "EagerPyFunc", "ReadFile", "WriteFile"}


def _walk_class_names(config: Any) -> Iterator[str]:
    if isinstance(config, dict):
        name = config.get("class_name")
        if isinstance(name, str):
            yield name
        for value in config.values():
            yield from _walk_class_names(value)
    elif isinstance(config, list):
        for value in config:
            yield from _walk_class_names(value)


def refuse_code(config: Any, path: Path, unsafe: bool) -> None:
    found = sorted(set(_walk_class_names(config)) & CODE_LAYERS)
    if found and not unsafe:
        raise ModelError(
            f"{path} holds {', '.join(found)} layers (embedded Python code that loading would run)",
            "pass --unsafe only if you trust where the file came from",
        )


def check_savedmodel_safety(path: Path, unsafe: bool) -> None:
    metadata = path / "keras_metadata.pb"
    if metadata.is_file() and not unsafe:
        blob = metadata.read_bytes()
        for name in sorted(CODE_LAYERS):
            if f'"class_name": "{name}"'.encode() in blob:
                raise ModelError(
                    f"{path} holds {name} layers (embedded Python code)",
                    "pass --unsafe only if you trust where the model came from",
                )
    if unsafe:
        return
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    try:
        proto.ParseFromString((path / "saved_model.pb").read_bytes())
    except Exception as error:  # protobuf raises DecodeError and friends
        raise ModelError(
            f"{path}/saved_model.pb is not a SavedModel: {first_line(error)}"
        ) from None
    for graph in proto.meta_graphs:
        ops = {node.op for node in graph.graph_def.node}
        for function in graph.graph_def.library.function:
            ops.update(node.op for node in function.node_def)
        bad = sorted(ops & UNSAFE_OPS)
        if bad:
            raise ModelError(
                f"{path} runs {', '.join(bad)} ops (Python callbacks or file access)",
                "pass --unsafe only if you trust where the model came from",
            )
