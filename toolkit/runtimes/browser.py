"""Models in the web demo page in headless Chromium: the `browser` runtime (TF.js) here,
and the `litertjs` (litertjs.py) and `onnxruntime-web` (ort_web.py) runtimes through the
same code.

`load_in_page` serves the artifacts folder with the demo server (toolkit/web/server.py) on
127.0.0.1:0, opens the page in the shared Chromium (chromium.py) with
`?model=ID&backend=NAME`, and talks to the page's `window.cnnx` API: the engine, the
preprocessing-free `predictUrl` and the in-page timer are exactly what a visitor's
browser runs. Batches reach the page as raw float32 bytes that it fetches from a
one-time URL (page_feed.py); the probabilities come back as base64 float32.

The page starts the backend asked for or says why not; a backend that did not start
is a failed load here (or a skipped one where Chromium has no WebGPU adapter), never a
row measured on another backend.
"""

from __future__ import annotations

import base64
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from toolkit.errors import ArtifactError, CnnxError, RuntimeUnavailable, shorten
from toolkit.manifest import ArtifactEntry, Manifest
from toolkit.runtimes import (
    LoadedModel,
    MemoryReading,
    PicturesFn,
    RuntimeInfo,
    RuntimeSkipped,
    SelfTimed,
    check_batch,
)
from toolkit.runtimes.chromium import (
    CHROMIUM_FLAGS,
    BrowserSession,
    brief,
    chromium_binary,
    shared_session,
    shutdown,
)
from toolkit.runtimes.page_feed import PageFeed
from toolkit.runtimes.tfjs_shared import (
    backend_option,
    checked_model_json,
    npm_version,
    predict_in_chunks,
    timing_limit,
)

__all__ = ["BACKENDS", "CHROMIUM_FLAGS", "BrowserModel", "chromium_binary", "load", "shutdown"]

BACKENDS = ("wasm", "webgl", "cpu", "webgpu")
LOAD_TIMEOUT = 120.0  # seconds: start Chromium, fetch the model, compile wasm or shaders
CALL_TIMEOUT = 60.0  # seconds for a call's fixed part (scaled up by its measured work)
WEBGPU_FIX = "Chromium offers WebGPU here only with --enable-unsafe-webgpu (set by cnnx)"

T = TypeVar("T")


class BrowserModel(LoadedModel):
    """An artifact loaded in one page of the shared headless Chromium."""

    def __init__(
        self,
        session: BrowserSession,
        manifest: Manifest,
        entry: ArtifactEntry,
        what: str,
        timeout: float,
    ) -> None:
        self._session = session
        self._manifest = manifest
        self._entry = entry
        self._timeout = timeout
        self.what = what
        self.console_errors: list[str] = []
        self._page_feed: PageFeed | None = None
        session.acquire()
        self._closed = False
        try:
            self._context, self.page = session.run(
                f"{self.what}: opening a page", self._open_page, timeout
            )
        except BaseException as error:
            session.release()
            if isinstance(error, CnnxError):
                raise
            raise RuntimeUnavailable(f"{self.what}: cannot open a page: {brief(error)}") from None

    def _open_page(self) -> tuple[Any, Any]:
        # Runs in the Playwright thread, like every other use of the page.
        context = self._session.browser.new_context()
        page = context.new_page()
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.console_errors.append(f"pageerror: {error}"))
        page.on("crash", lambda _page: self.console_errors.append("the page crashed"))
        return context, page

    def _on_console(self, message: Any) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def call(self, what: str, action: Callable[[], T], timeout: float) -> T:
        """Run one Playwright action under a time limit; any failure is RuntimeUnavailable."""
        if self._closed:
            raise RuntimeUnavailable(f"{self.what}: the model was already closed")
        try:
            return self._session.run(f"{self.what}: {what}", action, timeout)
        except CnnxError:
            raise
        except Exception as error:
            said = f"; console: {shorten(self.console_errors[-1])}" if self.console_errors else ""
            raise RuntimeUnavailable(
                f"{self.what}: {what} failed in Chromium: {brief(error)}{said}"
            ) from None

    def evaluate(
        self, what: str, script: str, arg: Any = None, timeout: float | None = None
    ) -> Any:
        return self.call(what, lambda: self.page.evaluate(script, arg), timeout or self._timeout)

    def _feed(self) -> PageFeed:
        if self._page_feed is None:
            self._page_feed = PageFeed()
        return self._page_feed

    def _encode(self, array: np.ndarray) -> str:
        return base64.b64encode(np.ascontiguousarray(array, dtype="<f4").tobytes()).decode("ascii")

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return self._predict(batch, None)

    def predict_reporting(self, batch: np.ndarray, pictures: PicturesFn) -> np.ndarray:
        return self._predict(batch, pictures)

    def _predict(self, batch: np.ndarray, pictures: PicturesFn | None) -> np.ndarray:
        array = check_batch(batch, self._entry, self._manifest)
        classes = len(self._manifest.labels)

        def predict_part(part: np.ndarray, limit: float) -> np.ndarray:
            url = self._feed().offer(np.ascontiguousarray(part, dtype="<f4").tobytes())
            try:
                answer = self.evaluate(
                    "predict",
                    "([url, rows]) => window.cnnx.predictUrl(url, rows)",
                    [url, len(part)],
                    timeout=limit,
                )
            finally:
                self._feed().forget(url)
            values = np.frombuffer(base64.b64decode(answer["output"]), dtype="<f4")
            if values.size != len(part) * classes:
                raise RuntimeUnavailable(
                    f"{self.what}: the page returned {values.size} values for {len(part)} rows "
                    f"of {classes} classes"
                )
            return values.astype(np.float32).reshape(len(part), classes)

        return predict_in_chunks(array, classes, self._timeout, predict_part, pictures)

    def self_timed(self, batch: np.ndarray, runs: int) -> SelfTimed | None:
        """One row's runs timed by performance.now() in the page (its bench())."""
        array = check_batch(batch, self._entry, self._manifest)[:1]
        limit = timing_limit(self._timeout, int(runs), lambda: self.predict(array))
        result = self.evaluate(
            "the timing run",
            "([data, runs]) => window.cnnx.bench(runs, {input: data, warmup: 0, times: true})",
            [self._encode(array), int(runs)],
            timeout=limit,
        )
        return SelfTimed.from_answer(result["timed"])

    def bench(self, runs: int = 200, warmup: int = 10) -> dict[str, Any]:
        """The page's own benchmark on the current (or zero) image: p50/p90/p99/mean/std ms."""
        result: dict[str, Any] = self.evaluate(
            "the benchmark",
            "([runs, warmup]) => window.cnnx.bench(runs, {warmup})",
            [int(runs), int(warmup)],
            timeout=self._timeout + runs * 1.0,
        )
        return result

    def memory(self) -> MemoryReading | None:
        used = self._session.memory_bytes()
        return MemoryReading(used, "chromium processes USS (psutil), current") if used else None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._page_feed is not None:
            self._page_feed.close()
        if not self._session.dead:
            with contextlib.suppress(Exception):
                self._session.run(f"{self.what}: closing", self._context.close, self._timeout)
        self._session.release()


@dataclass(frozen=True)
class PageEngine:
    """One engine of the page, as a runtime of the registry."""

    runtime: str  # registry name: "browser" or "litertjs"
    engine: str  # the page's name for it: "tfjs" or "litertjs"
    label: str  # "TF.js", "LiteRT.js"
    format: str  # the manifest format it runs
    backends: tuple[str, ...]
    fix: str  # what to try when a backend does not start


TFJS = PageEngine(
    "browser",
    "tfjs",
    "TF.js",
    "tfjs",
    BACKENDS,
    "webgl needs SwiftShader (--enable-unsafe-swiftshader); try --backends wasm",
)


def _gpu(features: dict[str, Any]) -> dict[str, Any]:
    """The GPU the page says a backend computes on: the WebGPU adapter or the WebGL
    renderer (web_demo/gpu.js), as {name, software}; {} on a CPU backend."""
    return features.get("adapter") or features.get("renderer") or {}


def _device(backend: str, features: dict[str, Any]) -> str:
    """Where a backend computes: 'cpu' (wasm, cpu), 'gpu' (webgl, webgpu), or the
    software adapter's or renderer's name where one draws on the CPU (SwiftShader)."""
    if backend not in ("webgl", "webgpu"):
        return "cpu"
    gpu = _gpu(features)
    if not gpu.get("software"):
        return "gpu"
    return "swiftshader" if "swiftshader" in str(gpu.get("name")).lower() else "software"


def _runtime_info(
    engine: PageEngine, backend: str, info: dict[str, Any], session: BrowserSession, started: float
) -> RuntimeInfo:
    features = info.get("features") or {}
    gpu = _gpu(features)
    threaded = backend != "webgpu" and (engine.engine != "tfjs" or features.get("threads"))
    version = info.get("tfVersion") if engine.engine == "tfjs" else info.get("engineVersion")
    if engine.engine == "litertjs":
        version = _litertjs_version()
    return RuntimeInfo(
        runtime=engine.runtime,
        backend=backend,
        device=_device(backend, features),
        threads=int(features["threadCount"]) if threaded else None,
        init_ms=float(info["loadMs"]) + float(info["firstMs"]),
        # Only what applies to this engine and backend (no wasm build on TF.js...).
        details={
            key: value
            for key, value in {
                "engine": engine.label,
                "engine_version": version,
                "chromium": session.version,
                "load_ms": float(info["loadMs"]),
                "first_inference_ms": float(info["firstMs"]),
                "page_start_ms": (time.perf_counter() - started) * 1e3,
                "browser_start_ms": session.start_ms,
                "cross_origin_isolated": bool(info.get("crossOriginIsolated")),
                "wasm_simd": features.get("simd"),
                "wasm_relaxed_simd": features.get("relaxedSimd"),
                "wasm_build": features.get("build"),
                "wasm_threads": features.get("threadCount") if threaded else None,
                "gpu_name": gpu.get("name"),
                "gpu_software": gpu.get("software"),
                "fully_delegated": features.get("fullyDelegated"),
            }.items()
            if value is not None
        },
    )


def _litertjs_version() -> str | None:
    from toolkit.web.page import web_demo_dir

    return npm_version(web_demo_dir() / "node_modules", "@litertjs/core")


def load_in_page(
    engine: PageEngine, manifest: Manifest, entry: ArtifactEntry, options: dict[str, Any]
) -> BrowserModel:
    """Open `entry` in the demo page on `engine`; options: backend, timeout (s), and for
    LiteRT.js threads and build."""
    backend = backend_option(options, engine.backends, f"the {engine.runtime} runtime")
    if entry.format != engine.format:
        raise ArtifactError(
            f"the {engine.runtime} runtime runs {engine.format} artifacts, not {entry.format!r}"
        )
    timeout = float(options.get("timeout") or CALL_TIMEOUT)
    if entry.format == "tfjs":  # its graph and shard paths checked before the page loads it
        checked_model_json(manifest, entry, options)
    else:
        manifest.artifact_path(entry, check=bool(options.get("check", True)))
    started = time.perf_counter()
    session = shared_session(max(timeout, LOAD_TIMEOUT))
    server = session.server_for(manifest.root)
    what = f"{entry.id} on {engine.runtime}/{backend}"
    model = BrowserModel(session, manifest, entry, what, timeout)
    try:
        url = f"{server.url}?model={entry.id}&backend={backend}"
        if engine.engine != "tfjs":
            # threads: the threaded build's count; build=compat: LiteRT.js's build without
            # relaxed SIMD, on wasm (a diagnostic the browser benchmark uses).
            if options.get("threads"):
                url += f"&threads={int(options['threads'])}"
            if options.get("build") == "compat":
                url += "&build=compat"
        model.call("loading the page", lambda: model.page.goto(url), max(timeout, LOAD_TIMEOUT))
        info = model.evaluate("loading the model", "window.cnnx.ready", None, LOAD_TIMEOUT)
        if (info.get("artifact"), info.get("engine")) != (entry.id, engine.engine):
            raise RuntimeUnavailable(
                f"{model.what}: the page loaded {info.get('artifact')!r} on {info.get('engine')!r}"
            )
        if info.get("backend") != backend:
            # The page fell back to another backend: never measure that as this one.
            note = info.get("backendNote") or f"it fell back to {info.get('backend')}"
            if info.get("noAdapter"):
                raise RuntimeSkipped(f"{model.what}: {note}", WEBGPU_FIX)
            if info.get("missingFeature"):  # the adapter cannot run this model, by design
                raise RuntimeSkipped(
                    f"{model.what}: {note}",
                    f"a GPU whose WebGPU adapter offers {info['missingFeature']} runs it",
                )
            raise RuntimeUnavailable(
                f"{model.what}: {engine.label} could not start the {backend} backend in "
                f"Chromium ({note})",
                engine.fix,
            )
    except BaseException:
        model.close()
        raise
    model.info = _runtime_info(engine, backend, info, session, started)
    return model


def load(manifest: Manifest, entry: ArtifactEntry, **options: Any) -> BrowserModel:
    """Open a TF.js `entry` in headless Chromium; options: backend, timeout (s)."""
    return load_in_page(TFJS, manifest, entry, options)
