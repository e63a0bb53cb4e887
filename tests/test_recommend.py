"""The browser recommendation: the fastest browser row that passed parity, never one on
a software GPU (webgl or webgpu on SwiftShader), never a drifted, failed or skipped row,
and a reason when there is none. (That real bench rows carry what it reads, and that
the report and the terminal show it, is checked where bench runs the browser runtimes:
tests/test_litertjs_runtime.py; here, hand-made rows.)
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from rich.console import Console

from toolkit.bench.recommend import recommend
from toolkit.bench.report import report_markdown, software_gpu_note
from toolkit.bench.run import BenchConfig, BenchReport
from toolkit.cli.tables import render_bench
from toolkit.data.inputspec import InputSpec
from toolkit.manifest import Manifest
from toolkit.measure.parity import Check, Metrics
from toolkit.measure.rows import Row, Speed
from toolkit.measure.timing import LatencyStats
from toolkit.runtimes import browser

PASSED = (Check("agreement", 1.0, 0.98, ">=", True),)
DRIFTED = (Check("agreement", 0.9, 0.98, ">=", False),)


def row(
    artifact: str,
    runtime: str,
    backend: str,
    p50: float,
    *,
    status: str = "ok",
    device: str = "cpu",
    threads: int | None = 1,
) -> Row:
    info: dict[str, Any] = {
        "runtime": runtime,
        "backend": backend,
        "device": device,
        "threads": threads,
        "details": {"cross_origin_isolated": True},
    }
    ran = status in ("ok", "drift")
    latency = LatencyStats(100, p50, p50 * 1.2, p50 * 1.5, p50, 0.01, p50 * 0.9, "page")
    return Row(
        artifact=artifact,
        runtime=runtime,
        label=f"{runtime}/{backend}",
        precision="float32",
        format="tflite" if runtime.startswith("litert") else "tfjs",
        size=40_960,
        status=status,
        metrics=Metrics(150, 0.996, 1e-3, 1e-4, 0.999) if ran else None,
        checks=(DRIFTED if status == "drift" else PASSED) if ran else (),
        runtime_info=info,
        speed=Speed(latency=latency) if ran else None,
    )


def test_the_fastest_browser_row_that_passed_wins() -> None:
    chosen = recommend(
        [
            row("tflite_float32", "litert", "xnnpack", 0.05),  # native: not a browser row
            row("tfjs_float32", "browser", "wasm", 0.7),
            row("tflite_int8", "litertjs", "wasm", 0.2, status="drift"),  # faster, drifted
            row("tflite_float32", "litertjs", "webgpu", 0.1, device="swiftshader", threads=None),
            row("tflite_float32", "litertjs", "wasm-threaded", 0.3, threads=2),
            row("tflite_float16", "litertjs", "wasm", 0.25, status="failed"),
            row("tflite_dynamic", "litertjs", "webgpu", 0.01, status="skipped"),
        ]
    )
    assert (chosen.artifact, chosen.engine, chosen.backend) == (
        "tflite_float32",
        "LiteRT.js",
        "wasm-threaded",
    )
    assert (chosen.p50_ms, chosen.threads, chosen.candidates) == (0.3, 2, 2)
    assert chosen.sentence == (
        "Fastest in the browser that passes parity: tflite_float32 on LiteRT.js wasm-threaded "
        "(2 threads, cross-origin isolated), p50 0.300 ms, agreement 99.6%, 40.0 KB (best of 2)."
    )
    assert chosen.to_dict()["sentence"] == chosen.sentence
    # A row read back from report.json recommends the same.
    again = recommend(
        [
            Row.from_dict(r.to_dict(speed=True))
            for r in [row("a", "browser", "wasm", 0.7), row("b", "litertjs", "wasm", 0.4)]
        ]
    )
    assert (again.artifact, again.engine, again.p50_ms) == ("b", "LiteRT.js", 0.4)


def test_handing_over_and_reading_back_count_against_a_row() -> None:
    """A page pays the input's quantizing and the output's download on every image: an
    int8 row whose run alone is faster but whose pre_ms + post_ms make it slower loses."""
    int8 = row("tflite_int8", "litertjs", "wasm", 0.10)
    int8 = replace(int8, speed=replace(int8.speed, pre_ms=0.04, post_ms=0.01))
    float32 = row("tflite_float32", "litertjs", "wasm-threaded", 0.12, threads=2)
    float32 = replace(float32, speed=replace(float32.speed, pre_ms=0.002, post_ms=0.001))
    chosen = recommend([int8, float32])
    assert (chosen.artifact, chosen.backend, chosen.p50_ms) == (
        "tflite_float32",
        "wasm-threaded",
        0.12,
    )
    assert chosen.per_image_ms == 0.123
    assert "p50 0.120 ms (0.123 ms with the input handed over and read back)" in chosen.sentence
    cheaper = replace(int8, speed=replace(int8.speed, pre_ms=0.01, post_ms=0.005))
    assert recommend([cheaper, float32]).artifact == "tflite_int8"


SWIFTSHADER = "ANGLE (Google, Vulkan 1.3.0 (SwiftShader Device (Subzero)), SwiftShader driver)"


def webgl_row(renderer: str, software: bool, p50: float) -> Row:
    """A TF.js webgl row whose runtime info browser.py builds from what the page reports
    (web_demo/gpu.js's webglRenderer: here the strings headless Chromium gives)."""
    page = {
        "loadMs": 10.0,
        "firstMs": 5.0,
        "crossOriginIsolated": True,
        "tfVersion": "4.22.0",
        "features": {"renderer": {"name": renderer, "software": software, "vendor": "Google"}},
    }
    session: Any = SimpleNamespace(version="156.0", start_ms=900.0)  # what browser.py reads
    info = browser._runtime_info(browser.TFJS, "webgl", page, session, time.perf_counter())
    made = row("tfjs_float32", "browser", "webgl", p50, threads=None)
    return replace(made, label=info.label, runtime_info=info.to_dict())


def test_a_software_webgl_row_never_wins() -> None:
    wasm = row("tfjs_float32", "browser", "wasm", 0.7)
    software = webgl_row(SWIFTSHADER, True, 0.1)
    assert software.label == "browser/webgl@swiftshader"
    assert software.runtime_info["details"]["gpu_name"] == SWIFTSHADER
    chosen = recommend([software, wasm])
    assert (chosen.backend, chosen.p50_ms, chosen.candidates) == ("wasm", 0.7, 1)
    llvmpipe = webgl_row("llvmpipe (LLVM 15.0.6, 256 bits)", True, 0.1)
    assert llvmpipe.label == "browser/webgl@software"
    alone = recommend([software, llvmpipe])
    assert alone.artifact is None and alone.reason == (
        "only rows on a software GPU passed (browser/webgl@software, "
        "browser/webgl@swiftshader), and their figures are not GPU figures"
    )
    # On a real GPU the same row is a GPU figure, and the fastest wins.
    gpu = webgl_row("ANGLE (NVIDIA, NVIDIA GeForce RTX 4070 Direct3D11 vs_5_0 ps_5_0)", False, 0.1)
    assert gpu.label == "browser/webgl@gpu"
    assert recommend([gpu, wasm]).label == "browser/webgl@gpu"


def test_no_recommendation_says_why() -> None:
    none = recommend([row("tflite_float32", "litert", "xnnpack", 0.05)])
    assert none.artifact is None and "no browser runtime was measured" in none.sentence
    software = recommend(
        [
            row("tflite_float32", "litertjs", "webgpu", 0.1, device="swiftshader", threads=None),
            row("tfjs_float32", "browser", "webgl", 0.2, device="software", threads=None),
        ]
    )
    assert software.reason == (
        "only rows on a software GPU passed (browser/webgl, litertjs/webgpu), and their "
        "figures are not GPU figures"
    )
    drifted = recommend([row("tfjs_float32", "browser", "wasm", 0.7, status="drift")])
    assert drifted.sentence.startswith("No browser recommendation: every browser row failed")
    assert drifted.to_dict()["artifact"] is None


def test_the_report_and_the_terminal_name_it_and_what_each_browser_row_ran_on(
    tmp_path: Path,
) -> None:
    threaded = row("tflite_int8", "litertjs", "wasm-threaded", 0.3, threads=2)
    threaded.runtime_info["details"].update(engine="LiteRT.js", wasm_build="litert_wasm_threaded")
    software = row("tflite_int8", "litertjs", "webgpu", 0.1, device="swiftshader", threads=None)
    software.runtime_info["details"].update(
        engine="LiteRT.js", gpu_name="google swiftshader", gpu_software=True
    )
    skipped = replace(
        row("tfjs_float32", "browser", "webgpu", 0.0, status="skipped"),
        reason="Chromium gives no WebGPU adapter",
    )
    rows = (row("tflite_int8", "litert", "xnnpack", 0.05), threaded, software, skipped)
    report = BenchReport(
        rows=rows,
        config=BenchConfig(tmp_path),
        manifest=Manifest(root=tmp_path, input=InputSpec(4, 4, 3), labels=["a", "b"]),
        evalset_source="test split, 20 images",
        images=20,
        labelled=True,
    )
    data = json.loads(json.dumps(report.to_dict()))
    assert data["recommendation"]["label"] == "litertjs/wasm-threaded"
    assert data["recommendation"]["browser_runtimes"] == ["browser", "litertjs", "onnxruntime-web"]
    markdown = report_markdown(data).splitlines()
    section = markdown[markdown.index("## In the browser") :]
    assert section[2] == report.recommendation.sentence
    assert (
        "| tflite_int8 | litertjs/wasm-threaded | LiteRT.js | wasm-threaded | "
        "litert_wasm_threaded | 2 | yes | - | 0.300 | ok |"
    ) in section
    assert "| google swiftshader (software) | 0.100 | ok |" in " ".join(section)
    assert "| skipped: Chromium gives no WebGPU adapter |" in " ".join(section)

    console = Console(width=100, record=True)
    console.print(render_bench(report))
    assert report.recommendation.sentence in " ".join(console.export_text().split())
    native_only = replace(report, rows=rows[:1])
    console = Console(width=100, record=True)
    console.print(render_bench(native_only))
    assert "browser" not in console.export_text()  # nothing said where none was measured


def test_software_gpu_rows_are_named_in_one_sentence() -> None:
    rows = [
        {"label": "litert-gpu@swiftshader", "runtime_info": {"device": "swiftshader"}},
        {"label": "browser/webgl@software", "runtime_info": {"device": "software"}},
        {"label": "litert-gpu@gpu", "runtime_info": {"device": "gpu"}},
        {"label": "litert x1", "runtime_info": {}},
    ]
    note = software_gpu_note(rows)
    assert note.startswith("Software GPU (browser/webgl@software, litert-gpu@swiftshader):")
    assert "never recommended" in note
    assert software_gpu_note(rows[2:]) == ""


def test_onnx_runtime_web_rows_count_beside_tfjs_and_litertjs() -> None:
    chosen = recommend(
        [
            row("onnx_float32", "onnxruntime", "cpu", 0.01),  # native: not a browser row
            row("tfjs_float32", "browser", "wasm", 0.7),
            row("tflite_float32", "litertjs", "wasm", 0.4),
            row("onnx_int8", "onnxruntime-web", "wasm", 0.2, status="drift"),
            row("onnx_float32", "onnxruntime-web", "wasm-threaded", 0.3, threads=2),
        ]
    )
    assert (chosen.artifact, chosen.engine, chosen.backend, chosen.candidates) == (
        "onnx_float32",
        "ONNX Runtime Web",
        "wasm-threaded",
        3,
    )
