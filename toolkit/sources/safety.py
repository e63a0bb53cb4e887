"""What refuses models that would run code: Lambda layers in a stored configuration
(found before anything is deserialized) and graph ops outside the pure-computation
allow-list (toolkit/graph/policy.py), checked before TensorFlow loads the graph."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from toolkit.errors import ModelError

# Layers whose configuration carries Python code that deserializing would run.
CODE_LAYERS = {"Lambda", "TFOpLambda", "SlicingOpLambda", "__lambda__"}


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
    from toolkit.graph.policy import check_savedmodel

    check_savedmodel(path, unsafe=unsafe)
