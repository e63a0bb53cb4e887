"""GPU delegate readiness: the static batch-1 exports are ready, a dynamic-batch one is not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bundle_artifacts import tiny_artifacts
from tests.cli import cnnx
from toolkit.graph.gpu_readiness import GPU_OPS, check_gpu_readiness

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tflite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_artifacts(tmp_path_factory) / "tflite"


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_static_batch_one_exports_are_ready(tflite: Path, precision: str) -> None:
    result = check_gpu_readiness(tflite / f"model_{precision}.tflite")
    assert result.ready, result.problems
    assert result.problems == []
    assert {"CONV_2D", "FULLY_CONNECTED", "SOFTMAX"} <= set(result.op_counts)
    assert set(result.op_counts) <= GPU_OPS
    assert result.summary().startswith("ready")


def test_dynamic_batch_flatten_is_not_ready(tflite: Path) -> None:
    result = check_gpu_readiness(tflite / "model_dynamic.tflite")
    assert not result.ready
    # A -1 batch makes Flatten compute its shape at run time.
    assert {"SHAPE", "STRIDED_SLICE", "PACK"} <= set(result.op_counts)
    text = " | ".join(result.problems)
    assert "ops the GPU delegate lacks: SHAPE" in text
    assert "dynamic shapes" in text and "static batch of 1" in text
    assert "STRIDED_SLICE on int32" in text and "PACK on int32" in text
    assert result.summary().startswith("not ready: ")


def test_the_exporters_int8_artifact_is_ready(artifacts: Path) -> None:
    """What `cnnx export` writes for the edge (static batch 1) passes the check."""
    for precision in ("float32", "int8"):
        result = check_gpu_readiness(artifacts / "tflite" / f"model_{precision}.tflite")
        assert result.ready, (precision, result.problems)


def test_unloadable_bytes_are_not_ready_and_a_missing_file_is_an_error(tmp_path: Path) -> None:
    from toolkit.errors import ArtifactError

    result = check_gpu_readiness(b"not a flatbuffer")
    assert not result.ready and result.problems[0].startswith("LiteRT cannot load it")
    with pytest.raises(ArtifactError, match="cannot read"):
        check_gpu_readiness(tmp_path / "missing.tflite")


def test_cnnx_info_reports_the_accelerators_answer(tflite: Path) -> None:
    """Where LiteRT's GPU accelerator runs (SwiftShader here), `cnnx info` gives its
    answer: fully accelerated, or the reason it refused the dynamic-batch file."""
    ready = cnnx("info", tflite / "model_int8.tflite")
    assert ready.returncode == 0, ready.stderr
    text = " ".join(ready.stdout.split())
    assert "GPU delegate fully accelerated on SwiftShader Device" in text
    assert "max |GPU - CPU| 0.0e+00" in text  # uint8 outputs: the same bytes as the CPU's
    dynamic = cnnx("info", tflite / "model_dynamic.tflite")
    assert dynamic.returncode == 0, dynamic.stderr
    text = " ".join(dynamic.stdout.split())
    assert "LiteRT's GPU accelerator rejects" in text and "dynamic-sized tensors" in text


def test_cnnx_info_names_the_op_the_accelerator_left_on_the_cpu(tmp_path: Path) -> None:
    """A model ending in L2_NORMALIZATION, an op the accelerator lacks (the static list
    has no say here): `cnnx info` names it from the accelerator's own answer."""
    import numpy as np
    import tensorflow as tf

    kernel = tf.constant(np.random.default_rng(0).normal(size=(3, 3, 3, 4)), tf.float32)

    @tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 3], tf.float32)])
    def classify(image: tf.Tensor) -> tf.Tensor:
        features = tf.reduce_mean(tf.nn.relu(tf.nn.conv2d(image, kernel, 1, "SAME")), [1, 2])
        return tf.math.l2_normalize(features, 1)

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [classify.get_concrete_function()], classify
    )
    path = tmp_path / "l2.tflite"
    path.write_bytes(converter.convert())
    result = cnnx("info", path, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)["details"]["GPU delegate"]
    assert summary.startswith("not fully accelerated on SwiftShader Device"), summary
    assert "ops left on the CPU: L2_NORMALIZATION" in summary
