"""The web demo page's facts: its files, its engines, the npm files each loads and the
headers it needs. The dev server (toolkit/web/server.py), the web bundle
(toolkit/packaging/web.py) and the browser runtimes read them; none of them needs the
server to know what the page is."""

from __future__ import annotations

import os
from pathlib import Path

from toolkit.errors import ArtifactError, PathError, RuntimeUnavailable
from toolkit.manifest import load_manifest

PAGE_FILES = (
    "index.html",
    "app.js",
    "style.css",
    "engines.js",
    "engine_tfjs.js",
    "engine_litertjs.js",
    "engine_onnx.js",
    "tflite.js",
    "gpu.js",
    "timed_loop.js",
)
SAMPLES_DIR = "samples"
ARTIFACTS_PREFIX = "artifacts"
VENDOR_PREFIX = "vendor"

# The page's engines, the artifact formats each runs and the npm files it loads, by the
# name the page asks for (under /vendor/).
ENGINE_FORMATS: dict[str, str] = {"tfjs": "tfjs", "litertjs": "tflite", "onnx": "onnx"}
ENGINE_NAMES = {"tfjs": "TF.js", "litertjs": "LiteRT.js", "onnx": "ONNX Runtime Web"}
_TFJS_DIST = Path("node_modules/@tensorflow/tfjs/dist")
_WASM_DIST = Path("node_modules/@tensorflow/tfjs-backend-wasm/dist")
_WEBGPU_DIST = Path("node_modules/@tensorflow/tfjs-backend-webgpu/dist")
_LITERTJS = Path("node_modules/@litertjs")
# Every build but JSPI's is picked by the browser's features; JSPI's runs WebGPU.
_LITERTJS_BUILDS = ("", "_compat", "_threaded", "_jspi")
_ORT_DIST = Path("node_modules/onnxruntime-web/dist")
# The wasm provider's build (threads or not: numThreads decides), and the WebGPU one.
_ORT_FILES = (
    "ort.wasm.min.mjs",
    "ort.webgpu.min.mjs",
    *(
        f"ort-wasm-simd-threaded{build}.{ext}"
        for build in ("", ".asyncify")
        for ext in ("mjs", "wasm")
    ),
)
ENGINE_VENDOR: dict[str, dict[str, Path]] = {
    "tfjs": {
        "tf.min.js": _TFJS_DIST / "tf.min.js",
        "tf-backend-wasm.min.js": _WASM_DIST / "tf-backend-wasm.min.js",
        "tfjs-backend-wasm.wasm": _WASM_DIST / "tfjs-backend-wasm.wasm",
        "tfjs-backend-wasm-simd.wasm": _WASM_DIST / "tfjs-backend-wasm-simd.wasm",
        "tfjs-backend-wasm-threaded-simd.wasm": _WASM_DIST / "tfjs-backend-wasm-threaded-simd.wasm",
        "tf-backend-webgpu.min.js": _WEBGPU_DIST / "tf-backend-webgpu.min.js",
    },
    "litertjs": {
        "litertjs/index.js": _LITERTJS / "core/dist/index.js",
        "litertjs/wasm-utils.js": _LITERTJS / "wasm-utils/dist/index.js",
        **{
            f"litertjs/litert_wasm{build}_internal{suffix}": _LITERTJS
            / f"core/wasm/litert_wasm{build}_internal{suffix}"
            for build in _LITERTJS_BUILDS
            for suffix in (".js", ".wasm")
        },
    },
    "onnx": {f"ort/{name}": _ORT_DIST / name for name in _ORT_FILES},
}
ENGINES = tuple(ENGINE_VENDOR)

# Sent with every response. COOP + COEP make the page cross-origin isolated (precise
# timers, SharedArrayBuffer for wasm threads); CORP lets it load our own files under COEP.
SECURITY_HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # A re-export replaces the model in place; never let the browser keep an old one.
    "Cache-Control": "no-cache",
}


def web_demo_dir() -> Path:
    """The page's folder: $CNNX_WEB_DEMO, else web_demo/ beside the toolkit package."""
    override = os.environ.get("CNNX_WEB_DEMO")
    folder = Path(override) if override else Path(__file__).resolve().parents[2] / "web_demo"
    missing = [name for name in PAGE_FILES if not (folder / name).is_file()]
    if missing:
        raise PathError(
            f"the web demo page is incomplete in {folder}: missing {', '.join(missing)}",
            "set CNNX_WEB_DEMO to the web_demo folder of a cnnx checkout",
        )
    return folder


def vendor_files(
    page_dir: Path | None = None, engines: tuple[str, ...] = ENGINES
) -> dict[str, Path]:
    """The engines' npm files the page needs, by the name it asks for, checked to exist."""
    root = page_dir or web_demo_dir()
    files = {
        name: root / relative
        for engine in engines
        for name, relative in ENGINE_VENDOR[engine].items()
    }
    missing = sorted(name for name, path in files.items() if not path.is_file())
    if missing:
        names = " and ".join(ENGINE_NAMES[e] for e in engines)
        raise RuntimeUnavailable(
            f"{names} not installed in {root / 'node_modules'} (missing {', '.join(missing)})",
            "run make npm (npm ci in web_demo)",
        )
    return files


def web_artifact_paths(artifacts_dir: Path, engines: tuple[str, ...] = ENGINES) -> list[str]:
    """The paths of the manifest's artifacts that `engines` run; an error if none."""
    manifest = load_manifest(artifacts_dir)
    formats = [ENGINE_FORMATS[e] for e in engines]
    paths = [e.path for e in manifest.artifacts.values() if e.format in formats]
    if not paths:
        names = {"tfjs": "TF.js", "tflite": "TFLite", "onnx": "ONNX"}
        raise ArtifactError(
            f"{manifest.path} has no {' or '.join(names[f] for f in formats)} artifact (it has: "
            f"{', '.join(sorted(manifest.artifacts)) or 'none'})",
            "export one with cnnx export --to tfjs (or --to tflite, --to onnx)",
        )
    return paths
