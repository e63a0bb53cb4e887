"""benchmarks/gpu_check.py end to end on this machine: no NVIDIA GPU, so TensorFlow's
GPU rows are skipped with the reason, and LiteRT's GPU accelerator and the browser's GPU
backends run on SwiftShader. On a GPU machine the same script runs on the real adapter.

What this test alone proves is the script: its export, `--device gpu` through bench, the
record it writes, on one artifact of each runtime family (`--artifacts`). The runtimes'
own GPU paths are proven where they live: litert-gpu's parity, tolerance and adapter on
every TFLite precision in tests/test_litert_gpu.py (its bench rows in
tests/test_bench.py), TF.js webgl on SwiftShader in tests/test_browser_runtime.py and
webgpu in tests/test_browser.py, LiteRT.js webgpu on every TFLite precision in
tests/test_byom_binary.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def test_the_gpu_check_runs_every_gpu_path_and_writes_its_record(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    # Its 8-minute budget is a GPU machine's; a loaded 2-core machine gets the most this
    # test's own time limit leaves, and the record must still say it kept to it. Every
    # row compares on 16 images: SwiftShader takes 8 to 80 ms a picture.
    script = [sys.executable, str(SCRIPT), "--out", str(out), "--runs", "3", "--limit", "16",
              "--artifacts", "savedmodel,tflite_float32,tfjs_float32"]  # fmt: skip
    done = subprocess.run(
        [*script, "--budget", "570"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    record = json.loads(out.read_text())
    assert record["machine"]["cores"] >= 1 and "nvidia_gpus" in record["machine"]
    assert record["litert_gpu"]["device"] == "swiftshader"
    assert record["total_seconds"] <= record["budget_seconds"] == 570
    assert set(record["seconds"]) == {"litert-gpu probe", "export", "bench"}
    bench = record["bench"]["rows"]
    rows = {(r["artifact"], r["label"]): r for r in bench}
    # The export made every artifact the bench was asked for, and it benched those alone.
    assert {r["artifact"] for r in bench} == {"savedmodel", "tflite_float32", "tfjs_float32"}
    tf = rows[("savedmodel", "tf@gpu")]
    assert tf["status"] == "skipped" and "no GPU" in tf["reason"]
    gpu = rows[("tflite_float32", "litert-gpu@swiftshader")]
    assert gpu["status"] in ("ok", "drift"), gpu  # it ran; the model is untrained
    assert gpu["fully_accelerated"] is True and gpu["software_gpu"] is True
    assert gpu["agreement"] is not None  # bench's rows carry verify's parity
    assert all(r["p50"] > 0 for r in bench if r["label"] == "litert-gpu@swiftshader")
    browser = [r for r in bench if r["label"].startswith(("browser/", "litertjs/"))]
    assert {r["label"] for r in browser} == {
        "browser/webgl@swiftshader",
        "browser/webgpu@swiftshader",
        "litertjs/webgpu@swiftshader",
    }
    assert all(r["status"] in ("ok", "drift") for r in browser), browser
