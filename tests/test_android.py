"""The Android bundle: TFLite metadata written with MediaPipe's metadata writers, and read
by MediaPipe Tasks' ImageClassifier (the task code Android runs) on the bundled models."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.bundle_artifacts import LABELS, tiny_artifacts
from toolkit.packaging.android import package_android
from toolkit.packaging.android_metadata import classify, read_metadata

pytestmark = [pytest.mark.slow, pytest.mark.android]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tiny_artifacts(tmp_path_factory)
    return package_android(root, tmp_path_factory.mktemp("android-bundle") / "android")


def litert_scores(model: Path, images: list[Path]) -> np.ndarray:
    """LiteRT on the bundled model: float32 normalized by the spec (identity here), uint8
    raw bytes; uint8 outputs dequantized with their own scale and zero point."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model))
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]
    target = interpreter.get_output_details()[0]
    rows = []
    for path in images:
        pixels = np.asarray(Image.open(path).convert("RGB"))[None]
        interpreter.set_tensor(source["index"], pixels.astype(source["dtype"]))
        interpreter.invoke()
        raw = interpreter.get_tensor(target["index"])[0]
        scale, zero_point = target["quantization"]
        rows.append((raw.astype(np.float32) - zero_point) * scale if scale else raw)
    return np.array(rows, dtype=np.float32)


def test_models_carry_normalization_labels_and_descriptions(bundle: Path) -> None:
    record = json.loads((bundle / "bundle.json").read_text())
    for variant in ("float32", "int8"):
        model = bundle / "models" / f"model_{variant}.tflite"
        answer = read_metadata(model)
        metadata: dict[str, Any] = answer["metadata"]
        assert answer["associated_files"] == ["labels.txt"]
        assert answer["associated_text"]["labels.txt"] == list(LABELS)
        subgraph = metadata["subgraph_metadata"][0]
        image = subgraph["input_tensor_metadata"][0]
        assert image["name"] == "image" and "16x16 RGB" in image["description"]
        options = image["process_units"][0]["options"]
        # cnnx models rescale inside, so the spec is the identity: mean 0, std 1.
        assert options["mean"] == [0.0, 0.0, 0.0] and options["std"] == [1.0, 1.0, 1.0]
        assert image["content"]["content_properties"]["color_space"] == "RGB"
        output = subgraph["output_tensor_metadata"][0]
        assert output["name"] == "probabilities" and output["description"]
        assert output["associated_files"][0]["type"] == "TENSOR_AXIS_LABELS"
        assert record["models"][variant]["associated_files"] == ["labels.txt"]
    assert record["models"]["int8"]["inputs"][0]["dtype"] == "uint8"
    assert record["models"]["int8"]["raw_pixels_in"] is True
    readme = (bundle / "README.md").read_text()
    assert "tasks-vision" in readme and "ImageClassifier" in readme and "Interpreter(" in readme
    assert "floatArrayOf(0f, 0f, 0f)" in readme and "{{" not in readme


def test_readme_names_a_litert_aligned_to_16_kb_pages(bundle: Path) -> None:
    """Google Play refuses native libraries aligned to 4 KB for apps targeting Android 15+
    (since 2025-11-01); the LiteRT AAR is 16 KB aligned from 1.4.0 on."""
    readme = (bundle / "README.md").read_text()
    named = re.findall(r'"com\.google\.ai\.edge\.litert:([\w-]+):(\d+)\.(\d+)\.(\d+)"', readme)
    assert {artifact for artifact, *_ in named} == {"litert", "litert-support"}
    for artifact, *version in named:
        assert tuple(map(int, version)) >= (1, 4, 0), f"{artifact} {'.'.join(version)}"
    assert 'implementation("org.tensorflow:' not in readme  # 4 KB aligned up to 2.17
    assert "16 KB" in readme and "Android 15" in readme


def test_metadata_leaves_the_model_computing_the_same(
    bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The metadata is an appendix: the bundled model gives LiteRT the source's outputs."""
    root = tiny_artifacts(tmp_path_factory)
    images = sorted((bundle / "test_images").glob("*.png"))
    for variant in ("float32", "int8"):
        with_metadata = litert_scores(bundle / "models" / f"model_{variant}.tflite", images)
        source = litert_scores(root / "tflite" / f"model_{variant}.tflite", images)
        assert np.array_equal(with_metadata, source)


def test_mediapipe_image_classifier_matches_litert_with_labels_from_metadata(
    bundle: Path,
) -> None:
    images = sorted((bundle / "test_images").glob("*.png"))
    truth = {
        t["file"]: t["index"]
        for t in json.loads((bundle / "test_images" / "ground_truth.json").read_text())["images"]
    }
    for variant in ("float32", "int8"):
        model = bundle / "models" / f"model_{variant}.tflite"
        results = classify(model, images, max_results=len(LABELS))
        assert len(results) == len(images)
        scores = litert_scores(model, images)
        assert [r[0]["index"] for r in results] == [int(np.argmax(s)) for s in scores]
        for result, row in zip(results, scores, strict=True):
            # The names come from the labels file packed in the metadata.
            assert [c["category_name"] for c in result] == [LABELS[c["index"]] for c in result]
            for category in result:
                assert category["score"] == pytest.approx(float(row[category["index"]]), abs=1e-5)
        correct = sum(r[0]["index"] == truth[p.name] for r, p in zip(results, images, strict=True))
        assert correct / len(images) >= 0.8


def test_a_bgr_input_is_refused_before_anything_is_written(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """TFLite metadata cannot say BGR: MediaPipe would feed RGB and the model would see its
    colours swapped, so the Android bundle refuses such a spec (the Pi and web follow it)."""
    import dataclasses
    import shutil

    from toolkit.errors import ArtifactError
    from toolkit.manifest import load_manifest

    root = shutil.copytree(tiny_artifacts(tmp_path_factory), tmp_path / "bgr")
    manifest = load_manifest(root)
    bgr = dataclasses.replace(manifest.input, color="BGR")
    dataclasses.replace(manifest, input=bgr).save()
    with pytest.raises(ArtifactError, match="records a BGR input"):
        package_android(root, tmp_path / "android")
    assert not (tmp_path / "android").exists()


def test_the_readme_and_bundle_json_carry_the_gpu_accelerators_answer(bundle: Path) -> None:
    """Measured by LiteRT's GPU accelerator (SwiftShader here), not read from an op list."""
    readme = (bundle / "README.md").read_text()
    text = " ".join(readme.split())
    assert "checked on SwiftShader Device (Subzero), a software Vulkan device" in text
    for name in ("model_float32.tflite", "model_int8.tflite"):
        line = next(x for x in readme.splitlines() if x.startswith(f"- `{name}`:"))
        assert "fully accelerated on SwiftShader Device" in line, line
    models = json.loads((bundle / "bundle.json").read_text())["models"]
    for record in models.values():
        assert record["gpu"]["ready"] is True and record["gpu"]["cpu_ops"] == []
        assert record["gpu"]["adapter"]["software"] is True


def test_an_exported_onnx_model_travels_with_its_ort_mobile_dependency(
    artifacts: Path, tmp_path: Path
) -> None:
    from toolkit.manifest import load_manifest, sha256_file

    bundle = package_android(artifacts, tmp_path / "android", make_zip=False)
    entry = load_manifest(artifacts).artifact("onnx_float32")
    record = json.loads((bundle / "bundle.json").read_text())["models"]["onnx_float32"]
    assert (record["file"], record["runtime"]) == (
        "models/model_float32.onnx",
        "ONNX Runtime Mobile",
    )
    assert record["sha256"] == sha256_file(artifacts / entry.path) == entry.files[0]["sha256"]
    readme = (bundle / "README.md").read_text()
    version = entry.details["versions"]["onnxruntime"]
    assert f'"com.microsoft.onnxruntime:onnxruntime-android:{version}"' in readme
    assert "## ONNX Runtime Mobile" in readme and "opset 17" in readme and "{{" not in readme
