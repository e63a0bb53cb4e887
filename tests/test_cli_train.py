"""The train, info and demo commands, run as a user runs them (tests/cli.py).

Bad input must give the documented exit code, exactly one line on stderr, no traceback,
and nothing written.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.cli import Done, cnnx
from tests.factories import flat_classifier, tiny_cnn


def run_cli(*args: str, cwd: Path) -> Done:
    return cnnx(*args, cwd=cwd, env={"CNNX_DEBUG": None})  # the error lines users see


def snapshot(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


def assert_one_line_error(done: Done, code: int, *needles: str) -> None:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == code, (done.returncode, done.stderr)
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("cnnx: error: ")
    assert "Traceback" not in done.stderr + done.stdout
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.fixture(scope="module")
def bad_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bad-models")
    flat_classifier().save(folder / "flat.keras")
    good = tiny_cnn(20, 3, head="average")
    good.save(folder / "good.keras")
    good.save(folder / "good.h5")
    for name in ("good.keras", "good.h5"):
        blob = (folder / name).read_bytes()
        (folder / f"cut{Path(name).suffix}").write_bytes(blob[: len(blob) // 3])
    (folder / "notes.keras").write_text("my notes, not a model\n")
    (folder / "notes.h5").write_text("my notes, not a model\n")
    (folder / "not-a-savedmodel").mkdir()
    (folder / "not-a-savedmodel" / "variables.txt").write_text("x")
    return folder


@pytest.mark.parametrize(
    ("target", "code", "needle"),
    [
        ("missing.keras", 3, "does not exist"),
        ("not-a-savedmodel", 4, "not a run"),
        ("cut.keras", 4, "not a Keras archive"),
        ("cut.h5", 4, "not a readable HDF5"),
        ("notes.keras", 4, "not a Keras archive"),
        ("notes.h5", 4, "not a readable HDF5"),
        ("model.onnx", 4, "unknown model format"),
    ],
)
def test_info_bad_models(bad_models: Path, target: str, code: int, needle: str) -> None:
    if target == "model.onnx":
        (bad_models / target).write_bytes(b"\x08\x07")
    before = snapshot(bad_models)
    done = run_cli("info", str(bad_models / target), cwd=bad_models)
    assert_one_line_error(done, code, needle, target)
    assert snapshot(bad_models) == before


def _image_folder(root: Path, classes: dict[str, int]) -> Path:
    rng = np.random.default_rng(0)
    for name, count in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            pixels = rng.integers(0, 256, size=(30, 30, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


@pytest.mark.slow
def test_train_bad_data(tmp_path: Path, bad_models: Path) -> None:
    corrupt = _image_folder(tmp_path / "corrupt", {"a": 4, "b": 4})
    (corrupt / "b" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    single = _image_folder(tmp_path / "single", {"only": 6})
    (tmp_path / "empty").mkdir()
    work = tmp_path / "work"
    work.mkdir()
    cases = [
        (["--data", str(corrupt)], 5, "bad.png"),
        (["--data", str(tmp_path / "empty")], 5, "no class subfolders"),
        (["--data", str(single)], 5, "single class"),
        (["--data", str(tmp_path / "nowhere")], 3, "nowhere"),
        (["--size", "100", "--resume", str(bad_models / "flat.keras")], 4, "rank 2"),
        (["--size", "100", "--resume", str(bad_models / "good.keras")], 4, "(20, 20, 3)"),
        (["--data", "cifar10", "--data-path", str(bad_models / "notes.h5")], 5, "notes.h5"),
    ]
    for args, code, needle in cases:
        done = run_cli("train", *args, "--out", str(work / "run"), cwd=work)
        assert_one_line_error(done, code, needle)
        assert snapshot(work) == set(), (args, snapshot(work))  # nothing half-written


@pytest.mark.slow
def test_train_info_and_resume_end_to_end(tmp_path: Path) -> None:
    done = run_cli(
        "train", "--size", "300", "--epochs", "1", "--width", "0.25", "--out", "r1", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "test accuracy" in done.stdout and "epoch 1/1" in done.stdout
    record = json.loads((tmp_path / "r1" / "run.json").read_text())
    assert record["config"]["epochs"] == 1 and record["data"]["size"] == 300

    again = run_cli("train", "--size", "300", "--epochs", "1", "--out", "r1", cwd=tmp_path)
    assert_one_line_error(again, 3, "already exists")

    resumed = run_cli(
        "train", "--size", "300", "--epochs", "1", "--resume", "r1", "--out", "r2", cwd=tmp_path
    )
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((tmp_path / "r2" / "run.json").read_text())["model"]["resumed_from"] == "r1"

    info = run_cli("info", "r2", "--json", cwd=tmp_path)
    assert info.returncode == 0, info.stderr
    described = json.loads(info.stdout)
    assert described["kind"] == "run"
    assert described["inputs"] == [{"name": "image", "shape": [-1, 32, 32, 3], "dtype": "float32"}]
    assert described["outputs"][0]["shape"] == [-1, 10]
    assert described["preprocessing"]["scale"] == 1.0
    assert described["params"] == record["model"]["params"]
