"""cnnx export on a real trained run: every artifact, read back in its own runtime.

The `artifacts` session fixture (tests/conftest.py) exports every format of `tiny_run`
once; these tests load each artifact in LiteRT / TF.js-in-Node and hold it to the
DESIGN.md tolerances against the SavedModel on the run's test split.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from exporters import registry
from exporters.tflite import predict_tflite
from exporters.tflite_inspect import inspect_tflite
from toolkit.manifest import Manifest, load_manifest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def manifest(artifacts: Path) -> Manifest:
    return load_manifest(artifacts)


@pytest.fixture(scope="module")
def test_split(manifest: Manifest) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Preprocessed test images, labels, and the SavedModel's probabilities on them."""
    import tensorflow as tf

    from toolkit.data import DataSpec, load_dataset

    assert manifest.eval_data is not None
    data = load_dataset(DataSpec.from_dict(manifest.eval_data))
    x = manifest.input.apply(data.x_test)
    saved = tf.saved_model.load(str(manifest.artifact_path(manifest.artifact("savedmodel"))))
    reference = saved.signatures["serving_default"](image=tf.constant(x))["probabilities"].numpy()
    return x, data.y_test, reference


def test_every_format_is_listed_with_hashes(manifest: Manifest) -> None:
    # --to all makes every row made by default (int16x8 is asked for by name).
    assert set(manifest.artifacts) == {spec.id for spec in registry.ARTIFACTS if spec.by_default}
    for entry in manifest.artifacts.values():
        spec = registry.get(entry.id)
        assert (entry.format, entry.precision, entry.path) == (
            spec.format,
            spec.precision,
            spec.path,
        )
        assert entry.files and all(len(f["sha256"]) == 64 and f["size"] > 0 for f in entry.files)
        manifest.artifact_path(entry, check=True)  # every hash matches
        assert entry.tolerance == spec.tolerance
    data = json.loads(manifest.path.read_text())
    assert data["schema"] == "cnnx.manifest/1"
    assert set(data["versions"]) >= {"tensorflow", "tensorflowjs", "ai_edge_litert", "cnnx"}
    assert data["command"].startswith("cnnx export")
    assert data["eval_data"]["kind"] == "shapes"
    assert data["source"]["format"] == "run" and len(data["source"]["fingerprint"]) == 64


def test_samples_are_test_images_with_labels(manifest: Manifest) -> None:
    from PIL import Image

    assert 10 <= len(manifest.samples) <= 20
    index = json.loads((manifest.root / "samples" / "samples.json").read_text())
    assert [r["file"] for r in index] == [s["file"] for s in manifest.samples]
    for sample in manifest.samples:
        path = manifest.sample_path(sample, check=True)
        with Image.open(path) as image:
            assert image.size == (manifest.input.width, manifest.input.height)
        assert manifest.labels[sample["label"]] == sample["label_name"]
    assert len({s["label"] for s in manifest.samples}) == min(len(manifest.labels), 20)


def test_int8_is_integer_small_and_agrees(manifest: Manifest, test_split: tuple) -> None:
    x, y, reference = test_split
    entry = manifest.artifact("tflite_int8")
    content = manifest.artifact_path(entry).read_bytes()
    report = inspect_tflite(content)
    # Weights and activations int8, uint8 I/O so camera bytes go straight in.
    assert report.fully_integer, report.float_ops
    assert report.weight_dtypes.keys() <= {"int8", "int32"}  # int32: biases
    assert report.inputs[0]["dtype"] == "uint8" and report.outputs[0]["dtype"] == "uint8"
    assert report.inputs[0]["quantization"] == {"scale": 1.0, "zero_point": 0}
    assert entry.inputs == report.inputs and entry.outputs == report.outputs
    # Smaller than float32; the 0.3x bound holds at the seed CNN's real width (see
    # test_exporters.py): at width 0.25 the flatbuffer's fixed overhead dominates.
    assert entry.size < 0.5 * manifest.artifact("tflite_float32").size
    probabilities = predict_tflite(content, x)
    expected = reference.argmax(1)
    drop = np.mean(expected == y) - np.mean(probabilities.argmax(1) == y)
    assert drop <= 0.01, drop
    # The uint8 softmax output has a resolution of 1/256: where the tiny run (about 45%
    # accurate, low margins) has two classes closer than that, the output ties and argmax
    # takes the lower index. Every such image must still have the reference class among
    # the tied maxima; images with one clear int8 winner must agree 98% of the time.
    top = probabilities.max(1, keepdims=True)
    tied = (probabilities == top).sum(1) > 1
    assert np.all(probabilities[np.arange(len(x)), expected][tied] == top[tied, 0])
    clear = ~tied
    agreement = np.mean(probabilities.argmax(1)[clear] == expected[clear])
    assert agreement >= 0.98, agreement
    assert np.mean(probabilities.argmax(1) == expected) >= 0.9  # ties included
    calibration = entry.details["calibration"]
    assert calibration["split"] == "train" and calibration["count"] == 300
    assert sum(calibration["class_counts"].values()) == 300
    assert (
        max(calibration["class_counts"].values()) - min(calibration["class_counts"].values()) <= 1
    )


@pytest.mark.parametrize("artifact_id", ["tflite_float32", "tflite_float16", "tflite_dynamic"])
def test_float_tflite_within_tolerance(
    manifest: Manifest, test_split: tuple, artifact_id: str
) -> None:
    x, _, reference = test_split
    entry = manifest.artifact(artifact_id)
    content = manifest.artifact_path(entry).read_bytes()
    report = inspect_tflite(content)
    assert report.inputs[0]["shape"] == [1, *manifest.input.shape]  # static batch of 1
    assert not {"SHAPE", "STRIDED_SLICE", "PACK"} & set(report.ops)
    probabilities = predict_tflite(content, x)
    agreement = np.mean(probabilities.argmax(1) == reference.argmax(1))
    assert agreement >= entry.tolerance["min_agreement"], agreement
    if "max_abs" in entry.tolerance:
        assert np.max(np.abs(probabilities - reference)) <= entry.tolerance["max_abs"]


@pytest.mark.node
@pytest.mark.parametrize("artifact_id", ["tfjs_uint8", "tfjs_uint16", "tfjs_float16"])
def test_tfjs_in_node_within_tolerance(
    manifest: Manifest, test_split: tuple, artifact_id: str
) -> None:
    """Each quantized TF.js artifact in Node (@tensorflow/tfjs + wasm) against the
    SavedModel (float32: test_runtimes.py, and test_verify.py on this export)."""
    from toolkit.runtimes import load

    x, _, reference = test_split
    x, reference = x[:64], reference[:64]
    entry = manifest.artifact(artifact_id)
    model_json = json.loads((manifest.root / entry.details["model_json"]).read_text())
    assert model_json["signature"]["inputs"]["image"]["name"] == entry.details["input_node"]
    with load("tfjs-node", manifest, entry, backend="wasm") as model:
        assert model.info.backend == "wasm"
        probabilities = model.predict(x)
    assert probabilities.shape == reference.shape
    agreement = np.mean(probabilities.argmax(1) == reference.argmax(1))
    assert agreement >= entry.tolerance["min_agreement"], agreement
    if "max_abs" in entry.tolerance:
        assert np.max(np.abs(probabilities - reference)) <= entry.tolerance["max_abs"]
