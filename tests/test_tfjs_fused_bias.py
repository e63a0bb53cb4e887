"""A BatchNorm on `axis=3` after a convolution without bias (EfficientNet's stem, ResNet's
blocks) becomes a _FusedConv2D whose bias the TF.js converter leaves shaped [1, 1, 1, C];
TF.js' wasm backend refuses that at the first predict. The export rewrites it to [C]
(exporters/tfjs.py: flatten_fused_biases) and the model runs on wasm as on TF.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest

from toolkit.export.artifacts import ExportRequest, export
from toolkit.manifest import Manifest
from toolkit.runtimes import load

pytestmark = pytest.mark.node

CHANNELS = 8


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    import keras

    keras.utils.set_random_seed(3)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(CHANNELS, 3, use_bias=False)(x)
    x = keras.layers.BatchNormalization(axis=3)(x)  # axis=3, not -1: a [1, 1, 1, C] shift
    x = keras.layers.Activation("relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(3)
    batchnorm = model.layers[3]
    gamma, beta = rng.uniform(0.5, 1.5, CHANNELS), rng.normal(0, 1, CHANNELS)
    mean, variance = rng.normal(0, 0.1, CHANNELS), rng.uniform(0.5, 1.5, CHANNELS)
    batchnorm.set_weights([gamma, beta, mean, variance])  # a trained model's: a real shift
    root = tmp_path_factory.mktemp("fused-bias")
    model.save(root / "model.keras")
    return export(ExportRequest(model=root / "model.keras", to="tfjs", out=root / "out"))


def fused_biases(model_json: Path) -> dict[str, list[int]]:
    """The shape of every fused op's bias, by weight name, as TF.js will load it."""
    data = json.loads(model_json.read_text())
    shapes = {w["name"]: w["shape"] for g in data["weightsManifest"] for w in g["weights"]}
    found = {}
    for node in data["modelTopology"]["node"]:
        fused = [base64.b64decode(s).decode() for s in node["attr"].get("fused_ops", {})
                 .get("list", {}).get("s", [])]  # fmt: skip
        if fused[:1] == ["BiasAdd"]:
            found[node["input"][2]] = shapes[node["input"][2]]
    return found


def test_the_bias_is_rank_1_in_model_json(exported: Manifest) -> None:
    for artifact_id in ("tfjs_float32", "tfjs_uint8", "tfjs_uint16", "tfjs_float16"):
        biases = fused_biases(exported.root / exported.artifact(artifact_id).path / "model.json")
        conv = [name for name in biases if "batch_normalization" in name]
        assert conv, biases  # the case this is about: BatchNorm's shift fused as a bias
        assert all(biases[name] == [CHANNELS] for name in conv), biases
    assert exported.artifact("tfjs_float32").details["rank1_biases"] == 1


def test_it_runs_on_wasm_as_on_tensorflow(exported: Manifest) -> None:
    from toolkit.data.generated import generated_pixels

    images = exported.input.apply(generated_pixels(16, 16, 3, count=16))
    with load("tf", exported, exported.artifact("savedmodel")) as model:
        reference = model.predict(images)
    out = {}
    for artifact_id in ("tfjs_float32", "tfjs_uint8"):
        for backend in ("wasm", "cpu"):
            artifact = exported.artifact(artifact_id)
            with load("tfjs-node", exported, artifact, backend=backend) as model:
                assert model.info.backend == backend
                out[artifact_id, backend] = model.predict(images)
    assert np.abs(out["tfjs_float32", "wasm"] - reference).max() < 1e-4
    assert (out["tfjs_float32", "wasm"].argmax(1) == reference.argmax(1)).all()
    # uint8 weights move the answers; wasm still computes what cpu computes from them.
    assert np.abs(out["tfjs_uint8", "wasm"] - out["tfjs_uint8", "cpu"]).max() < 1e-5
