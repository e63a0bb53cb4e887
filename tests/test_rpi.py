"""The Raspberry Pi bundle: its contents, its classify.py on x86, and the same bundle on
an emulated Pi 4 (aarch64 Cortex-A72 under qemu, the bundle's pinned wheels), with LiteRT
and with ONNX Runtime."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.bundle_artifacts import LABELS, tiny_artifacts
from toolkit.manifest import ArtifactEntry, describe_files, load_manifest
from toolkit.packaging.rpi import package_rpi

pytestmark = pytest.mark.slow

VARIANTS = ("int8", "float32", "onnx_float32")


def with_onnx(root: Path, out: Path) -> Path:
    """A copy of the tiny artifacts that also lists onnx_float32: tf2onnx's conversion of
    the float32 .tflite, the same classifier (cnnx's exporter starts from a SavedModel,
    which the tiny folder does not keep; it is proven in test_onnx.py)."""
    import onnxruntime
    import tf2onnx

    shutil.copytree(root, out)
    manifest = load_manifest(out)
    model, _ = tf2onnx.convert.from_tflite(str(out / "tflite/model_float32.tflite"), opset=17)
    (out / "onnx").mkdir()
    (out / "onnx/model_float32.onnx").write_bytes(model.SerializeToString())
    tflite = manifest.artifacts["tflite_float32"]
    manifest.artifacts["onnx_float32"] = ArtifactEntry(
        id="onnx_float32",
        format="onnx",
        precision="float32",
        runtime="onnxruntime",
        path="onnx/model_float32.onnx",
        files=describe_files(out, "onnx/model_float32.onnx"),
        inputs=tflite.inputs,
        outputs=tflite.outputs,
        details={"opset": 17, "versions": {"onnxruntime": onnxruntime.__version__}},
    )
    manifest.save()
    return out


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tiny_artifacts(tmp_path_factory)
    artifacts = with_onnx(root, tmp_path_factory.mktemp("rpi-artifacts") / "artifacts")
    return package_rpi(artifacts, tmp_path_factory.mktemp("rpi-bundle") / "rpi")


def classify(bundle: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(bundle / "classify.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def classify_json(bundle: Path, *args: str) -> dict[str, Any]:
    process = classify(bundle, "--json", *args)
    assert process.returncode == 0, process.stderr
    return dict(json.loads(process.stdout))


def litert_top1(model: Path, images: list[Path]) -> list[int]:
    """An independent reading of the model: LiteRT directly, raw bytes in (scale 1)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model))
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]
    target = interpreter.get_output_details()[0]
    top = []
    for path in images:
        pixels = np.asarray(Image.open(path).convert("RGB"))[None]
        interpreter.set_tensor(source["index"], pixels.astype(source["dtype"]))
        interpreter.invoke()
        top.append(int(np.argmax(interpreter.get_tensor(target["index"])[0])))
    return top


def test_bundle_holds_models_labels_spec_scripts_and_test_images(bundle: Path) -> None:
    record = json.loads((bundle / "bundle.json").read_text())
    assert record["target"] == "rpi"
    assert (bundle / "labels.txt").read_text().splitlines() == list(LABELS)
    assert json.loads((bundle / "input_spec.json").read_text())["shape"] == [16, 16, 3]
    assert record["models"]["int8"]["inputs"][0]["dtype"] == "uint8"
    assert record["models"]["float32"]["inputs"][0]["dtype"] == "float32"
    for name in ("classify.py", "setup.sh"):
        assert (bundle / name).stat().st_mode & 0o111, f"{name} is not executable"
    pins = [
        line
        for line in (bundle / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert "ai-edge-litert==2.3.0" in pins
    assert all("==" in line for line in pins), pins
    truth = json.loads((bundle / "test_images" / "ground_truth.json").read_text())["images"]
    assert len(truth) == 20
    assert all((bundle / "test_images" / t["file"]).is_file() for t in truth)
    assert all(LABELS[t["index"]] == t["label"] for t in truth)
    # Every file is recorded with its hash, and the hashes hold.
    listed = {f["path"]: f["sha256"] for f in record["files"]}
    present = {
        p.relative_to(bundle).as_posix()
        for p in bundle.rglob("*")
        if p.is_file() and p.name != "bundle.json"
    }
    assert set(listed) == present
    for path, digest in listed.items():
        assert hashlib.sha256((bundle / path).read_bytes()).hexdigest() == digest, path
    readme = (bundle / "README.md").read_text()
    assert "./setup.sh" in readme and "{{" not in readme
    # The exported ONNX model travels with its runtime, pinned as the lock pins it.
    onnx = record["models"]["onnx_float32"]
    assert (onnx["file"], onnx["runtime"]) == ("models/model_float32.onnx", "onnxruntime")
    lock = Path(__file__).parents[1] / "requirements.lock"
    pinned = next(x for x in lock.read_text().splitlines() if x.startswith("onnxruntime=="))
    onnx_pins = [
        line
        for line in (bundle / "requirements-onnx.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert pinned in onnx_pins and all("==" in line for line in onnx_pins), onnx_pins
    assert "## ONNX Runtime" in readme and "classify.py --model onnx_float32" in readme


def test_zip_holds_exactly_the_folder_under_its_name(bundle: Path) -> None:
    with zipfile.ZipFile(bundle.with_suffix(".zip")) as archive:
        names = {info.filename: info for info in archive.infolist()}
        folder = {
            f"rpi/{p.relative_to(bundle).as_posix()}" for p in bundle.rglob("*") if p.is_file()
        }
        assert set(names) == folder
        assert all(not n.startswith("/") and ".." not in n.split("/") for n in names)
        assert (names["rpi/classify.py"].external_attr >> 16) & 0o111
        assert (
            archive.read("rpi/models/model_int8.tflite")
            == (bundle / "models" / "model_int8.tflite").read_bytes()
        )


def test_classify_reproduces_litert_and_the_recorded_accuracy_on_x86(bundle: Path) -> None:
    record = json.loads((bundle / "bundle.json").read_text())
    for variant in ("int8", "float32"):
        report = classify_json(bundle, "--model", variant, "--top-k", "2")
        results = report["results"]
        images = [Path(r["file"]) for r in results]
        assert [r["top"][0]["index"] for r in results] == litert_top1(
            bundle / "models" / f"model_{variant}.tflite", images
        )
        assert all(len(r["top"]) == 2 for r in results)
        assert all(r["top"][0]["label"] == LABELS[r["top"][0]["index"]] for r in results)
        accuracy = report["summary"]["accuracy"]
        assert accuracy == record["models"][variant]["accuracy_test_images"]
        assert accuracy == sum(r["correct"] for r in results) / len(results)
        assert accuracy >= 0.8  # the tiny model does learn the colours
        if variant == "int8":  # uint8 output: raw integers, dequantized with scale 1/256
            assert all(isinstance(v, int) for r in results for v in r["raw"])
            scale = record["models"]["int8"]["outputs"][0]["quantization"]["scale"]
            assert results[0]["scores"] == [v * scale for v in results[0]["raw"]]
        if variant == "float32":
            float32_scores = np.array([r["scores"] for r in results])
    # The ONNX model in ONNX Runtime: the float32 classifier's answers.
    report = classify_json(bundle, "--model", "onnx_float32")
    assert report["runtime"] == "onnxruntime"
    scores = np.array([r["scores"] for r in report["results"]])
    np.testing.assert_allclose(scores, float32_scores, rtol=0, atol=1e-5)
    assert report["summary"]["accuracy"] == record["models"]["onnx_float32"]["accuracy_test_images"]


def test_classify_bench_and_plain_output(bundle: Path) -> None:
    report = classify_json(bundle, "--bench", "20")
    bench = report["bench"]
    assert bench["runs"] == 20
    assert 0 < bench["min_ms"] <= bench["p50_ms"] <= bench["p90_ms"] <= bench["p99_ms"]
    assert report["load_ms"] > 0  # what a remote bench row reports as load time
    image = bundle / "test_images" / "000_blue.png"
    process = classify(bundle, str(image), "--top-k", "1")
    assert process.returncode == 0, process.stderr
    line = process.stdout.strip().splitlines()[0]
    assert line.startswith(f"{image}: ") and line.split(": ")[1].split()[0] in LABELS


def test_classify_refuses_bad_paths_and_changed_models(bundle: Path, tmp_path: Path) -> None:
    missing = classify(bundle, str(tmp_path / "nope.png"))
    assert missing.returncode == 3
    assert missing.stderr.strip() == f"classify.py: error: {tmp_path / 'nope.png'} does not exist"
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    assert classify(bundle, str(broken)).returncode == 3

    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    model = copy / "models" / "model_int8.tflite"
    model.write_bytes(model.read_bytes()[:-1] + b"\x00")
    changed = classify(copy)
    assert changed.returncode == 4
    assert "does not match its sha256" in changed.stderr
    assert len(changed.stderr.strip().splitlines()) == 1

    reference = classify(bundle, "--model", "onnx_float32", "--reference-kernels")
    assert reference.returncode == 2
    assert "--reference-kernels is LiteRT's" in reference.stderr


# One emulated Python runs classify.py's main() with each model in turn: qemu starts
# once, not once per model. Prints {model: [exit code, its stdout]} as one JSON line.
EACH_MODEL = """
import contextlib, io, json, sys
sys.path.insert(0, ".")
import classify
answers = {}
for model in sys.argv[1:]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = classify.main(["--json", "--model", model, "--bench", "5"])
    answers[model] = [code, out.getvalue()]
print(json.dumps(answers))
"""


@pytest.mark.emulation
def test_bundle_gives_the_same_answers_on_an_emulated_pi4(bundle: Path) -> None:
    """classify.py under qemu-aarch64 (Cortex-A72) with the bundle's pinned aarch64 wheels:
    int8 outputs within one step of x86 LiteRT, float32 within 1e-5 in LiteRT and in ONNX
    Runtime, the same accuracy."""
    from toolkit.autoquant.emulation import find_emulator

    emulator = find_emulator()  # in CI a missing cache is a failure: make emulation
    assert (emulator.site / "onnxruntime").is_dir(), "the cache predates ONNX: make emulation"
    record = json.loads((bundle / "bundle.json").read_text())
    process = emulator.run_python(["-c", EACH_MODEL, *VARIANTS], cwd=bundle)
    assert process.returncode == 0, process.stderr[-2000:]
    answers = json.loads(process.stdout.strip().splitlines()[-1])
    for variant in VARIANTS:
        code, stdout = answers[variant]
        assert code == 0, (variant, process.stderr[-2000:])
        pi = json.loads(stdout)
        host = classify_json(bundle, "--model", variant)
        assert pi["machine"] == "aarch64" and pi["python"].startswith("3.11")
        assert host["machine"] != "aarch64"
        assert pi["runtime"] == host["runtime"]
        assert [Path(r["file"]).name for r in pi["results"]] == [
            Path(r["file"]).name for r in host["results"]
        ]
        pi_scores = np.array([r["scores"] for r in pi["results"]])
        host_scores = np.array([r["scores"] for r in host["results"]])
        if variant == "int8":
            # Identical here; in general at most one step apart, because x86 and aarch64
            # LiteRT round int8 requantization differently (test_package_exported.py).
            pi_raw = np.array([r["raw"] for r in pi["results"]])
            host_raw = np.array([r["raw"] for r in host["results"]])
            assert np.abs(pi_raw - host_raw).max() <= 1
            assert (pi_raw == host_raw).mean() >= 0.98
        else:
            np.testing.assert_allclose(pi_scores, host_scores, rtol=0, atol=1e-5)
        assert [r["top"][0]["index"] for r in pi["results"]] == [
            r["top"][0]["index"] for r in host["results"]
        ]
        accuracy = pi["summary"]["accuracy"]
        assert accuracy == host["summary"]["accuracy"]
        assert accuracy == record["models"][variant]["accuracy_test_images"]
        assert pi["bench"]["runs"] == 5 and pi["bench"]["p50_ms"] > 0


def test_camera_frames_are_cropped_and_classified_like_files(
    bundle: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--camera with a stand-in picamera2 (no camera here): frames arrive B,G,R as
    libcamera's RGB888 stores them, wider than the model; the input spec says centre
    crop, so classify.py crops them and must give what it gives for the same picture read
    from a file."""
    import importlib.util
    import types

    spec = importlib.util.spec_from_file_location("rpi_classify_camera", bundle / "classify.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    images = sorted((bundle / "test_images").glob("*.png"))[:3]
    frames = []
    for path in images:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        wide = np.zeros((16, 24, 3), np.uint8)  # 3:2, the model's 16x16 in the middle
        wide[:, 4:20] = rgb
        frames.append(wide[..., ::-1].copy())

    class FakeCamera:
        def create_preview_configuration(self, main: dict[str, Any]) -> dict[str, Any]:
            return main

        def configure(self, config: dict[str, Any]) -> None:
            assert config["format"] == "RGB888"

        def start(self) -> None:
            self.queue = list(frames)

        def capture_array(self) -> np.ndarray:
            return self.queue.pop(0)

        def stop(self) -> None:
            pass

    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=FakeCamera))
    assert module.main(["--camera", "--frames", str(len(frames)), "--json", "--top-k", "3"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    expected = module.classify_files(module.Classifier("int8", 1), images, 3)["results"]
    assert [line["frame"] for line in lines] == list(range(len(frames)))
    assert [line["top"] for line in lines] == [r["top"] for r in expected]
