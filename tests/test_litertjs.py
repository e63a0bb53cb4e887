"""The web demo on LiteRT.js in headless Chromium, on the session's real .tflite exports.

One Chromium and one served page per module. The page classifies every sample image on
`tflite_float32` and `tflite_int8` (uint8 I/O, quantized in the page with the tensor's
own scale and zero point); its top-1 must equal LiteRT's and TensorFlow's on the same
pixels, its int8 probabilities must be LiteRT's bit for bit, and it must stay free of
console errors. Over 1,000 predictions no tensor may stay alive and the wasm
allocator's top may not climb (leaking one output per prediction moves it about 480 KB
per 1,000). The badge must say what really runs (engine, backend, build, threads,
isolation); WebGPU runs on the adapter Chromium gives, named, or is reported missing,
never replaced in silence. CNNX_UPDATE_SCREENSHOT=1 writes docs/web_demo_litertjs.png.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_web_support import PageLog, launch_chromium, sample_pixels

from toolkit.manifest import load_manifest
from toolkit.runtimes import load
from toolkit.web.server import DemoServer, make_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DOCS_SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "web_demo_litertjs.png"
LEAK_ALLOWANCE = 64 * 1024  # bytes the allocator's top may move (a leak moves it ~480 KB)


@pytest.fixture(scope="module")
def server(artifacts: Path) -> Iterator[DemoServer]:
    with make_server(artifacts, port=0) as running:
        yield running.start()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def references(artifacts: Path) -> dict[str, np.ndarray]:
    """TensorFlow's and LiteRT's probabilities on the sample pixels, by artifact id."""
    manifest = load_manifest(artifacts)
    x = manifest.input.apply(sample_pixels(artifacts)[1])
    out = {}
    for artifact, runtime in (
        ("savedmodel", "tf"),
        ("tflite_float32", "litert"),
        ("tflite_int8", "litert"),
    ):
        with load(runtime, manifest, manifest.artifact(artifact)) as model:
            out[artifact] = model.predict(x)
    return out


def open_page(chromium: Any, url: str, init_script: str | None = None) -> tuple[Any, PageLog]:
    page = chromium.new_page(viewport={"width": 1200, "height": 900})
    log = PageLog(page)
    if init_script:
        page.add_init_script(init_script)
    page.goto(url)
    page.evaluate("window.cnnx.ready")
    return page, log


@pytest.mark.parametrize("artifact", ["tflite_float32", "tflite_int8"])
def test_top1_matches_litert_and_tensorflow_on_every_sample(
    chromium: Any,
    server: DemoServer,
    references: dict[str, np.ndarray],
    artifact: str,
    tmp_path: Path,
) -> None:
    page, log = open_page(chromium, server.url + f"?model={artifact}&backend=wasm")
    info = page.evaluate("window.cnnx.info()")
    assert (info["artifact"], info["engine"], info["backend"]) == (artifact, "litertjs", "wasm")
    assert info["features"]["build"] == "litert_wasm_internal"  # the relaxed-SIMD build
    results = [
        page.evaluate("(i) => window.cnnx.classifySample(i)", i) for i in range(info["samples"])
    ]
    probs = np.asarray([r["probs"] for r in results], dtype=np.float32)
    lite, tf = references[artifact], references["savedmodel"]
    assert len(probs) == len(lite) >= 10
    assert probs.argmax(1).tolist() == lite.argmax(1).tolist() == tf.argmax(1).tolist()
    if artifact == "tflite_int8":
        # Same uint8 in (quantized like numpy, half to even), same kernels, same dequantize.
        assert np.array_equal(probs, lite)
    else:
        assert np.abs(probs - lite).max() < 1e-5 and np.abs(probs - tf).max() < 1e-4

    if artifact == "tflite_float32":  # the screenshot: a sample and a finished benchmark
        page.evaluate("window.cnnx.setBackend('wasm-threaded')")
        right = [i for i, r in enumerate(results) if r["top"][0]["label"] == r["truth"]]
        page.evaluate("(i) => window.cnnx.classifySample(i)", right[2] if len(right) > 2 else 0)
        page.fill("#bench-runs", "200")
        page.click("#bench-run")
        page.wait_for_selector("#bench-out dl")
        assert "LiteRT.js wasm-threaded" in page.locator("#bench-out").inner_text()
        shot = tmp_path / "web_demo_litertjs.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        if os.environ.get("CNNX_UPDATE_SCREENSHOT"):
            shutil.copyfile(shot, DOCS_SCREENSHOT)
    assert log.errors == []
    page.close()


@pytest.mark.parametrize(
    ("artifact", "backend"), [("tflite_float32", "wasm"), ("tflite_int8", "wasm-threaded")]
)
def test_no_tensor_or_memory_growth_over_1000_predictions(
    chromium: Any, server: DemoServer, artifact: str, backend: str
) -> None:
    page, log = open_page(chromium, server.url + f"?model={artifact}&backend={backend}")
    readings = page.evaluate(
        """async () => {
            const n = window.cnnx.samples.length;
            for (let i = 0; i < 20; i++) await window.cnnx.classifySample(i % n);
            const before = window.cnnx.memory();
            for (let i = 0; i < 1000; i++) await window.cnnx.classifySample(i % n);
            const afterSamples = window.cnnx.memory();
            const side = window.cnnx.info().input.height * window.cnnx.info().input.width;
            const pixels = new Uint8Array(side * 4).fill(200);
            for (let i = 0; i < 200; i++) await window.cnnx.predictPixels(pixels);
            await window.cnnx.bench(50, {warmup: 2});
            return [before, afterSamples, window.cnnx.memory()];
        }"""
    )
    before = readings[0]
    assert before["heapTop"] > 0 and before["heapBytes"] > 1_000_000
    for after in readings[1:]:
        assert after["liveTensors"] == 0
        assert after["heapBytes"] == before["heapBytes"]
        assert after["heapTop"] - before["heapTop"] <= LEAK_ALLOWANCE, readings
    assert log.errors == []
    page.close()


def test_the_page_offers_both_engines_and_shows_what_runs(
    chromium: Any, server: DemoServer, artifacts: Path
) -> None:
    manifest = load_manifest(artifacts)
    tflite = sorted(k for k, e in manifest.artifacts.items() if e.format == "tflite")
    page, log = open_page(chromium, server.url)
    assert page.evaluate("window.cnnx.info().engine") == "tfjs"  # TF.js stays the default
    assert page.locator("#engine option").all_inner_texts() == [
        "TF.js",
        "LiteRT.js",
        "ONNX Runtime Web",
    ]
    assert page.locator("#artifact optgroup").nth(1).locator("option").all_inner_texts() == tflite

    badge = page.locator("#backend-status")
    page.select_option("#engine", "litertjs")
    # Cross-origin isolated (cnnx serve sends COOP/COEP): LiteRT.js starts threaded.
    page.wait_for_function(
        "document.querySelector('#backend-status').textContent.startsWith('LiteRT.js')"
    )
    info = page.evaluate("window.cnnx.info()")
    assert (info["artifact"], info["backend"]) == ("tflite_float32", "wasm-threaded")
    threads = info["features"]["threadCount"]
    assert threads >= 1 and info["features"]["build"] == "litert_wasm_threaded_internal"
    assert badge.inner_text() == (
        f"LiteRT.js · wasm-threaded · relaxed SIMD · {threads} thread"
        f"{'' if threads == 1 else 's'} · isolated"
    )
    assert page.locator("#backend option").all_inner_texts() == ["wasm", "wasm-threaded", "webgpu"]

    page.select_option("#backend", "wasm")
    shown = "LiteRT.js · wasm · relaxed SIMD · 1 thread · isolated"
    page.wait_for_function(f"document.querySelector('#backend-status').textContent === {shown!r}")
    assert page.evaluate("window.cnnx.info().features.build") == "litert_wasm_internal"
    page.select_option("#artifact", "tflite_int8")
    page.wait_for_function("window.cnnx.info().artifact === 'tflite_int8'")
    result = page.evaluate("window.cnnx.classifySample(0)")
    assert (result["engine"], result["backend"]) == ("litertjs", "wasm") and result["top"]
    assert "LiteRT.js wasm" in page.locator("#latency").inner_text()

    page.select_option("#artifact", "tfjs_float32")  # back to the other engine
    page.wait_for_function(
        "document.querySelector('#backend-status').textContent.startsWith('TF.js · wasm')"
    )
    assert page.evaluate("window.cnnx.info().engine") == "tfjs"
    assert log.errors == []
    page.close()

    # A URL the page cannot honour is said, not swapped in silence.
    page, log = open_page(chromium, server.url + "?engine=litertjs&backend=webgl")
    assert "LiteRT.js has no backend webgl" in page.locator("#error").inner_text()
    assert page.evaluate("window.cnnx.info().engine") == "litertjs"
    page.close()


def test_webgpu_runs_on_the_adapter_chromium_gives(
    chromium: Any, server: DemoServer, references: dict[str, np.ndarray]
) -> None:
    page, log = open_page(chromium, server.url + "?model=tflite_float32&backend=webgpu")
    info = page.evaluate("window.cnnx.info()")
    if info["noAdapter"]:
        pytest.skip(f"Chromium gives no WebGPU adapter here: {info['backendNote']}")
    adapter = info["features"]["adapter"]
    assert info["backend"] == "webgpu" and adapter["name"]
    assert info["features"]["build"] == "litert_wasm_jspi_internal"
    text = page.locator("#backend-status").inner_text()
    assert text.startswith("LiteRT.js · webgpu · " + adapter["name"])
    assert ("(software adapter)" in text) == adapter["software"]  # never passed off as a GPU
    lite = references["tflite_float32"]
    for i in range(4):
        probs = np.asarray(page.evaluate("(i) => window.cnnx.classifySample(i)", i)["probs"])
        assert probs.argmax() == lite[i].argmax() and np.abs(probs - lite[i]).max() < 1e-4
    assert log.errors == []
    page.close()


def test_a_missing_adapter_is_reported_not_replaced(chromium: Any, server: DemoServer) -> None:
    no_adapter = "if (navigator.gpu) navigator.gpu.requestAdapter = async () => null;"
    page, log = open_page(chromium, server.url + "?model=tflite_float32&backend=webgpu", no_adapter)
    info = page.evaluate("window.cnnx.info()")
    assert (info["requestedBackend"], info["backend"], info["noAdapter"]) == (
        "webgpu",
        "wasm",
        True,
    )
    badge = page.locator("#backend-status")
    assert badge.inner_text().startswith("LiteRT.js · webgpu unavailable (no WebGPU adapter")
    assert badge.inner_text().endswith("using wasm") and "warn" in badge.get_attribute("class")
    assert page.evaluate("window.cnnx.classifySample(0)")["top"]  # and it still classifies
    assert log.errors == []
    page.close()


def test_profile_says_where_the_time_goes(chromium: Any, server: DemoServer) -> None:
    page, log = open_page(chromium, server.url + "?model=tflite_int8&backend=wasm")
    parts = page.evaluate("window.cnnx.profile(50)")
    for part in ("total_ms", "run_ms", "compiled_run_ms", "copies_ms"):
        assert 0 < parts[part] < 1000, parts
    assert parts["await_ms"] >= 0
    assert 0 < parts["timer_step_ms"] < 0.1  # isolated: finer than the 100 us coarse clock
    page.evaluate("window.cnnx.setEngine('tfjs')")
    with pytest.raises(Exception, match=r"profile\(\) measures LiteRT\.js"):
        page.evaluate("window.cnnx.profile(5)")
    assert log.errors == []
    page.close()
