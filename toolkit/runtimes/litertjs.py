"""LiteRT.js (`@litertjs/core`) in headless Chromium, on the .tflite artifacts.

The web demo page runs the very .tflite files the Android and Raspberry Pi bundles
carry, with LiteRT.js's own wasm builds (web_demo/engine_litertjs.js), through the same
page, server, Chromium and in-page timer as the TF.js `browser` runtime (browser.py).
Backends:

- `wasm`: the single-threaded build (relaxed SIMD; the compat build where the browser
  lacks it);
- `wasm-threaded`: the threaded build, which needs the cross-origin isolation that the
  demo server's COOP/COEP headers give;
- `webgpu`: the WebGPU delegate; a skipped row where Chromium offers no adapter, and a
  device named after a software adapter (`@swiftshader`) where that is all there is.

int8 artifacts with uint8 I/O are quantized in the page with the tensor's own scale and
zero point, read from the .tflite file (web_demo/tflite.js), as the litert runtime does.
"""

from __future__ import annotations

from typing import Any

from toolkit.manifest import ArtifactEntry, Manifest
from toolkit.runtimes.browser import BrowserModel, PageEngine, load_in_page

BACKENDS = ("wasm", "wasm-threaded", "webgpu")

LITERTJS = PageEngine(
    "litertjs",
    "litertjs",
    "LiteRT.js",
    "tflite",
    BACKENDS,
    "wasm-threaded needs a cross-origin-isolated page (cnnx serve sends COOP/COEP); "
    "try --backends wasm",
)


def load(manifest: Manifest, entry: ArtifactEntry, **options: Any) -> BrowserModel:
    """Open a .tflite `entry` in the page on LiteRT.js; options: backend, timeout, threads."""
    return load_in_page(LITERTJS, manifest, entry, options)
