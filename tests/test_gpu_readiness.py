"""GPU delegate readiness: the static batch-1 exports are ready, a dynamic-batch one is not."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.test_package_support import tiny_artifacts
from toolkit.cli import app
from toolkit.graph.gpu_readiness import GPU_OPS, check_gpu_readiness

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tflite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_artifacts(tmp_path_factory.getbasetemp()) / "tflite"


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


def test_cnnx_info_reports_it(tflite: Path) -> None:
    runner = CliRunner()
    ready = runner.invoke(app, ["info", str(tflite / "model_int8.tflite")])
    assert ready.exit_code == 0, ready.stderr
    assert "GPU delegate" in ready.stdout and "ready (" in ready.stdout
    dynamic = runner.invoke(app, ["info", str(tflite / "model_dynamic.tflite")])
    assert dynamic.exit_code == 0, dynamic.stderr
    assert "not ready" in dynamic.stdout
