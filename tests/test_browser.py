"""The web demo in headless Chromium, served by `toolkit.web.server`, on exported artifacts.

The page classifies every sample image of the session's artifacts folder (the real
exporters' output) on each engine it offers, and its top-1 must equal LiteRT's and
TensorFlow's on the same pixels: TF.js within 1e-4 of the SavedModel, LiteRT.js float32
within 1e-5 of LiteRT (its int8 bit for bit LiteRT's: tests/test_litertjs_runtime.py).
It must stay free of console errors and leak nothing over many predictions: TF.js keeps
tf.memory().numTensors constant; LiteRT.js keeps no tensor alive and its wasm allocator's
top does not climb (leaking one output per prediction moves it about 480 KB per 1,000).
It shows the backend it really runs, and works by file, drop, webcam and keyboard. A
screenshot of each engine's run is kept (CNNX_UPDATE_SCREENSHOT=1 also writes
docs/web_demo.png and docs/web_demo_litertjs.png).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.web_support import References, open_page
from toolkit.manifest import load_manifest
from toolkit.web.server import DemoServer

pytest_plugins = ["tests.web_support"]
pytestmark = [pytest.mark.browser, pytest.mark.slow]

DOCS = Path(__file__).resolve().parents[1] / "docs"
LEAK_ALLOWANCE = 64 * 1024  # bytes LiteRT.js's allocator top may move (a leak moves it ~480 KB)
PREDICTIONS = 1000  # that leak needs a few hundred predictions to show past the allowance


def sample_records(artifacts: Path) -> list[dict[str, Any]]:
    data = json.loads((artifacts / "samples" / "samples.json").read_text())
    return list(data["samples"] if isinstance(data, dict) else data)


def keep_screenshot(page: Any, folder: Path, name: str) -> None:
    """A full-page screenshot; CNNX_UPDATE_SCREENSHOT=1 also puts it in docs/."""
    shot = folder / name
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000 and Image.open(shot).size[0] == 1200
    if os.environ.get("CNNX_UPDATE_SCREENSHOT"):
        shutil.copyfile(shot, DOCS / name)


# LiteRT.js's int8 (uint8 I/O, quantized in the page with the tensor's own scale and zero
# point) is bit for bit LiteRT's in tests/test_litertjs_runtime.py, through the same
# engine code, and the page's pixels are Python's in tests/test_pixels.py.
@pytest.mark.parametrize(
    ("artifact", "engine"), [("tfjs_float32", "tfjs"), ("tflite_float32", "litertjs")]
)
def test_top1_matches_litert_and_tensorflow_on_every_sample(
    chromium: Any,
    demo_server: DemoServer,
    references: References,
    artifact: str,
    engine: str,
    tmp_path: Path,
) -> None:
    page, log = open_page(chromium, demo_server.url + f"?model={artifact}&backend=wasm")
    info = page.evaluate("window.cnnx.info()")
    assert (info["artifact"], info["engine"], info["backend"]) == (artifact, engine, "wasm")
    assert info["crossOriginIsolated"] is True  # COOP/COEP reached the page
    if engine == "litertjs":
        assert info["features"]["build"] == "litert_wasm_internal"  # the relaxed-SIMD build
    results = []
    for i in range(info["samples"]):
        result = page.evaluate("(i) => window.cnnx.classifySample(i)", i)
        results.append(result)
        # What the visitor sees is what the API returned.
        shown = page.locator("#results .top li .label").first.inner_text()
        assert shown.startswith(result["top"][0]["label"])
    probs = np.asarray([r["probs"] for r in results], dtype=np.float32)
    tf = references("savedmodel")
    lite = references("tflite_float32")
    assert len(probs) == len(tf) >= 10
    assert probs.argmax(1).tolist() == lite.argmax(1).tolist() == tf.argmax(1).tolist()
    if engine == "litertjs":
        assert np.abs(probs - lite).max() < 1e-5 and np.abs(probs - tf).max() < 1e-4
    else:  # same pixels in, same preprocessing: the float32 graph agrees closely, not by luck
        assert np.abs(probs - tf).max() < 1e-4

    # The screenshot: a right answer and a finished benchmark.
    if engine == "litertjs":
        page.evaluate("window.cnnx.setBackend('wasm-threaded')")
    right = [i for i, r in enumerate(results) if r["top"][0]["label"] == r["truth"]]
    page.evaluate("(i) => window.cnnx.classifySample(i)", right[-1] if right else 0)
    page.fill("#bench-runs", "20")
    page.click("#bench-run")
    page.wait_for_selector("#bench-out dl")
    shown = page.locator("#bench-out").inner_text()
    if engine == "litertjs":
        assert "LiteRT.js wasm-threaded" in shown
        keep_screenshot(page, tmp_path, "web_demo_litertjs.png")
    else:
        assert "before each run" in shown and "cold, after loading" in shown
        assert "blocks of" in shown
        keep_screenshot(page, tmp_path, "web_demo.png")
    assert log.errors == []
    page.close()


@pytest.mark.parametrize(
    ("artifact", "backend"),
    [("tfjs_float32", "wasm"), ("tflite_float32", "wasm"), ("tflite_int8", "wasm-threaded")],
)
def test_no_tensor_or_memory_growth_over_1000_predictions(
    chromium: Any, demo_server: DemoServer, artifact: str, backend: str
) -> None:
    page, log = open_page(chromium, demo_server.url + f"?model={artifact}&backend={backend}")
    # classifySample fetches, decodes and shows its picture each time (about 100 ms);
    # predictPixels runs the same engine call (runModel) alone in well under 1 ms, so the
    # many predictions a leak needs go there, and a few samples show the picture's path
    # keeps nothing (TF.js's tensor count is exact: one leaked tensor shows at once).
    readings = page.evaluate(
        """async (predictions) => {
            const n = window.cnnx.samples.length;
            for (let i = 0; i < 5; i++) await window.cnnx.classifySample(i % n);
            const before = window.cnnx.memory();
            for (let i = 0; i < 10; i++) await window.cnnx.classifySample(i % n);
            const afterSamples = window.cnnx.memory();
            const side = window.cnnx.info().input.height * window.cnnx.info().input.width;
            const pixels = new Uint8Array(side * 4);
            for (let i = 0; i < predictions; i++) await window.cnnx.predictPixels(pixels.fill(i));
            await window.cnnx.bench(20, {warmup: 2});
            return [before, afterSamples, window.cnnx.memory()];
        }""",
        PREDICTIONS,
    )
    before = readings[0]
    if artifact.startswith("tfjs"):
        assert before["numTensors"] > 0  # the model's weights
        assert [r["numTensors"] for r in readings] == [before["numTensors"]] * 3
    else:
        assert before["heapTop"] > 0 and before["heapBytes"] > 1_000_000
        for after in readings[1:]:
            assert after["liveTensors"] == 0
            assert after["heapBytes"] == before["heapBytes"]
            assert after["heapTop"] - before["heapTop"] <= LEAK_ALLOWANCE, readings
    assert log.errors == []
    page.close()


def test_every_backend_runs_and_the_active_one_is_shown(
    chromium: Any, demo_server: DemoServer
) -> None:
    page, log = open_page(chromium, demo_server.url)
    reference = page.evaluate("window.cnnx.classifySample(0)")["probs"]
    base = page.evaluate("window.cnnx.memory().numTensors")
    for backend in ("webgl", "cpu", "webgpu", "wasm"):
        info = page.evaluate("(b) => window.cnnx.setBackend(b)", backend)
        assert info["backend"] == backend and info["backendNote"] == ""
        assert page.locator("#backend-status").inner_text().startswith(f"TF.js · {backend}")
        assert page.locator("#backend").input_value() == backend
        if backend == "webgpu":  # the adapter TF.js's own device reports is named
            assert page.evaluate("window.cnnx.info().features.adapter.name")
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


def test_a_backend_that_fails_is_detected_and_shown(chromium: Any, demo_server: DemoServer) -> None:
    # A machine without WebGL: no canvas hands out a webgl context, so
    # tf.setBackend('webgl') fails and TF.js silently keeps another backend.
    no_webgl = """for (const C of [HTMLCanvasElement, OffscreenCanvas]) {
            const original = C.prototype.getContext;
            C.prototype.getContext = function (kind, ...rest) {
                return /webgl/i.test(String(kind)) ? null : original.call(this, kind, ...rest);
            };
        }"""
    page, log = open_page(chromium, demo_server.url + "?backend=webgl", no_webgl)
    info = page.evaluate("window.cnnx.info()")
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
    chromium: Any, demo_server: DemoServer, artifacts: Path
) -> None:
    page, log = open_page(chromium, demo_server.url)
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
    chromium: Any, demo_server: DemoServer, artifacts: Path
) -> None:
    manifest = load_manifest(artifacts)
    tfjs = sorted(k for k, e in manifest.artifacts.items() if e.format == "tfjs")
    tflite = sorted(k for k, e in manifest.artifacts.items() if e.format == "tflite")
    onnx = sorted(k for k, e in manifest.artifacts.items() if e.format == "onnx")
    page, log = open_page(chromium, demo_server.url + f"?model={tfjs[-1]}&backend=cpu")
    info = page.evaluate("window.cnnx.info()")
    assert (info["artifact"], info["backend"]) == (tfjs[-1], "cpu")
    # TF.js first, then LiteRT.js's .tflite files, then ONNX Runtime Web's .onnx files
    assert info["artifacts"] == tfjs + tflite + onnx
    groups = page.locator("#artifact optgroup")
    engines = ["TF.js", "LiteRT.js", "ONNX Runtime Web"]
    assert groups.evaluate_all("gs => gs.map(g => g.label)") == engines
    for group, ids in enumerate((tfjs, tflite, onnx)):
        assert groups.nth(group).locator("option").all_inner_texts() == ids
    page.select_option("#artifact", tfjs[0])
    summary = "document.querySelector('#model-summary').textContent"
    page.wait_for_function(f"{summary}.startsWith({tfjs[0]!r} + ' (')")
    assert page.evaluate("window.cnnx.classifySample(0)")["top"]
    assert log.errors == []
    page.close()
