"""The architectures people ship, through export, verify and bench with the flags they
naturally have (trained small by tests/factories.py, shipped under tests/models/). The 96x96
MobileNetV2 has a file of its own (test_byom_mobilenet.py), so that the two run side by
side on two workers.

- Every keras.applications family at 32x32 (MobileNetV3Small, EfficientNet, a ResNet
  with a logits head) goes through `export --to all` with its pictures and a labels file,
  then `verify` with no data flags: all 12 artifacts, in verify's default runtimes
  (TensorFlow, LiteRT, ONNX Runtime, TF.js in Node on wasm), on the evaluation pictures
  the export kept, each held to its default tolerances. TF.js' pure-JavaScript cpu
  backend, the slowest rows on these two, runs the ResNet's artifacts below.
- What a user without pictures gets is proven on the ResNet, first: the 10 artifacts that
  need none (int8 is skipped with the flag that adds it), exit 0, and verify's parity on
  generated pictures; then `--to tflite --quantize int8 --data` adds int8 and the
  evaluation set to the same folder, and bench (verify's checks plus timing) needs no
  data flags: it reads that evaluation set from the manifest and holds the new int8
  artifact to int8's default tolerances. Bench's full matrix would repeat verify's; the
  other runtimes are proven on their own files (test_browser.py, test_litertjs*.py,
  test_onnx_web.py), and bench's timing in test_bench.py.
- The tf_keras `.h5` family goes through `export --to all` with its pictures, verify and
  bench in test_byom_export.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli import cnnx
from tests.factories import NAMES, family, shapes, write_folder
from toolkit.manifest import load_manifest

pytestmark = [pytest.mark.slow, pytest.mark.node]

BENCH_TIMING = ("--runs", "3", "--warmup", "1")  # timing knobs only: figures are not the point


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A user's folder of 32x32 JPEGs in class subfolders, and labels.txt."""
    root = tmp_path_factory.mktemp("byom-pictures")
    # Other pictures than the models were trained on, enough that --data's split keeps 200
    # to calibrate int8 (fewer than 100 make noisy int8 ranges) and 200 to evaluate.
    x, y = shapes(400, seed=23)
    write_folder(root / "pictures", x, y, by_index=False)
    (root / "labels.txt").write_text("".join(f"{name}\n" for name in NAMES))
    return root / "pictures", root / "labels.txt"


def check_report(report: dict[str, Any], *, labelled: bool) -> None:
    """Every row ran and passed; rows have an accuracy exactly when pictures are labelled."""
    ok = [row for row in report["rows"] if row["status"] == "ok"]
    assert ok and len(ok) == len(report["rows"]), [r["status"] for r in report["rows"]]
    assert all((row["metrics"]["accuracy"] is not None) == labelled for row in ok)


def export_args(name: str, pictures: tuple[Path, Path], out: Path) -> tuple[Any, ...]:
    """`cnnx export` of a family with its labels and its input flags, into `out`."""
    model = family(name)
    assert model.accuracy >= 0.9, (name, model.accuracy)
    return ("export", "--model", model.path, "--labels", pictures[1], *model.flags, "--out", out)


def export_and_verify(
    name: str, pictures: tuple[Path, Path], out: Path, *verify_flags: str
) -> tuple[str, dict[str, Any]]:
    """`export --to all --data` then `verify` with no data flags: all 12 artifacts pass
    on the 200 evaluation pictures the export kept. Export's output and verify's report."""
    code, said, err = cnnx(*export_args(name, pictures, out), "--to", "all", "--data", pictures[0])
    assert code == 0, err
    manifest = load_manifest(out)
    assert len(manifest.artifacts) == 12
    assert manifest.source["output"]["kind"] == family(name).kind
    code, stdout, err = cnnx("verify", out, "--json", *verify_flags)
    assert code == 0, stdout + err
    report = json.loads(stdout)
    assert report["data"].startswith("evaluation images of") and report["images"] == 200
    check_report(report, labelled=True)
    assert {row["artifact"] for row in report["rows"]} == set(manifest.artifacts)
    return " ".join(said.split()), report  # the terminal may wrap a line


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "efficientnet"])
def test_every_artifact_of_the_family_on_its_own_pictures(
    name: str, tmp_path: Path, pictures: tuple[Path, Path]
) -> None:
    out = tmp_path / f"{name}-artifacts"
    said, report = export_and_verify(name, pictures, out, "--backends", "wasm")
    assert "the head gives logits" not in said
    labels = {row["label"] for row in report["rows"]}  # runtime, and backend where it has one
    assert labels == {"tf", "litert", "onnxruntime", "tfjs-node/wasm"}


def test_a_logits_family_with_no_pictures_then_its_pictures(
    tmp_path: Path, pictures: tuple[Path, Path]
) -> None:
    out = tmp_path / "resnet-artifacts"
    given = export_args("resnet", pictures, out)
    code, stdout, err = cnnx(*given)
    assert code == 0, err
    assert "the head gives logits (no softmax)" in " ".join(stdout.split())
    manifest = load_manifest(out)
    assert manifest.source["output"]["kind"] == "logits"
    assert len(manifest.artifacts) == 10 and "tflite_int8" not in manifest.artifacts
    # Without pictures: no int8 artifact (onnx_int8 is calibrated on the same images).
    skipped = [line for line in stdout.splitlines() if line.startswith("skipped")]
    names = sorted(line.split(":")[0] for line in skipped)
    assert names == ["skipped onnx_int8", "skipped tflite_int8"], skipped
    assert all("--data DIR" in line for line in skipped), skipped
    code, stdout, err = cnnx("verify", out)
    assert code == 0, stdout + err
    said = " ".join(stdout.split())  # the terminal may wrap the title
    assert "on generated pictures, 64 images (none on record: parity only, no accuracy)" in said
    # Their pictures add full int8 and the evaluation set; verify and bench need no more.
    code, stdout, err = cnnx(*given, "--to", "tflite", "--quantize", "int8", "--data", pictures[0])
    assert code == 0, err
    assert len(load_manifest(out).artifacts) == 11  # onnx_int8 is made by --to onnx
    # Bench is verify's matrix plus timing, with verify's default tolerances (exit 9 on
    # drift): on the new int8 artifact alone it proves both need no data flags now, and
    # holds int8 to its tolerances on the family's own labelled pictures.
    only = ("--artifacts", "tflite_int8", "--runtimes", "litert")
    code, stdout, err = cnnx("bench", out, *BENCH_TIMING, *only)
    assert code == 0, stdout + err
    report = json.loads((out / "report" / "report.json").read_text())
    check_report(report, labelled=True)
    assert {(row["artifact"], row["runtime"]) for row in report["rows"]} == {
        ("tflite_int8", "litert")
    }
