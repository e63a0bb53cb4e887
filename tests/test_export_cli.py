"""`cnnx export` as a user runs it: defaults, bad input and re-export."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.cli import cnnx
from toolkit.manifest import load_manifest

pytestmark = pytest.mark.slow


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert lines[0].startswith("cnnx: error: ")
    return lines[0]


def _hashes_hold(folder: Path) -> dict[str, str]:
    """Every file the manifest names is there with its hash; returns path -> sha256."""
    manifest = load_manifest(folder)
    for entry in manifest.artifacts.values():
        manifest.artifact_path(entry, check=True)
    for sample in manifest.samples:
        manifest.sample_path(sample, check=True)
    return {f["path"]: f["sha256"] for e in manifest.artifacts.values() for f in e.files}


@pytest.fixture
def project(tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder with the tiny run under ./runs, as after `cnnx train`."""
    shutil.copytree(tiny_run, tmp_path / "runs" / "tiny")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_export_int8_exactly_as_written(project: Path) -> None:
    code, out, err = cnnx("export", "--to", "tflite", "--quantize", "int8")
    assert code == 0, err
    manifest = load_manifest(project / "artifacts")
    assert set(manifest.artifacts) == {"savedmodel", "tflite_int8"}
    entry = manifest.artifact("tflite_int8")
    assert entry.details["fully_integer"] is True
    assert entry.inputs[0]["dtype"] == "uint8"
    assert manifest.source["path"] == str((project / "runs" / "tiny").resolve())
    assert manifest.command == "cnnx export --to tflite --quantize int8"
    assert "tflite_int8" in out and "manifest:" in out
    assert not [p for p in project.iterdir() if p.name.startswith(".")]  # no leftovers


def test_reexport_one_format_keeps_the_others(
    artifacts: Path, tiny_run: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "artifacts"
    shutil.copytree(artifacts, folder)
    before = _hashes_hold(folder)
    old = load_manifest(folder)
    code, _, err = cnnx(
        "export",
        "--model",
        str(tiny_run),
        "--to",
        "tfjs",
        "--tfjs-quantize",
        "uint16",
        "--out",
        str(folder),
    )
    assert code == 0, err
    after = _hashes_hold(folder)
    new = load_manifest(folder)
    assert set(new.artifacts) == set(old.artifacts)
    untouched = [k for k in old.artifacts if k not in ("savedmodel", "tfjs_uint16")]
    for key in untouched:
        assert new.artifacts[key].files == old.artifacts[key].files
        assert new.artifacts[key].details["exported"] == old.artifacts[key].details["exported"]
    assert (
        new.artifacts["tfjs_uint16"].details["exported"]
        >= old.artifacts["tfjs_uint16"].details["exported"]
    )
    assert before.keys() == after.keys()
    assert new.samples == old.samples


def test_another_model_is_refused_without_force(artifacts: Path, tmp_path: Path) -> None:
    import keras

    from toolkit.sources.pivot import save_pivot

    folder = tmp_path / "artifacts"
    shutil.copytree(artifacts, folder)
    before = _hashes_hold(folder)
    spec = load_manifest(folder).input
    keras.utils.set_random_seed(3)
    inputs = keras.Input(spec.shape)
    x = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs))
    other = tmp_path / "other_saved_model"
    save_pivot(keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x)), other)

    args = [
        "export",
        "--model",
        str(other),
        "--to",
        "tflite",
        "--quantize",
        "none",
        "--out",
        str(folder),
    ]
    code, _, err = cnnx(*args)
    assert code == 3
    assert "holds artifacts of another model" in _one_error_line(err)
    assert _hashes_hold(folder) == before  # untouched

    code, _, err = cnnx(*args, "--force")
    assert code == 0, err
    manifest = load_manifest(folder)
    assert set(manifest.artifacts) == {"savedmodel", "tflite_float32"}
    assert manifest.source["format"] == "savedmodel" and len(manifest.labels) == 3
    assert not (folder / "tfjs").exists()  # nothing of the other model mixed in


def test_folder_that_is_not_artifacts_is_refused(project: Path) -> None:
    (project / "notes").mkdir()
    (project / "notes" / "todo.txt").write_text("mine")
    code, _, err = cnnx("export", "--to", "savedmodel", "--out", "notes")
    assert code == 3
    assert "holds no manifest.json" in _one_error_line(err)
    assert (project / "notes" / "todo.txt").read_text() == "mine"


@pytest.mark.parametrize("where", ["under-a-file", "proc"])
def test_output_folder_that_cannot_be_written(project: Path, where: str) -> None:
    if where == "under-a-file":
        (project / "afile").write_text("x")
        out = project / "afile" / "artifacts"
    else:
        out = Path("/proc/cnnx-cannot-write/artifacts")
    code, _, err = cnnx("export", "--to", "savedmodel", "--out", str(out))
    assert code == 3, err
    line = _one_error_line(err)
    assert str(out.parent) in line


def test_calibration_images_of_any_size_and_mode(project: Path) -> None:
    """Calibration pictures of another size or mode are brought to the model's input by the
    pixel rule (resize, RGB), not refused."""
    from PIL import Image

    folder = project / "calib-mixed"
    folder.mkdir()
    for i in range(3):
        Image.new("RGB", (48, 40), color=(i * 40, 90, 0)).save(folder / f"big{i}.png")
        Image.new("L", (21, 17), color=i * 60).save(folder / f"gray{i}.png")
    code, _, err = cnnx(
        "export", "--to", "tflite", "--quantize", "int8", "--calibration-data", str(folder)
    )
    assert code == 0, err
    record = load_manifest(project / "artifacts").artifact("tflite_int8").details["calibration"]
    assert record["count"] == 6 and record["resize"] == "bilinear"
    assert sorted(record["files"]) == sorted(p.name for p in folder.iterdir())


def test_few_calibration_images_warn(project: Path) -> None:
    code, _, err = cnnx(
        "export", "--to", "tflite", "--quantize", "int8", "--calibration-samples", "40"
    )
    assert code == 0, err
    assert "only 40 calibration images" in err
    entry = load_manifest(project / "artifacts").artifact("tflite_int8")
    assert entry.details["calibration"]["count"] == 40
    assert any("only 40" in w for w in entry.details["warnings"])


def test_op_without_int8_kernel_via_cli(project: Path) -> None:
    import tensorflow as tf
    from PIL import Image

    module = tf.Module()
    module.w = tf.Variable(np.ones((32 * 32 * 3, 3), np.float32) / 100)

    @tf.function(input_signature=[tf.TensorSpec([None, 32, 32, 3], tf.float32)])
    def serve(pixels: tf.Tensor) -> dict[str, tf.Tensor]:
        x = tf.math.sin(tf.reshape(pixels, [-1, 32 * 32 * 3]) / 255.0)
        return {"scores": tf.nn.softmax(tf.matmul(x, module.w))}

    module.serve = serve
    tf.saved_model.save(module, str(project / "sin_model"), signatures={"serving_default": serve})
    calib = project / "calib"
    calib.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(calib / f"{i}.png")
    args = ["export", "--model", "sin_model", "--to", "tflite", "--quantize", "int8"]
    code, _, err = cnnx(*args, "--calibration-data", "calib")
    assert code == 6
    line = _one_error_line(err)
    assert "op SIN has no int8 kernel" in line and "--float-fallback SIN" in line
    code, out, err = cnnx(*args, "--calibration-data", "calib", "--float-fallback", "SIN")
    assert code == 0, err
    assert "float fallback SIN" in out
    record = load_manifest(project / "artifacts").artifact("tflite_int8").details["calibration"]
    assert record["from"] == "folder" and record["count"] == 8 and record["files"][0] == "0.png"


def test_same_weights_from_the_runs_keras_file_join_the_folder(
    artifacts: Path, tiny_run: Path, tmp_path: Path
) -> None:
    """The run's .keras holds the same weights: it may add formats, with the same labels."""
    folder = tmp_path / "artifacts"
    shutil.copytree(artifacts, folder)
    keras_file = str(tiny_run / "model.keras")
    base = ["export", "--model", keras_file, "--to", "tflite", "--quantize", "none"]
    code, _, err = cnnx(*base, "--out", str(folder))
    assert code == 3  # default labels class_0.. differ from the run's names
    assert "same weights with other labels" in _one_error_line(err)
    code, _, err = cnnx(*base, "--out", str(folder), "--labels", str(tiny_run / "labels.txt"))
    assert code == 0, err
    manifest = load_manifest(folder)
    assert manifest.source["format"] == "keras"
    assert manifest.eval_data == load_manifest(artifacts).eval_data  # kept from the run
    assert set(manifest.artifacts) == set(load_manifest(artifacts).artifacts)
    _hashes_hold(folder)
