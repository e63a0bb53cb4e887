"""The 96x96 proof: a keras.applications MobileNetV2 (alpha 0.35) nested in a functional
model, a folder of 32x32 JPEGs, then exactly `cnnx export --model M --to all --data DIR
--labels L --preprocess symmetric` and `cnnx verify` with no data flags: every one of the
12 artifacts in verify's default runtimes (TensorFlow, LiteRT, ONNX Runtime, TF.js in
Node) on the 200 evaluation images the export kept, each held to its default tolerances.
TF.js in Node runs on wasm alone: its pure-JavaScript cpu backend takes minutes over 200
pictures at 96x96, and runs every family's artifacts at 32x32 (test_byom_families.py).

Bench with no data flags is proven on every other family (test_byom_families.py): here it
would only repeat verify's matrix. TF.js in Chromium on a full keras.applications graph is
proven by test_tfjs_fused_bias.py (EfficientNetB0 on wasm in Node and Chromium).

Apart from test_byom_families.py, whose pictures it shares, so that the two longest files
of the suite run side by side on two workers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli import cnnx
from tests.factories import Family, family
from tests.test_byom_families import pictures
from toolkit.manifest import load_manifest

pytestmark = [pytest.mark.slow, pytest.mark.node]
__all__ = ["pictures"]  # the folder fixture, shared with the other families


def test_mobilenet_v2_at_96_from_a_folder_of_32x32_jpegs(
    tmp_path: Path, pictures: tuple[Path, Path]
) -> None:
    model: Family = family("mobilenet_v2")
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
    code, stdout, err = cnnx("verify", out, "--backends", "wasm", "--json")
    assert code == 0, stdout + err
    report = json.loads(stdout)
    assert report["data"].startswith("evaluation images of") and report["images"] == 200
    assert report["labelled"] and all(row["status"] == "ok" for row in report["rows"]), [
        (row["artifact"], row["runtime"], row["status"]) for row in report["rows"]
    ]
    labels = {row["label"] for row in report["rows"]}  # runtime, and backend where it has one
    assert labels == {"tf", "litert", "onnxruntime", "tfjs-node/wasm"}
    assert {row["artifact"] for row in report["rows"]} == set(manifest.artifacts)
