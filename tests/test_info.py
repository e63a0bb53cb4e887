"""cnnx info: describe() on every kind it knows, and its refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolkit.cli.info import preprocessing_line
from toolkit.errors import ModelError, PathError
from toolkit.info import DESCRIBERS, describe, detect_kind

pytestmark = pytest.mark.slow


def test_run_and_its_files(tiny_run: Path) -> None:
    run = describe(tiny_run)
    assert run.kind == "run"
    assert run.inputs == [{"name": "image", "shape": [-1, 32, 32, 3], "dtype": "float32"}]
    assert run.outputs == [{"name": "probabilities", "shape": [-1, 10], "dtype": "float32"}]
    assert run.preprocessing is not None and run.preprocessing["scale"] == 1.0
    assert run.labels[0] == "circle" and run.details["arch"] == "seed"

    pivot = describe(tiny_run / "saved_model")
    assert pivot.kind == "savedmodel" and pivot.details["signature"] == "serving_default"
    keras_file = describe(tiny_run / "model.keras")
    assert keras_file.kind == "keras" and keras_file.params == run.params == pivot.params
    assert keras_file.size == (tiny_run / "model.keras").stat().st_size
    # What export would find: the Rescaling layer cnnx embeds, and a softmax head.
    assert keras_file.details["preprocessing in the model"].startswith("Rescaling(x * 0.00392157")
    assert keras_file.details["output"] == "probabilities"


def test_artifacts_tflite_and_tfjs(artifacts: Path) -> None:
    folder = describe(artifacts)
    assert folder.kind == "artifacts" and "tflite_int8" in folder.details["artifacts"]
    assert folder.preprocessing is not None and folder.labels
    # The spec in force, as cnnx info prints it.
    assert (
        preprocessing_line(folder.preprocessing) == "32x32 RGB, bilinear resize, raw 0..255 pixels"
    )
    int8 = describe(next(artifacts.rglob("*int8*.tflite")))
    assert int8.kind == "tflite"
    assert int8.inputs[0]["shape"] == [1, 32, 32, 3]
    assert int8.inputs[0]["quantization"] is not None  # int8/uint8 I/O has a scale
    tfjs = describe(next(artifacts.rglob("model.json")).parent)
    assert tfjs.kind == "tfjs" and tfjs.params and tfjs.size > 0


def test_refusals(tmp_path: Path) -> None:
    with pytest.raises(PathError):
        describe(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(ModelError, match="not a run"):
        describe(tmp_path / "plain")
    (tmp_path / "weights.bin").write_bytes(b"\x00")
    with pytest.raises(ModelError, match="unknown model format"):
        detect_kind(tmp_path / "weights.bin")
    assert set(DESCRIBERS) >= {"run", "artifacts", "keras", "h5", "savedmodel", "tflite", "tfjs"}
