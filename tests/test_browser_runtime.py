"""The `browser` runtime adapter on real headless Chromium, against the SavedModel.

Each backend (wasm, webgl, cpu; webgpu: see below) loads the session's TF.js artifacts
through the demo page and must give the SavedModel's probabilities on the same
preprocessed batch; a webgl row must name the GPU it ran on, and here (headless,
--disable-gpu) webgl renders on SwiftShader, a software GPU its row must say it is; the
page's own timer must answer; a hung page must become a RuntimeUnavailable within its time
limit (and the next load must work); a missing Chromium must say how to install it.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from tests.web_support import References, load_in_page
from toolkit.errors import ArtifactError, RuntimeUnavailable, UsageError
from toolkit.manifest import Manifest
from toolkit.runtimes import RUNTIMES, chromium, load
from toolkit.runtimes import browser as browser_runtime

pytest_plugins = ["tests.web_support"]
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.usefixtures("runtime_chromium")]


def test_the_registry_names_this_adapter() -> None:
    spec = RUNTIMES["browser"]
    assert spec.module == "toolkit.runtimes.browser"
    assert spec.supported_variants == browser_runtime.BACKENDS


# webgpu is left out: TF.js on it in the page, against the wasm answers, is proven by
# tests/test_browser.py (test_every_backend_runs_and_the_active_one_is_shown), and a
# webgpu row's adapter name and software flag (the same _runtime_info) by LiteRT.js's
# webgpu rows in tests/test_litertjs_runtime.py; here it cost 6 to 20 s on SwiftShader.
@pytest.mark.parametrize("backend", ["wasm", "webgl", "cpu"])
def test_each_backend_matches_the_savedmodel(
    manifest: Manifest, batch: np.ndarray, references: References, backend: str
) -> None:
    reference = references("savedmodel")
    model = load_in_page("browser", manifest, "tfjs_float32", backend)
    with model:
        probs = model.predict(batch)
        assert probs.dtype == np.float32 and probs.shape == reference.shape
        assert np.abs(probs - reference).max() < 1e-4
        assert (probs.argmax(1) == reference.argmax(1)).all()
        assert model.predict(batch[:0]).shape == (0, len(manifest.labels))

        info = model.info
        assert (info.runtime, info.backend) == ("browser", backend)
        assert info.init_ms > 0 and info.details["first_inference_ms"] > 0
        assert info.details["cross_origin_isolated"] is True
        if backend == "wasm":
            assert info.details["wasm_simd"] is True and info.threads is not None
        if backend == "webgl":  # the renderer TF.js's own GL context reports
            assert "SwiftShader" in info.details["gpu_name"]
            assert info.details["gpu_software"] is True and info.threads is None
            assert (info.device, info.label) == ("swiftshader", "browser/webgl@swiftshader")
        if backend in ("wasm", "cpu"):
            assert info.device == "cpu" and "gpu_name" not in info.details

        tensors = model.evaluate("tensors", "window.cnnx.memory()")["numTensors"]
        timed = model.self_timed(batch[:1], 25)
        assert timed is not None and timed.runs >= 25 and all(t > 0 for t in timed.samples)
        assert timed.pre and all(t > 0 for t in timed.pre)
        # On a GPU backend the run ends with the download (the one wait TF.js offers):
        # nothing is left to time apart; on wasm and cpu the download is apart.
        assert len(timed.post) == (0 if backend == "webgl" else len(timed.samples))
        assert model.evaluate("tensors", "window.cnnx.memory()")["numTensors"] == tensors
        memory = model.memory()
        assert memory is not None and memory.bytes > 10_000_000


def test_quantized_tfjs_artifacts_load_too(manifest: Manifest, batch: np.ndarray) -> None:
    with load("browser", manifest, manifest.artifact("tfjs_uint8")) as model:
        probs = model.predict(batch)
    assert probs.shape == (len(batch), len(manifest.labels))
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-4)


def test_a_hung_page_is_a_failed_call_not_a_hang(manifest: Manifest, batch: np.ndarray) -> None:
    model = load("browser", manifest, manifest.artifact("tfjs_float32"))
    started = time.monotonic()
    with pytest.raises(RuntimeUnavailable, match="no answer within 2 s"):
        model.evaluate("a busy loop", "() => { while (true) {} }", timeout=2)
    assert time.monotonic() - started < 20
    with pytest.raises(RuntimeUnavailable):
        model.predict(batch)  # its Chromium was killed
    model.close()
    # The next load starts a fresh Chromium.
    with load("browser", manifest, manifest.artifact("tfjs_float32")) as again:
        assert again.predict(batch[:2]).shape == (2, len(manifest.labels))


def test_bad_options_and_artifacts(manifest: Manifest) -> None:
    with pytest.raises(UsageError, match="no backend 'webnn'"):
        load("browser", manifest, manifest.artifact("tfjs_float32"), backend="webnn")
    with pytest.raises(ArtifactError):
        load("browser", manifest, manifest.artifact("tflite_float32"))


def test_missing_chromium_says_how_to_install_it(
    manifest: Manifest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    browser_runtime.shutdown()  # so the next load must find a browser
    monkeypatch.setenv("CNNX_CHROMIUM", str(tmp_path / "no-chromium"))
    with pytest.raises(RuntimeUnavailable, match=r"CNNX_CHROMIUM=.* is not an executable"):
        load("browser", manifest, manifest.artifact("tfjs_float32"))
    monkeypatch.delenv("CNNX_CHROMIUM")
    monkeypatch.setattr(chromium, "CHROMIUM_CANDIDATES", ())
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeUnavailable) as error:
        load("browser", manifest, manifest.artifact("tfjs_float32"))
    assert error.value.exit_code == 8
    assert "apt-get install chromium" in error.value.one_line()
