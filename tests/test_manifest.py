"""manifest.json: round trip, hashes checked on load, samples, what export selects."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from toolkit.data.imagefolder import balanced_indices
from toolkit.data.inputspec import InputSpec
from toolkit.errors import ArtifactError, UsageError
from toolkit.export.artifacts import (
    ExportRequest,
    fallback_auto,
    select_artifacts,
)
from toolkit.manifest import ArtifactEntry, Manifest, describe_files, load_manifest


def _folder(tmp_path: Path) -> Manifest:
    (tmp_path / "tflite").mkdir()
    (tmp_path / "tflite" / "model_int8.tflite").write_bytes(b"model bytes")
    (tmp_path / "samples").mkdir()
    (tmp_path / "samples" / "000_a.png").write_bytes(b"png")
    entry = ArtifactEntry(
        id="tflite_int8",
        format="tflite",
        precision="int8",
        runtime="litert",
        path="tflite/model_int8.tflite",
        files=describe_files(tmp_path, "tflite/model_int8.tflite"),
        inputs=[{"name": "x", "shape": [1, 8, 8, 3], "dtype": "uint8", "quantization": None}],
        outputs=[],
        tolerance={"min_agreement": 0.98},
        details={"warnings": ["only 40 calibration images"]},
    )
    sample = {
        "file": "000_a.png",
        "path": "samples/000_a.png",
        "label": 0,
        "label_name": "a",
        "sha256": describe_files(tmp_path, "samples/000_a.png")[0]["sha256"],
        "size": 3,
    }
    manifest = Manifest(
        root=tmp_path,
        input=InputSpec(8, 8, 3),
        labels=["a", "b"],
        artifacts={entry.id: entry},
        samples=[sample],
    )
    manifest.save()
    return manifest


def test_round_trip_keeps_samples_and_warnings(tmp_path: Path) -> None:
    _folder(tmp_path)
    loaded = load_manifest(tmp_path)
    assert loaded.samples[0]["label_name"] == "a"
    assert loaded.sample_path(loaded.samples[0]) == (tmp_path / "samples" / "000_a.png").resolve()
    assert loaded.warnings == ["tflite_int8: only 40 calibration images"]
    data = json.loads((tmp_path / "manifest.json").read_text())
    assert data["schema"] == "cnnx.manifest/1"
    assert data["artifacts"]["tflite_int8"]["size"] == len(b"model bytes")


def test_changed_artifact_is_refused_on_load(tmp_path: Path) -> None:
    manifest = _folder(tmp_path)
    entry = manifest.artifact("tflite_int8")
    assert manifest.artifact_path(entry, check=True).is_file()
    (tmp_path / "tflite" / "model_int8.tflite").write_bytes(b"other bytes")
    with pytest.raises(ArtifactError, match="does not match its sha256"):
        load_manifest(tmp_path).artifact_path(entry, check=True)
    (tmp_path / "samples" / "000_a.png").write_bytes(b"changed")
    with pytest.raises(ArtifactError, match="changed since export"):
        manifest.sample_path(manifest.samples[0])


@pytest.mark.parametrize(
    "samples",
    [
        "not a list",
        [{"file": 3, "label": 0}],
        [{"file": "a.png", "label": "zero"}],
        [{"file": "x.png", "path": "../../etc/passwd", "label": 0}],
    ],
)
def test_malformed_samples_are_refused(tmp_path: Path, samples: object) -> None:
    _folder(tmp_path)
    data = json.loads((tmp_path / "manifest.json").read_text())
    data["samples"] = samples
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ArtifactError):
        load_manifest(tmp_path)


def test_selection_of_artifacts() -> None:
    every_tflite = ["tflite_float32", "tflite_float16", "tflite_dynamic", "tflite_int8"]
    every_tfjs = ["tfjs_float32", "tfjs_uint8", "tfjs_uint16", "tfjs_float16"]
    every_onnx = ["onnx_float32", "onnx_float16", "onnx_int8"]
    all_of_them = ["savedmodel", *every_tflite, *every_tfjs, *every_onnx]
    assert select_artifacts("all", None, None) == all_of_them
    assert select_artifacts("onnx", None, None) == ["savedmodel", *every_onnx]
    assert select_artifacts("onnx", "int8", None) == ["savedmodel", "onnx_int8"]
    assert select_artifacts("tflite", "int8", None) == ["savedmodel", "tflite_int8"]
    assert select_artifacts("tflite", "none", None) == ["savedmodel", "tflite_float32"]
    assert select_artifacts("tfjs", "int8", None) == ["savedmodel", "tfjs_uint8"]
    assert select_artifacts("tfjs", "dynamic", None) == ["savedmodel", "tfjs_uint8"]
    assert select_artifacts("tfjs", "float16", None) == ["savedmodel", "tfjs_float16"]
    assert select_artifacts("all", "none", "uint16") == [
        "savedmodel",
        "tflite_float32",
        "tfjs_uint16",
        "onnx_float32",
    ]
    assert select_artifacts("savedmodel", None, None) == ["savedmodel"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"to": "coreml"},
        {"quantize": "int4"},
        {"to": "tflite", "tfjs_quantize": "uint8"},
        {"to": "savedmodel", "quantize": "int8"},
        {"to": "tfjs", "debug_quant": True},
        {"to": "tflite", "quantize": "float16", "float_fallback": ("CONV_2D",)},
        {"to": "tfjs", "calibration_data": Path("calib")},
        {"to": "tflite", "quantize": "dynamic", "io": "int8"},
        {"calibration_samples": 0},
        {"float_fallback": ("auto", "CONV_2D")},
        {"float_fallback": ("auto:0",)},
    ],
)
def test_contradictory_requests_are_usage_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        ExportRequest(**kwargs)  # type: ignore[arg-type]


def test_fallback_auto_counts() -> None:
    assert fallback_auto(()) == 0
    assert fallback_auto(("CONV_2D",)) == 0
    assert fallback_auto(("auto",)) == 3
    assert fallback_auto(("auto:5",)) == 5


def test_balanced_indices_are_even_and_seeded() -> None:
    labels = np.array([0] * 50 + [1] * 30 + [2] * 5)
    chosen = balanced_indices(labels, 40, seed=1)
    counts = np.bincount(labels[chosen], minlength=3)
    assert len(chosen) == 40 and len(set(chosen.tolist())) == 40
    assert counts[2] == 5 and abs(int(counts[0]) - int(counts[1])) <= 1
    assert np.array_equal(chosen, balanced_indices(labels, 40, seed=1))
    assert len(balanced_indices(labels, 1000)) == len(labels)
