"""The `onnxruntime-web` runtime: ONNX Runtime Web in the demo page in headless Chromium,
on the session's real .onnx exports, against native ONNX Runtime and the SavedModel.

Its rows in `cnnx bench` and `cnnx verify` beside the other in-page engines, and in the
browser recommendation: tests/test_litertjs_runtime.py; the `--engine onnx|all` bundles:
tests/test_web_package.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.web_support import References, load_in_page
from toolkit.manifest import Manifest
from toolkit.runtimes import RUNTIMES, ort_web

pytest_plugins = ["tests.web_support"]
pytestmark = pytest.mark.usefixtures("runtime_chromium")


def test_the_registry_names_the_runtime() -> None:
    assert RUNTIMES["onnxruntime-web"].supported_variants == ort_web.BACKENDS
    assert RUNTIMES["onnxruntime-web"].formats == RUNTIMES["onnxruntime"].formats == ("onnx",)


@pytest.mark.browser
@pytest.mark.slow
# Every backend on float32; int8 on wasm alone: its graph quantizes inside itself, so the
# page runs it like any other (web_demo/engine_onnx.js), and int8 on the other backends
# would prove ONNX Runtime's kernels, not cnnx (int8 on WebGPU-on-SwiftShader took 12 s).
@pytest.mark.parametrize(
    ("artifact", "backend"),
    [
        ("onnx_float32", "wasm"),
        ("onnx_float32", "wasm-threaded"),
        ("onnx_float32", "webgpu"),
        ("onnx_int8", "wasm"),
    ],
)
def test_each_backend_gives_the_native_answers_in_chromium(
    manifest: Manifest,
    batch: np.ndarray,
    references: References,
    artifact: str,
    backend: str,
) -> None:
    model = load_in_page("onnxruntime-web", manifest, artifact, backend)
    with model:
        probs = model.predict(batch)
        info = model.info
    assert (info.runtime, info.backend) == ("onnxruntime-web", backend)
    assert info.details["engine"] == "ONNX Runtime Web" and info.details["engine_version"]
    assert info.details["cross_origin_isolated"] is True
    if backend == "wasm-threaded":
        assert info.threads is not None and info.threads >= 2
    assert probs.dtype == np.float32 and probs.shape == references("savedmodel").shape
    if artifact == "onnx_float32":
        assert np.abs(probs - references("savedmodel")).max() < 1e-4
    else:
        # The same QDQ graph as native ONNX Runtime, on other int8 kernels.
        assert (probs.argmax(1) == references("onnx_int8").argmax(1)).mean() >= 0.95
        assert np.abs(probs - references("onnx_int8")).max() < 0.05
