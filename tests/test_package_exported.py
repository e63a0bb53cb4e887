"""Every bundle from a folder that `cnnx export --to all` really wrote (the session
`artifacts` fixture), and why its int8 model can answer one step apart on an emulated
Pi 4. The bundles' own proofs (the same answers on the emulated Pi, MediaPipe against
LiteRT) are in test_rpi.py and test_android.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.cli import cnnx
from toolkit.manifest import load_manifest, sha256_file
from toolkit.packaging import BUNDLE_TARGETS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bundles(artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("exported-bundles")
    for target in ("rpi", "android", "web"):
        result = cnnx("package", "--target", target, artifacts, "--out", out / target)
        assert result.returncode == 0, result.stderr
    return out


def test_every_target_bundles_the_exported_artifacts(artifacts: Path, bundles: Path) -> None:
    manifest = load_manifest(artifacts)
    for target in ("rpi", "android", "web"):
        assert (bundles / target).is_dir() and (bundles / f"{target}.zip").is_file()
    for target in ("rpi", "android"):
        record = json.loads((bundles / target / "bundle.json").read_text())
        assert record["target"] == target
        int8 = record["models"]["int8"]
        assert int8["inputs"][0]["dtype"] == "uint8"
        assert int8["inputs"][0]["shape"][0] == 1
        assert (bundles / target / "labels.txt").read_text().splitlines() == manifest.labels
    # One bundle.json schema for every target: the same fields, every model described
    # alike and matching its file.
    records = {t: json.loads((bundles / t / "bundle.json").read_text()) for t in BUNDLE_TARGETS}
    assert {r["schema"] for r in records.values()} == {"cnnx.bundle/2"}
    assert len({tuple(r) for r in records.values()}) == 1, {t: list(r) for t, r in records.items()}
    for target, record in records.items():
        assert record["samples"] > 0 and record["source"]["manifest_sha256"]
        for model in record["models"].values():
            assert {"file", "artifact", "sha256", "size", "inputs", "outputs"} <= set(model)
            assert sha256_file(bundles / target / model["file"]) == model["sha256"]
    rpi = json.loads((bundles / "rpi" / "bundle.json").read_text())["models"]
    # The export's int8 artifact passed verify (>= 98% agreement), so on its own test
    # images it is as accurate as the float model, give or take one image.
    samples = len(list((bundles / "rpi" / "test_images").glob("*.png")))
    drop = rpi["float32"]["accuracy_test_images"] - rpi["int8"]["accuracy_test_images"]
    assert drop <= 1 / samples + 1e-9


def _run_both(bundle: Path, args: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The same program on x86 (this venv) and on the emulated Pi 4; both JSON answers."""
    from toolkit.autoquant.emulation import find_emulator

    host = subprocess.run(
        [sys.executable, *args], cwd=bundle, capture_output=True, text=True, timeout=300
    )
    assert host.returncode == 0, host.stderr
    pi = find_emulator().run_python(args, cwd=bundle)
    assert pi.returncode == 0, pi.stderr[-2000:]
    return json.loads(host.stdout), json.loads(pi.stdout)


FIRST_CONV_DUMP = """
import json, pathlib, sys
import numpy as np
from PIL import Image
from ai_edge_litert import interpreter as litert

it = litert.Interpreter(
    model_path="models/model_int8.tflite",
    experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    experimental_preserve_all_tensors=True,
)
it.allocate_tensors()
conv = next(op for op in it._get_ops_details() if op["op_name"] == "CONV_2D")
source, weights, bias = (int(i) for i in conv["inputs"])
target = int(conv["outputs"][0])
details = {t["index"]: t for t in it.get_tensor_details()}
def quant(i):
    q = details[i]["quantization_parameters"]
    return [q["scales"].tolist(), q["zero_points"].tolist()]
answer = {"weights": it.get_tensor(weights).tolist(), "bias": it.get_tensor(bias).tolist(),
          "source_q": quant(source), "weights_q": quant(weights), "target_q": quant(target),
          "inputs": [], "outputs": []}
for path in sorted(pathlib.Path("test_images").glob("*.png")):
    pixels = np.asarray(Image.open(path).convert("RGB"))[None]
    it.set_tensor(it.get_input_details()[0]["index"], pixels)
    it.invoke()
    answer["inputs"].append(it.get_tensor(source)[0].tolist())
    answer["outputs"].append(it.get_tensor(target)[0].tolist())
print(json.dumps(answer))
"""


def _quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: real = q * 2**(shift - 31), q in [2**30, 2**31)."""
    fraction, shift = np.frexp(real)
    q = round(float(fraction) * (1 << 31))
    if q == 1 << 31:
        q, shift = q // 2, shift + 1
    return q, int(shift)


def _requantize(acc: np.ndarray, multiplier: int, shift: int, rounding: str) -> np.ndarray:
    """acc * multiplier * 2**(shift - 31), rounded as TFLite's two builds do."""
    if rounding == "single":  # TFLITE_SINGLE_ROUNDING: one rounding shift
        total = 31 - shift
        return (acc * multiplier + (1 << (total - 1))) >> total
    # Double rounding: SaturatingRoundingDoublingHighMul, then RoundingDivideByPOT.
    left, right = max(shift, 0), max(-shift, 0)
    product = (acc << left) * multiplier
    nudged = product + np.where(product >= 0, 1 << 30, 1 - (1 << 30))
    high = np.sign(nudged) * (np.abs(nudged) >> 31)  # C++ division truncates toward 0
    mask = (1 << right) - 1
    threshold = (mask >> 1) + (high < 0)
    return (high >> right) + ((high & mask) > threshold)


def _first_conv(dump: dict[str, Any], rounding: str) -> np.ndarray:
    """The first CONV_2D (3x3, stride 1, valid, ReLU) in exact integer arithmetic."""
    weights = np.array(dump["weights"], np.int64)  # [out, kh, kw, in]
    bias = np.array(dump["bias"], np.int64)
    x = np.array(dump["inputs"], np.int64) - int(dump["source_q"][1][0])  # [n, h, w, in]
    out_channels, kh, kw, _ = weights.shape
    n, h, w, _ = x.shape
    acc = np.zeros((n, h - kh + 1, w - kw + 1, out_channels), np.int64)
    for i in range(kh):
        for j in range(kw):
            window = x[:, i : i + h - kh + 1, j : j + w - kw + 1, :]
            acc += np.einsum("nhwc,oc->nhwo", window, weights[:, i, j, :])
    acc += bias
    source_scale = dump["source_q"][0][0]
    target_scale, target_zero = dump["target_q"][0][0], int(dump["target_q"][1][0])
    result = np.empty_like(acc)
    for channel in range(out_channels):
        real = source_scale * dump["weights_q"][0][channel] / target_scale
        multiplier, shift = _quantize_multiplier(real)
        result[..., channel] = _requantize(acc[..., channel], multiplier, shift, rounding)
    return np.clip(result + target_zero, target_zero, 127)  # fused ReLU in int8


@pytest.mark.emulation
def test_emulated_pi_computes_int8_exactly_as_aarch64_litert_rounds(
    bundles: Path, tmp_path: Path
) -> None:
    """Why int8 can differ by one step: the first conv layer, recomputed in exact
    integer arithmetic, matches x86 LiteRT with double rounding and the emulated
    aarch64 LiteRT with single rounding, bit for bit on every test image. So the
    emulator is exact and the difference is the two builds' rounding."""
    bundle = bundles / "rpi"
    script = bundle / "first_conv_dump.py"
    script.write_text(FIRST_CONV_DUMP)
    try:
        host, pi = _run_both(bundle, [script.name])
    finally:
        script.unlink()
    assert host["inputs"] == pi["inputs"]  # the same int8 input reaches the layer
    shape = np.array(host["outputs"]).shape
    exact_double = _first_conv(host, "double").reshape(shape)
    exact_single = _first_conv(host, "single").reshape(shape)
    assert np.array_equal(np.array(host["outputs"]), exact_double)
    assert np.array_equal(np.array(pi["outputs"]), exact_single)
