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


# --- a whole tensor fused as a bias: split back into the op and an AddV2 ---------------
#
# The converter folds an Add after a convolution or matmul into the op as its bias even
# when the addend is another node's [1, H, W, C] output (EfficientNet's residual blocks):
# wasm refuses such a model at the first predict. The export splits those nodes
# (exporters/tfjs_unfuse.py): the plain op, an AddV2, then the fused activation.

SPLIT = {"Conv2D": "Relu", "DepthwiseConv2dNative": "Relu6", "MatMul": "Elu"}


def residual_kinds_model() -> object:
    """One residual add after each op kind the converter fuses, each with an activation."""
    import keras

    keras.utils.set_random_seed(5)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 1)(keras.layers.Rescaling(1 / 255)(inputs))
    a = keras.layers.Conv2D(4, 3, padding="same")(x)
    b = keras.layers.Add()([keras.layers.Conv2D(4, 1, use_bias=False)(a), x])
    b = keras.layers.ReLU()(b)
    depthwise = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False)(b)
    c = keras.layers.ReLU(6.0)(keras.layers.Add()([depthwise, a]))
    pooled = keras.layers.GlobalAveragePooling2D()(c)
    d = keras.layers.Add()([keras.layers.Dense(4, use_bias=False)(pooled), pooled])
    d = keras.layers.ELU()(d)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(d))


def export_float32(model: object, root: Path) -> Manifest:
    model.save(root / "model.keras")  # type: ignore[attr-defined]
    return export(
        ExportRequest(
            model=root / "model.keras", to="tfjs", tfjs_quantize="float32", out=root / "out"
        )
    )


@pytest.fixture(scope="module")
def residual(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    return export_float32(residual_kinds_model(), tmp_path_factory.mktemp("residual"))


@pytest.fixture(scope="module")
def efficientnet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Manifest, int]:
    """An EfficientNet from keras' own builder (B0's MBConv blocks, squeeze-excite, swish)
    at half B0's width and depth: every stage that B0 repeats keeps a repeat, so residual
    adds remain, at a third of B0's export time. With how many residual adds it has."""
    import keras
    from keras.src.applications.efficientnet import EfficientNet

    keras.utils.set_random_seed(7)
    model = EfficientNet(
        0.5, 0.5, 32, name="efficientnet_half", input_shape=(32, 32, 3), weights=None, classes=4
    )
    residual_adds = sum(1 for layer in model.layers if layer.name.endswith("_add"))
    return export_float32(model, tmp_path_factory.mktemp("efficientnet")), residual_adds


def tensor_biases(model_json: Path) -> list[str]:
    """Fused ops whose bias is not a rank-1 weight: what wasm refuses."""
    data = json.loads(model_json.read_text())
    nodes = {node["name"]: node for node in data["modelTopology"]["node"]}
    ranks = {w["name"]: len(w["shape"]) for g in data["weightsManifest"] for w in g["weights"]}
    found = []
    for node in nodes.values():
        fused = [base64.b64decode(s).decode() for s in node["attr"].get("fused_ops", {})
                 .get("list", {}).get("s", [])]  # fmt: skip
        if fused[:1] == ["BiasAdd"]:
            bias = node["input"][2].split(":")[0]
            if nodes[bias]["op"] != "Const" or ranks.get(bias) != 1:
                found.append(node["name"])
    return found


def test_every_fused_kind_is_split_with_its_activation_after_the_add(residual: Manifest) -> None:
    entry = residual.artifact("tfjs_float32")
    data = json.loads((residual.root / entry.path / "model.json").read_text())
    nodes = {node["name"]: node for node in data["modelTopology"]["node"]}
    assert tensor_biases(residual.root / entry.path / "model.json") == []
    seen = {}
    for node in nodes.values():
        if node["op"] in SPLIT and node["name"].endswith("/unfused_op"):
            add = nodes[node["name"].replace("/unfused_op", "/unfused_add")]
            after = nodes[node["name"].removesuffix("/unfused_op")]  # the fused node's name
            assert add["op"] == "AddV2" and add["input"][0] == node["name"]
            assert after["input"] == [add["name"]]
            seen[node["op"]] = after["op"]
    assert seen == SPLIT
    assert entry.details["unfused_tensor_biases"] == 3
    # The weights are those the converter wrote: every one still read by a node.
    weights = {w["name"] for g in data["weightsManifest"] for w in g["weights"]}
    assert weights <= set(nodes)


def _parity(manifest: Manifest, runtimes: list[tuple[str, str]], count: int = 12) -> None:
    from toolkit.data.generated import generated_pixels

    height, width, channels = manifest.input.shape
    images = manifest.input.apply(generated_pixels(height, width, channels, count=count))
    with load("tf", manifest, manifest.artifact("savedmodel")) as model:
        reference = model.predict(images)
    # Random weights give answers that differ little between pictures (EfficientNet's by
    # about 1e-5): the runtime must match them ten times finer than they differ.
    spread = float(np.ptp(reference, axis=0).max())
    assert spread > 0
    for runtime, backend in runtimes:
        with load(runtime, manifest, manifest.artifact("tfjs_float32"), backend=backend) as model:
            assert model.info.backend == backend
            out = model.predict(images)
        assert np.abs(out - reference).max() < min(1e-4, spread / 10), (runtime, backend)
        assert (out.argmax(1) == reference.argmax(1)).all(), (runtime, backend)


def test_the_split_graph_runs_on_wasm_as_on_tensorflow(residual: Manifest) -> None:
    _parity(residual, [("tfjs-node", "wasm"), ("tfjs-node", "cpu")])


@pytest.mark.slow
def test_efficientnet_runs_on_wasm_as_on_tensorflow(efficientnet: tuple[Manifest, int]) -> None:
    # In Node: its wasm backend is the very package the browser page loads
    # (web_demo/node_modules/@tensorflow/tfjs-backend-wasm, the same kernels and the same
    # check of a fused bias), so the graph that runs here runs there; the page's own wasm
    # path is proven in tests/test_browser_runtime.py.
    manifest, residual_adds = efficientnet
    entry = manifest.artifact("tfjs_float32")
    assert tensor_biases(manifest.root / entry.path / "model.json") == []
    assert residual_adds >= 3  # the half depth keeps a repeat in three stages
    assert entry.details["unfused_tensor_biases"] >= residual_adds  # one per residual add
    _parity(manifest, [("tfjs-node", "wasm")], count=6)
