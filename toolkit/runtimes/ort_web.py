"""ONNX Runtime Web (`onnxruntime-web`) in headless Chromium, on the .onnx artifacts.

The web demo page runs the very .onnx files the `onnxruntime` runtime runs natively,
with ONNX Runtime Web's wasm builds (web_demo/engine_onnx.js), through the same page,
server, Chromium and in-page timer as the TF.js `browser` runtime (browser.py).
Backends:

- `wasm`: the wasm execution provider on one thread;
- `wasm-threaded`: the same on several threads (`threads`, default up to 4), which
  needs the cross-origin isolation that the demo server's COOP/COEP headers give;
- `webgpu`: the WebGPU execution provider; a skipped row where Chromium offers no
  adapter, or where the model is float16 and the adapter lacks `shader-f16` (its float16
  kernels need it: SwiftShader's has none), and a device named after a software adapter
  (`@swiftshader`) where that is all there is.

Every ONNX artifact takes and gives float32, so the page hands rows over as they are.
"""

from __future__ import annotations

from typing import Any

from toolkit.manifest import ArtifactEntry, Manifest
from toolkit.runtimes.browser import BrowserModel, PageEngine, load_in_page

BACKENDS = ("wasm", "wasm-threaded", "webgpu")

ONNX_WEB = PageEngine(
    "onnxruntime-web",
    "onnx",
    "ONNX Runtime Web",
    "onnx",
    BACKENDS,
    "wasm-threaded needs a cross-origin-isolated page (cnnx serve sends COOP/COEP); "
    "try --backends wasm",
)


def load(manifest: Manifest, entry: ArtifactEntry, **options: Any) -> BrowserModel:
    """Open an .onnx `entry` in the page on ONNX Runtime Web; options: backend, timeout,
    threads."""
    from toolkit.graph.onnx_policy import check_onnx

    path = manifest.artifact_path(entry, check=bool(options.get("check", True)))
    check_onnx(path, unsafe=bool(options.get("unsafe", False)))
    return load_in_page(ONNX_WEB, manifest, entry, options)
