"""The web demo on LiteRT.js in headless Chromium, on the session's real .tflite exports.

The badge must say what really runs (engine, backend, build, threads, isolation);
WebGPU runs on the adapter Chromium gives, named, or is reported missing, never replaced
in silence; profile() says where a prediction's time goes. (The page's answers on every
sample and its memory over many predictions, for every engine: tests/test_browser.py.)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.web_support import References, open_page
from toolkit.web.server import DemoServer

pytest_plugins = ["tests.web_support"]
pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_the_page_offers_both_engines_and_shows_what_runs(
    chromium: Any, demo_server: DemoServer
) -> None:
    page, log = open_page(chromium, demo_server.url)
    assert page.evaluate("window.cnnx.info().engine") == "tfjs"  # TF.js stays the default
    assert page.locator("#engine option").all_inner_texts() == [
        "TF.js",
        "LiteRT.js",
        "ONNX Runtime Web",
    ]

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
    page, log = open_page(chromium, demo_server.url + "?engine=litertjs&backend=webgl")
    assert "LiteRT.js has no backend webgl" in page.locator("#error").inner_text()
    assert page.evaluate("window.cnnx.info().engine") == "litertjs"
    page.close()


def test_webgpu_runs_on_the_adapter_chromium_gives(
    chromium: Any, demo_server: DemoServer, references: References
) -> None:
    page, log = open_page(chromium, demo_server.url + "?model=tflite_float32&backend=webgpu")
    info = page.evaluate("window.cnnx.info()")
    if info["noAdapter"]:
        pytest.skip(f"Chromium gives no WebGPU adapter here: {info['backendNote']}")
    adapter = info["features"]["adapter"]
    assert info["backend"] == "webgpu" and adapter["name"]
    assert info["features"]["build"] == "litert_wasm_jspi_internal"
    text = page.locator("#backend-status").inner_text()
    assert text.startswith("LiteRT.js · webgpu · " + adapter["name"])
    assert ("(software adapter)" in text) == adapter["software"]  # never passed off as a GPU
    lite = references("tflite_float32")
    for i in range(4):
        probs = np.asarray(page.evaluate("(i) => window.cnnx.classifySample(i)", i)["probs"])
        assert probs.argmax() == lite[i].argmax() and np.abs(probs - lite[i]).max() < 1e-4
    assert log.errors == []
    page.close()


def test_a_missing_adapter_is_reported_not_replaced(chromium: Any, demo_server: DemoServer) -> None:
    no_adapter = "if (navigator.gpu) navigator.gpu.requestAdapter = async () => null;"
    page, log = open_page(
        chromium, demo_server.url + "?model=tflite_float32&backend=webgpu", no_adapter
    )
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


def test_profile_says_where_the_time_goes(chromium: Any, demo_server: DemoServer) -> None:
    page, log = open_page(chromium, demo_server.url + "?model=tflite_int8&backend=wasm")
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
