"""The 96x96 proof: a keras.applications MobileNetV2 (alpha 0.35) nested in a functional
model, a folder of 32x32 JPEGs, then exactly `cnnx export --model M --to all --data DIR
--labels L --preprocess symmetric`, `cnnx verify` (its default runtimes, ONNX Runtime
included) and `cnnx bench` with nothing more (bench's timing knobs aside).

Apart from test_byom_families.py, whose pictures and report checks it shares, so that the
two longest files of the suite run side by side on two workers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli import cnnx
from tests.factories import Family, family
from tests.test_byom_families import BENCH_TIMING, RUNTIMES, check_report, pictures
from toolkit.manifest import load_manifest

pytestmark = [pytest.mark.slow, pytest.mark.browser]
__all__ = ["pictures"]  # the folder fixture, shared with the other families


def test_mobilenet_v2_at_96_from_a_folder_of_32x32_jpegs(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, pictures: tuple[Path, Path]
) -> None:
    model: Family = family("mobilenet_v2", tmp_path_factory)
    assert model.accuracy >= 0.9, model.accuracy
    folder, labels = pictures
    out = tmp_path / "mobilenet_v2-artifacts"
    code, stdout, err = cnnx(
        "export", "--model", model.path, "--to", "all", "--data", folder, "--labels", labels,
        *model.flags, "--out", out,
    )  # fmt: skip
    assert code == 0, err
    assert (
        "input: 96x96 RGB, bilinear resize, x * 0.00784314 - 1 (--preprocess symmetric)" in stdout
    )
    manifest = load_manifest(out)
    assert len(manifest.artifacts) == 12
    code, stdout, err = cnnx("verify", out)
    assert code == 0, stdout + err
    said = " ".join(stdout.split())  # the terminal may wrap the title
    assert "on evaluation images of" in said and "200 images" in said
    code, stdout, err = cnnx("bench", out, *BENCH_TIMING, "--runtimes", RUNTIMES)
    assert code == 0, stdout + err
    report = check_report(out, labelled=True)
    assert {row["runtime"] for row in report["rows"]} >= {"tf", "litert", "tfjs-node", "browser"}
