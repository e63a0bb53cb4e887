"""The web demo in headless Chromium, served by `toolkit.web.server`, on exported artifacts.

The page classifies every sample image of the session's artifacts folder (the real
exporters' output) and its top-1 must equal LiteRT's and TensorFlow's on the same
pixels; it must stay free of console errors, keep tf.memory().numTensors constant over
1,000 predictions, show the backend it really runs, and work by file, drop, webcam and
keyboard. A screenshot of each run is kept (CNNX_UPDATE_SCREENSHOT=1 also writes
docs/web_demo.png).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from test_web_support import PageLog, launch_chromium

from toolkit.manifest import load_manifest
from toolkit.runtimes import load
from toolkit.web.server import DemoServer, make_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DOCS_SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "web_demo.png"


@pytest.fixture(scope="module")
def server(artifacts: Path) -> Iterator[DemoServer]:
    with make_server(artifacts, port=0) as running:
        yield running.start()


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="module")
def chromium(playwright: Any) -> Iterator[Any]:
    # Chromium's fake camera stands in for a webcam.
    browser = launch_chromium(
        playwright, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"
    )
    yield browser
    browser.close()


def open_page(chromium: Any, url: str) -> tuple[Any, PageLog]:
    page = chromium.new_page(viewport={"width": 1200, "height": 900})
    log = PageLog(page)
    page.goto(url)
    page.evaluate("window.cnnx.ready")
    return page, log


def sample_records(artifacts: Path) -> list[dict[str, Any]]:
    data = json.loads((artifacts / "samples" / "samples.json").read_text())
    return list(data["samples"] if isinstance(data, dict) else data)


def test_page_top1_matches_litert_and_tensorflow_on_every_sample(
    chromium: Any, server: DemoServer, artifacts: Path, tmp_path: Path
) -> None:
    manifest = load_manifest(artifacts)
    records = sample_records(artifacts)
    assert len(records) >= 10
    pixels = np.stack(
        [np.asarray(Image.open(artifacts / "samples" / r["file"])) for r in records]
    ).reshape(len(records), *manifest.input.shape)
    x = manifest.input.apply(pixels)
    with load("tf", manifest, manifest.artifact("savedmodel")) as tf_model:
        tf_probs = tf_model.predict(x)
    with load("litert", manifest, manifest.artifact("tflite_float32")) as lite_model:
        lite_probs = lite_model.predict(x)

    page, log = open_page(chromium, server.url)
    info = page.evaluate("window.cnnx.info()")
    assert (info["artifact"], info["backend"]) == ("tfjs_float32", "wasm")
    assert info["crossOriginIsolated"] is True  # COOP/COEP reached the page
    assert info["samples"] == len(records)
    page_probs = []
    for i in range(len(records)):
        result = page.evaluate("(i) => window.cnnx.classifySample(i)", i)
        page_probs.append(result["probs"])
        # What the visitor sees is what the API returned.
        shown = page.locator("#results .top li .label").first.inner_text()
        assert shown.startswith(result["top"][0]["label"])
    page_probs_array = np.asarray(page_probs, dtype=np.float32)

    page_top1 = page_probs_array.argmax(1)
    assert page_top1.tolist() == lite_probs.argmax(1).tolist()
    assert page_top1.tolist() == tf_probs.argmax(1).tolist()
    # Same pixels in, same preprocessing: the float32 graph agrees closely, not by luck.
    assert np.abs(page_probs_array - tf_probs).max() < 1e-4

    # The screenshot shows a correctly classified sample and a finished benchmark.
    labels = manifest.labels
    right = [i for i, r in enumerate(records) if labels[page_top1[i]] == r.get("label_name")]
    page.evaluate("(i) => window.cnnx.classifySample(i)", right[0] if right else 0)
    page.fill("#bench-runs", "100")
    page.click("#bench-run")
    page.wait_for_selector("#bench-out dl")
    shown = page.locator("#bench-out").inner_text()
    assert "before each run" in shown and "cold, after loading" in shown and "blocks of" in shown
    shot = tmp_path / "web_demo.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000 and Image.open(shot).size[0] == 1200
    if os.environ.get("CNNX_UPDATE_SCREENSHOT"):
        shutil.copyfile(shot, DOCS_SCREENSHOT)
    assert log.errors == []
    page.close()


def test_numtensors_constant_after_1000_predictions(chromium: Any, server: DemoServer) -> None:
    page, log = open_page(chromium, server.url)
    counts = page.evaluate(
        """async () => {
            const before = window.cnnx.memory().numTensors;
            const n = window.cnnx.samples.length;
            for (let i = 0; i < 1000; i++) await window.cnnx.classifySample(i % n);
            const afterSamples = window.cnnx.memory().numTensors;
            const side = window.cnnx.info().input.height * window.cnnx.info().input.width;
            const pixels = new Uint8Array(side * 4).fill(200);
            for (let i = 0; i < 200; i++) await window.cnnx.predictPixels(pixels);
            await window.cnnx.bench(50, {warmup: 2});
            return [before, afterSamples, window.cnnx.memory().numTensors];
        }"""
    )
    assert counts[0] > 0  # the model's weights
    assert counts[1] == counts[0] and counts[2] == counts[0]
    assert log.errors == []
    page.close()


def test_every_backend_runs_and_the_active_one_is_shown(chromium: Any, server: DemoServer) -> None:
    page, log = open_page(chromium, server.url)
    reference = page.evaluate("window.cnnx.classifySample(0)")["probs"]
    base = page.evaluate("window.cnnx.memory().numTensors")
    for backend in ("webgl", "cpu", "webgpu", "wasm"):
        info = page.evaluate("(b) => window.cnnx.setBackend(b)", backend)
        assert info["backend"] == backend and info["backendNote"] == ""
        assert page.locator("#backend-status").inner_text().startswith(f"TF.js · {backend}")
        assert page.locator("#backend").input_value() == backend
        if backend == "webgl":  # the renderer is named, a software one as such
            renderer = page.evaluate("window.cnnx.info().features.renderer")
            assert "SwiftShader" in renderer["name"] and renderer["software"] is True
            status = page.locator("#backend-status").inner_text()
            assert status == f"TF.js · webgl · {renderer['name']} (software renderer) · isolated"
        probs = page.evaluate("window.cnnx.classifySample(0)")["probs"]
        assert np.abs(np.asarray(probs) - np.asarray(reference)).max() < 1e-4
        # Switching disposes the old model: the count is the weights again.
        assert page.evaluate("window.cnnx.memory().numTensors") == base
    status = page.locator("#backend-status").inner_text()
    assert "SIMD" in status  # wasm with SIMD, as the page reports it
    bench = page.evaluate("window.cnnx.bench(30)")
    assert bench["runs"] >= 30 and 0 < bench["p50"] <= bench["p90"] <= bench["max"]
    # The run alone, in blocks of runs sized to the isolated page's 5 us clock; making the
    # input tensor and reading the result back apart; the cold first run apart too.
    assert bench["runs"] == bench["samples"] * bench["block"]
    assert 0 < bench["timer_step_ms"] <= 0.0075 and bench["first_ms"] > 0
    assert bench["pre_ms"] > 0 and bench["post_ms"] > 0
    assert log.errors == []
    page.close()


def test_a_backend_that_fails_is_detected_and_shown(chromium: Any, server: DemoServer) -> None:
    # A machine without WebGL: no canvas hands out a webgl context, so
    # tf.setBackend('webgl') fails and TF.js silently keeps another backend.
    page = chromium.new_page()
    log = PageLog(page)
    page.add_init_script(
        """for (const C of [HTMLCanvasElement, OffscreenCanvas]) {
            const original = C.prototype.getContext;
            C.prototype.getContext = function (kind, ...rest) {
                return /webgl/i.test(String(kind)) ? null : original.call(this, kind, ...rest);
            };
        }"""
    )
    page.goto(server.url + "?backend=webgl")
    info = page.evaluate("window.cnnx.ready")
    assert info["requestedBackend"] == "webgl"
    assert info["backend"] in ("wasm", "cpu")
    status = page.locator("#backend-status").inner_text()
    assert status.startswith("TF.js · webgl unavailable")
    assert status.endswith(f"using {info['backend']}")
    assert page.evaluate("window.cnnx.classifySample(0)")["top"]  # and it still classifies
    # TF.js reports the failed initialisation as a warning, never an error.
    assert log.errors == []
    page.close()


def test_upload_drop_webcam_and_keyboard(
    chromium: Any, server: DemoServer, artifacts: Path
) -> None:
    page, log = open_page(chromium, server.url)
    first = artifacts / "samples" / sample_records(artifacts)[0]["file"]

    page.set_input_files("#file", str(first))
    page.wait_for_function("document.querySelector('#latency').textContent.includes('ms')")
    uploaded = page.locator("#results .top li").count()
    assert uploaded == min(5, len(load_manifest(artifacts).labels))

    page.evaluate("document.querySelector('#latency').textContent = ''")
    page.evaluate(
        """async (url) => {
            const blob = await (await fetch(url)).blob();
            const data = new DataTransfer();
            data.items.add(new File([blob], 'dropped.png', {type: 'image/png'}));
            document.querySelector('#drop').dispatchEvent(
                new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true}));
        }""",
        "artifacts/samples/" + first.name,
    )
    page.wait_for_function("document.querySelector('#latency').textContent.includes('ms')")

    # Chromium's fake camera: the webcam loop classifies frames until stopped.
    page.click("#webcam")
    page.wait_for_function("document.querySelector('#webcam').textContent === 'Stop webcam'")
    page.evaluate("document.querySelector('#latency').textContent = ''")
    page.wait_for_function("document.querySelector('#latency').textContent.includes('ms')")
    page.click("#webcam")
    assert page.locator("#video").is_hidden()

    # Keyboard only: focus the second sample, press Enter, read the announced result.
    page.evaluate("document.querySelector('#latency').textContent = ''")
    page.focus(".sample >> nth=1")
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#latency').textContent.includes('ms')")
    assert page.locator("#results").get_attribute("aria-live") == "polite"
    assert page.locator("#truth").inner_text() != "\N{EN DASH}"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "sample"
    assert log.errors == []
    page.close()


def test_each_tfjs_artifact_can_be_chosen(
    chromium: Any, server: DemoServer, artifacts: Path
) -> None:
    manifest = load_manifest(artifacts)
    tfjs = sorted(k for k, e in manifest.artifacts.items() if e.format == "tfjs")
    tflite = sorted(k for k, e in manifest.artifacts.items() if e.format == "tflite")
    onnx = sorted(k for k, e in manifest.artifacts.items() if e.format == "onnx")
    page, log = open_page(chromium, server.url + f"?model={tfjs[-1]}&backend=cpu")
    info = page.evaluate("window.cnnx.info()")
    assert (info["artifact"], info["backend"]) == (tfjs[-1], "cpu")
    # TF.js first, then LiteRT.js's .tflite files, then ONNX Runtime Web's .onnx files
    assert info["artifacts"] == tfjs + tflite + onnx
    groups = page.locator("#artifact optgroup")
    engines = ["TF.js", "LiteRT.js", "ONNX Runtime Web"]
    assert groups.evaluate_all("gs => gs.map(g => g.label)") == engines
    assert groups.nth(0).locator("option").all_inner_texts() == tfjs
    page.select_option("#artifact", tfjs[0])
    summary = "document.querySelector('#model-summary').textContent"
    page.wait_for_function(f"{summary}.startsWith({tfjs[0]!r} + ' (')")
    assert page.evaluate("window.cnnx.classifySample(0)")["top"]
    assert log.errors == []
    page.close()
