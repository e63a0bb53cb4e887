"""`.keras` files as Keras 2.13-2.15 wrote them, made here from tf_keras models (no such
file can be downloaded). This module holds no tests.

Keras 2.13 and 2.14 saved `.keras` zips that neither Keras 3 nor tf_keras 2.19 reads:
config.json with `batch_input_shape` and module paths under `keras.src`, and weights
keyed by `_layer_checkpoint_dependencies`. The writer below reproduces that layout
independently of cnnx's reader (toolkit/sources/keras_files.py), so a reader bug cannot
hide in a shared helper.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any


def keras2_group(class_name: str) -> str:
    """Keras 2's generic_utils.to_snake_case, which named each layer's weights group."""
    text = re.sub(r"(.)([A-Z][a-z0-9]+)", r"\1_\2", class_name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", text).lower()


def _keras2_modules(config: Any) -> Any:
    """tf_keras' serialization with module paths as Keras 2.14 wrote them (keras.src...)."""
    if isinstance(config, dict):
        return {
            key: "keras" + value[len("tf_keras") :]
            if key == "module" and isinstance(value, str) and value.startswith("tf_keras")
            else _keras2_modules(value)
            for key, value in config.items()
        }
    if isinstance(config, list):
        return [_keras2_modules(value) for value in config]
    return config


def _write_weights(group: Any, model: Any) -> None:
    # Keras 2.13/2.14 saving_lib walked dir(model) in sorted order and so met
    # `_layer_checkpoint_dependencies` (a dict of the layers) before `layers`: each layer's
    # variables sit under it, in a group named after its class in snake case, numbered
    # in layer order, trainable first, as vars/0, vars/1, ...
    used: dict[str, int] = {}
    for layer in model.layers:
        name = keras2_group(type(layer).__name__)
        used[name] = used.get(name, -1) + 1
        if used[name]:
            name = f"{name}_{used[name]}"
        sub = group.create_group(name)
        variables = sub.create_group("vars")
        for i, weight in enumerate(layer.trainable_weights + layer.non_trainable_weights):
            variables.create_dataset(str(i), data=weight.numpy())
        if hasattr(layer, "layers"):
            _write_weights(sub.create_group("_layer_checkpoint_dependencies"), layer)


def write_keras214(model: Any, path: Path, version: str = "2.14.0") -> Path:
    """A tf_keras model as Keras 2.14's `model.save("x.keras")` wrote it: metadata.json,
    config.json with `batch_input_shape`, and model.weights.h5 keyed by
    `_layer_checkpoint_dependencies`."""
    import h5py
    import tf_keras

    config = _keras2_modules(tf_keras.saving.serialize_keras_object(model))
    weights = io.BytesIO()
    with h5py.File(weights, "w") as h5:
        h5.create_group("vars")
        _write_weights(h5.create_group("_layer_checkpoint_dependencies"), model)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(
            "metadata.json",
            json.dumps({"keras_version": version, "date_saved": "2023-10-02@12:00:00"}),
        )
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("model.weights.h5", weights.getvalue())
    return path
