"""The 96x96 proof: a keras.applications MobileNetV2 (alpha 0.35) nested in a functional
model, a folder of 32x32 JPEGs, then exactly `cnnx export --model M --to all --data DIR
--labels L --preprocess symmetric` and `cnnx verify` with no data flags: every one of the
12 artifacts in verify's default runtimes (TensorFlow, LiteRT, ONNX Runtime, TF.js in
Node) on the 200 evaluation images the export kept, each held to its default tolerances.
TF.js in Node runs on wasm alone: its pure-JavaScript cpu backend takes minutes over 200
pictures at 96x96, and runs the ResNet family's at 32x32 (test_byom_families.py).

Bench with no data flags is proven on the ResNet family (test_byom_families.py): here it
would only repeat verify's matrix. TF.js in Chromium on a full keras.applications graph is
proven by test_tfjs_fused_bias.py (an EfficientNet on wasm in Node).

Apart from test_byom_families.py, whose pictures it shares, so that the two longest files
of the suite run side by side on two workers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_byom_families import export_and_verify, pictures

pytestmark = [pytest.mark.slow, pytest.mark.node]
__all__ = ["pictures"]  # the folder fixture, shared with the other families


def test_mobilenet_v2_at_96_from_a_folder_of_32x32_jpegs(
    tmp_path: Path, pictures: tuple[Path, Path]
) -> None:
    out = tmp_path / "mobilenet_v2-artifacts"
    said, report = export_and_verify("mobilenet_v2", pictures, out, "--backends", "wasm")
    assert "input: 96x96 RGB, bilinear resize, x * 0.00784314 - 1 (--preprocess symmetric)" in said
    labels = {row["label"] for row in report["rows"]}  # runtime, and backend where it has one
    assert labels == {"tf", "litert", "onnxruntime", "tfjs-node/wasm"}
