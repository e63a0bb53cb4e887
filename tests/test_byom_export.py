"""`cnnx export` on a model someone already has, as a user runs it, then `cnnx verify` and
`cnnx bench` with no flags: with a folder of their images (class subfolders named by
index, labels from a JSON file, names holding "/"), with a flat folder; a Keras 3 model
with Dropout re-exported into its own folder; and every bad input (int8 asked for with no
pictures among them): one line, its exit code, nothing written. An export with no
pictures at all, and verify on generated pictures after it, is proven on every
keras.applications family (test_byom_families.py); bench with no flags runs on one
artifact here, verify's matrix being the parity proof.

The model is a user's Keras 2 CNN (Conv -> Activation -> BatchNorm, trained by tf_keras
on `shapes` pictures, saved as `.h5`, fed x/255: `--scale 1/255`), so int8 agreement and
accuracy mean something (tests/factories.py).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.cli import cnnx
from tests.corpus.files import snapshot
from tests.factories import family, shapes, tiny_cnn
from toolkit.manifest import load_manifest

pytestmark = pytest.mark.slow

# The model's classes, one named the way real label sets name them ("T-shirt/top").
LABELS = ["circle/disk", "square", "cross", "bar"]
SCALE = ("--scale", "1/255")


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("cnnx: error: ") and "Traceback" not in stderr
    return lines[0]


@pytest.fixture(scope="module")
def user(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's folder: model.h5, labels.json and their pictures (32x32 JPEGs)."""
    root = tmp_path_factory.mktemp("user")
    built = family("conv_act_bn_h5")
    shutil.copyfile(built.path, root / "model.h5")
    (root / "labels.json").write_text(json.dumps(LABELS))
    x, y = shapes(120, seed=31)
    for i, (picture, label) in enumerate(zip(x, y, strict=True)):
        folder = root / "pictures" / str(int(label))  # "circle/disk" cannot be a folder name
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(picture).save(folder / f"{i:03d}.jpg", quality=92)
        flat = root / "flat"
        flat.mkdir(exist_ok=True)
        if i < 40:
            Image.fromarray(picture).resize((45, 37)).save(flat / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def exported(user: Path) -> tuple[Path, str]:
    out = user / "artifacts"
    code, stdout, err = cnnx(
        "export", "--model", user / "model.h5", "--to", "all",
        "--data", user / "pictures", "--labels", user / "labels.json", *SCALE, "--out", out,
    )  # fmt: skip
    assert code == 0, err
    return out, stdout


def test_export_with_a_folder_of_pictures(user: Path, exported: tuple[Path, str]) -> None:
    out, stdout = exported
    manifest = load_manifest(out)
    assert len(manifest.artifacts) == 12 and manifest.export["skipped"] == {}
    assert manifest.labels == LABELS
    assert "input: 32x32 RGB, bilinear resize, x * 0.00392157\n" in stdout
    assert manifest.input.scale == 1 / 255
    # Calibration and evaluation images are apart, and the split is on record.
    record = manifest.eval_data or {}
    calibration = manifest.artifact("tflite_int8").details["calibration"]
    assert record["kind"] == "images" and record["labelled"] is True
    assert record["split"] == calibration["split"]
    assert record["split"]["disjoint"] and record["split"]["calibration"] == 60
    assert not set(record["files"]) & set(calibration["files"])
    assert len(record["files"]) == len(record["labels"]) == 60
    assert all(
        f.split("/")[0] == str(k) for f, k in zip(record["files"], record["labels"], strict=True)
    )
    # Samples for the page and the bundles carry the names, "/" and all.
    names = {s["label_name"] for s in manifest.samples}
    assert "circle/disk" in names and all(s["split"] == "evaluation" for s in manifest.samples)


def test_verify_and_bench_need_no_flags_afterwards(exported: tuple[Path, str]) -> None:
    out, _ = exported
    code, stdout, err = cnnx("verify", out, "--json")
    assert code == 0, err
    report = json.loads(stdout)
    assert report["labelled"] and report["images"] == 60
    reference = {(r["artifact"], r["runtime"]): r for r in report["rows"]}[("savedmodel", "tf")]
    assert reference["metrics"]["accuracy"] >= 0.9
    assert report["data"].startswith("evaluation images of")
    rows = {(r["artifact"], r["runtime"]): r for r in report["rows"]}
    int8 = rows[("tflite_int8", "litert")]["metrics"]
    assert int8["agreement"] >= 0.98 and int8["accuracy"] is not None
    # Bench reads the same evaluation set with no flags: one artifact is enough to show it
    # (verify's matrix above; bench's own timing is test_bench.py's).
    only = ("--artifacts", "tflite_int8", "-r", "litert")
    code, _, err = cnnx("bench", out, "--runs", "3", "--warmup", "1", *only)
    assert code == 0, err
    bench = json.loads((out / "report" / "report.json").read_text())
    # One row per LiteRT thread count, each on the labelled evaluation set.
    assert {(r["artifact"], r["status"]) for r in bench["rows"]} == {("tflite_int8", "ok")}
    assert all(r["metrics"]["accuracy"] is not None for r in bench["rows"])


def test_int8_asked_for_without_pictures_is_an_error(user: Path) -> None:
    # What an export with no data makes, and verify on generated pictures after it, is
    # proven on every keras.applications family (test_byom_families.py).
    before = snapshot(user)
    code, _, err = cnnx(
        "export", "--model", user / "model.h5", "--to", "tflite", "--quantize", "int8", *SCALE,
        "--out", user / "int8-only",
    )  # fmt: skip
    assert code == 5
    assert "full int8 needs calibration images" in one_error_line(err)
    assert snapshot(user) == before


def test_a_flat_folder_gives_parity_and_no_accuracy(user: Path) -> None:
    out = user / "flat-artifacts"
    code, stdout, err = cnnx(
        "export", "--model", user / "model.h5", "--to", "tflite", "--quantize", "int8",
        "--data", user / "flat", "--labels", user / "labels.json", *SCALE, "--out", out,
    )  # fmt: skip
    assert code == 0, err
    assert "has no class subfolders" in stdout
    # Parity, and how well int8 holds on 20 calibration pictures is not the point here.
    code, stdout, err = cnnx("verify", out, "-r", "tf,litert", "--min-agreement", "int8=90%")
    assert code == 0, err
    assert "(unlabelled: parity only, no accuracy)" in " ".join(stdout.split())


def test_a_dropout_model_reexports_into_its_own_folder(tmp_path: Path) -> None:
    tiny_cnn(dropout=0.4, seed=1).save(tmp_path / "mine.keras")
    tiny_cnn(dropout=0.4, seed=2).save(tmp_path / "other.keras")
    out = tmp_path / "artifacts"
    code, _, err = cnnx(
        "export", "--model", tmp_path / "mine.keras", "--to", "savedmodel", "--out", out
    )
    assert code == 0, err
    code, _, err = cnnx(
        "export", "--model", tmp_path / "mine.keras", "--to", "tflite", "--quantize", "none",
        "--out", out,
    )  # fmt: skip
    assert code == 0, err
    assert set(load_manifest(out).artifacts) == {"savedmodel", "tflite_float32"}
    before = snapshot(out)
    code, _, err = cnnx(
        "export", "--model", tmp_path / "other.keras", "--to", "savedmodel", "--out", out
    )
    assert code == 3 and "holds artifacts of another model" in one_error_line(err)
    assert snapshot(out) == before


def _two_outputs(folder: Path) -> Path:
    import keras

    inputs = keras.Input((16, 16, 3), name="image")
    features = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
    heads = [
        keras.layers.Dense(3, name="kind")(features),
        keras.layers.Dense(4, name="box")(features),
    ]
    keras.Model(inputs, heads).save(folder / "two.keras")
    return folder / "two.keras"


def test_bad_inputs_get_one_line_and_their_code(user: Path, tmp_path: Path) -> None:
    model = user / "model.h5"
    mixed = tmp_path / "mixed"
    (mixed / "0").mkdir(parents=True)
    Image.new("RGB", (5, 7)).save(mixed / "0" / "a.png")
    Image.new("RGB", (5, 7)).save(mixed / "loose.png")
    unknown = tmp_path / "unknown"
    (unknown / "zebra").mkdir(parents=True)
    Image.new("RGB", (5, 7)).save(unknown / "zebra" / "a.png")
    bad_csv = tmp_path / "labels.csv"
    bad_csv.write_text("0,circle\n3,ring\n")
    two = _two_outputs(tmp_path)
    out = tmp_path / "out"
    cases = [
        (["--data", tmp_path / "nowhere"], 3, "is not a folder"),
        (["--data", mixed], 5, "mixes class subfolders with 1 loose images"),
        (["--data", unknown, "--labels", user / "labels.json"], 5, "subfolder 'zebra' is neither"),
        (["--scale", "1/0"], 2, "takes a number or a fraction, got '1/0'"),
        (["--preprocess", "unit", "--scale", "1/255"], 2, "give the preset or the numbers"),
        (["--labels", bad_csv], 5, "numbers its classes 0, 3"),
        (
            [
                "--data",
                user / "pictures",
                "--calibration-data",
                user / "flat",
                "--eval-data",
                user / "flat",
            ],
            2,
            "--data is not used",
        ),
    ]
    for extra, code_wanted, said in cases:
        before = snapshot(tmp_path)
        code, _, err = cnnx("export", "--model", model, "--out", out, *extra)
        assert code == code_wanted, (extra, err)
        assert said in one_error_line(err), (extra, err)
        assert snapshot(tmp_path) == before, extra
    for extra, said in (
        ([], "2 outputs (kind, box)"),
        (["--output", "nope"], "no output or layer"),
    ):
        code, _, err = cnnx("export", "--model", two, "--out", out, *extra)
        assert code == 4 and said in one_error_line(err), err
    code, _, err = cnnx(
        "export", "--model", two, "--output", "kind", "--to", "savedmodel", "--out", out
    )
    assert code == 0, err
    assert np.array(load_manifest(out).artifact("savedmodel").outputs[0]["shape"]).tolist() == [
        -1,
        3,
    ]
