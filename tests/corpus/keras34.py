"""A `.keras` file as Keras 3.4 wrote it, which later Keras 3 minors refuse to load.

keras34_config.json is the config.json Keras 3.4.1 wrote (byte for byte) for

    inputs = keras.Input(batch_shape=(32, 16, 16, 3))
    RandomRotation(0.1, value_range=(0, 255)) -> RandomFlip() -> Rescaling(1 / 255)
    -> Conv2D(2, 3) -> GlobalAveragePooling2D() -> Dense(3, activation="softmax")

Keras 3.4's RandomRotation took `value_range`; later releases reject it as an unknown
keyword. The batch is fixed at 32 in the InputLayer. The weights are written here with
h5py in Keras 3's layout (layers/<name>/vars/<i>), from seeded numbers, so the file needs
no Keras 3.4 to make and its outputs are known from `reference_model`.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

CONFIG = Path(__file__).with_name("keras34_config.json")
LAYERS = (
    "input_layer", "random_rotation", "random_flip", "rescaling", "conv2d",
    "global_average_pooling2d", "dense",
)  # fmt: skip


def weights(seed: int = 3) -> dict[str, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return {
        "conv2d": [rng.normal(0, 0.5, (3, 3, 3, 2)), rng.normal(0, 0.1, (2,))],
        "dense": [rng.normal(0, 1.0, (2, 3)), rng.normal(0, 0.1, (3,))],
    }


def write_keras34(path: Path, extra: dict[str, dict[str, Any]] | None = None) -> Path:
    """The Keras 3.4.1 file; `extra` adds arguments to layers by name ({"conv2d": {...}})."""
    import h5py

    config = json.loads(CONFIG.read_text())
    for layer in config["config"]["layers"]:
        layer["config"].update((extra or {}).get(layer["name"], {}))
    blob = io.BytesIO()
    with h5py.File(blob, "w") as h5:
        h5.create_group("vars")
        values = weights()
        for name in LAYERS:
            group = h5.create_group(f"layers/{name}/vars")
            for i, value in enumerate(values.get(name, [])):
                group.create_dataset(str(i), data=value.astype(np.float32))
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(
            "metadata.json",
            json.dumps({"keras_version": "3.4.1", "date_saved": "2024-07-01@10:00:00"}),
        )
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("model.weights.h5", blob.getvalue())
    return Path(path)


def reference_model() -> Any:
    """The same model in the installed Keras, free batch, no augmentation (it does nothing
    at inference), with the same weights: what the file must compute."""
    import keras

    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    conv = keras.layers.Conv2D(2, 3)
    x = keras.layers.GlobalAveragePooling2D()(conv(x))
    dense = keras.layers.Dense(3, activation="softmax")
    model = keras.Model(inputs, dense(x))
    values = weights()
    conv.set_weights(values["conv2d"])
    dense.set_weights(values["dense"])
    return model
