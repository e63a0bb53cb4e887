"""TF.js in headless Chromium: the web demo page itself, driven by Playwright.

`load` serves the artifacts folder with the demo server (toolkit/serve.py) on
127.0.0.1:0, opens the page in Debian's Chromium (no `playwright install`) with
`?model=ID&backend=NAME`, and talks to the page's `window.cnnx` API: the model, the
preprocessing-free `predictInput` and the in-page timer are exactly what a visitor's
browser runs. Batches travel as base64 float32 both ways.

One Chromium and one server are shared by every model loaded in this process (a
browser start costs about two seconds); each model gets its own page. Every call runs
under a watchdog: a page that does not answer in time has its Chromium killed, so a
hung or crashed browser becomes a RuntimeUnavailable (a failed row), never a hang.

Chromium comes from `CNNX_CHROMIUM`, /usr/bin/chromium, /usr/bin/chromium-browser or
the PATH.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from toolkit.errors import ArtifactError, CnnxError, RuntimeUnavailable, shorten
from toolkit.manifest import ArtifactEntry, Manifest
from toolkit.runtimes import LoadedModel, MemoryReading, RuntimeInfo, check_batch
from toolkit.runtimes.tfjs_shared import (
    backend_option,
    executable_from_env,
    predict_in_chunks,
    timing_limit,
)

BACKENDS = ("wasm", "webgl", "cpu")
LOAD_TIMEOUT = 120.0  # seconds: start Chromium, fetch the model, compile wasm or shaders
CALL_TIMEOUT = 60.0  # seconds per predict call (scaled up for long timing calls)
CHUNK = 64  # rows per predict call: bounds the base64 message and the page's memory
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
# Headless as root in a container: no sandbox, software GL (SwiftShader) for webgl,
# and nothing that phones home while we measure.
CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--enable-unsafe-swiftshader",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
CHROMIUM_FIX = "apt-get install chromium (make browser), or set CNNX_CHROMIUM"

T = TypeVar("T")


def chromium_binary() -> str:
    """The Chromium executable: $CNNX_CHROMIUM, else Debian's, else the PATH."""
    given = executable_from_env("CNNX_CHROMIUM", "point it at chromium")
    if given:
        return given
    for candidate in CHROMIUM_CANDIDATES:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeUnavailable(
        "Chromium is not installed (needed for the browser runtime)", CHROMIUM_FIX
    )


def _summary(error: BaseException, limit: int = 300) -> str:
    return " ".join(str(error).split())[:limit]


class _Timeout(Exception):
    pass


class _PlaywrightThread:
    """A thread that owns Playwright: every browser call runs there, one at a time.

    Playwright's sync API refuses to start in a thread that already runs an event loop
    or another Playwright; a thread of our own keeps the adapter usable from anywhere
    (tests that drive a browser themselves, an asyncio caller), and lets the caller wait
    with a time limit while the call itself blocks over there.
    """

    def __init__(self) -> None:
        self._jobs: queue.Queue[tuple[Callable[[], Any], Future[Any]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="cnnx-browser", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            action, future = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(action())
            except BaseException as error:
                future.set_exception(error)

    def run(self, action: Callable[[], T], timeout: float) -> T:
        future: Future[T] = Future()
        self._jobs.put((action, future))
        try:
            return future.result(timeout)
        except FutureTimeout:
            raise _Timeout from None

    def stop(self) -> None:
        self._jobs.put(None)


class BrowserSession:
    """One Playwright driver, one Chromium and the demo servers it reads from."""

    def __init__(self, timeout: float) -> None:
        try:
            import playwright.sync_api  # noqa: F401 - fail here, with the fix
            import psutil
        except ImportError as error:  # pragma: no cover - part of the pinned set
            raise RuntimeUnavailable(
                f"the browser runtime needs {error.name}", "reinstall with make setup"
            ) from None
        self.executable = chromium_binary()
        self._psutil = psutil
        self._servers: dict[Path, Any] = {}
        self._users = 0
        self.dead = False
        self.killed_for = ""
        self._pids: set[int] = set()
        self._thread = _PlaywrightThread()
        before = self._chromium_pids()
        try:
            self.browser, self._playwright, self.start_ms = self._thread.run(
                lambda: self._launch(timeout), timeout + 10
            )
        except _Timeout:
            self._pids = self._chromium_pids() - before
            self.kill("Chromium did not start")
            self._thread.stop()
            raise RuntimeUnavailable(
                f"Chromium ({self.executable}) did not start within {timeout:g} s", CHROMIUM_FIX
            ) from None
        except RuntimeUnavailable:
            self._thread.stop()
            raise
        # The processes we started: the watchdog kills exactly these and nothing else.
        self._pids = self._chromium_pids() - before
        self.version = str(self.browser.version)

    def _launch(self, timeout: float) -> tuple[Any, Any, float]:
        from playwright.sync_api import sync_playwright

        playwright = sync_playwright().start()
        started = time.perf_counter()
        try:
            browser = playwright.chromium.launch(
                executable_path=self.executable,
                args=list(CHROMIUM_FLAGS),
                timeout=timeout * 1e3,
            )
        except Exception as error:
            playwright.stop()
            raise RuntimeUnavailable(
                f"Chromium ({self.executable}) did not start: {_summary(error)}", CHROMIUM_FIX
            ) from None
        return browser, playwright, (time.perf_counter() - started) * 1e3

    def run(self, what: str, action: Callable[[], T], timeout: float) -> T:
        """Run `action` in the Playwright thread; past `timeout`, kill Chromium."""
        if self.dead:
            raise RuntimeUnavailable(f"{what}: Chromium is gone ({self.killed_for or 'closed'})")
        try:
            return self._thread.run(action, timeout)
        except _Timeout:
            reason = f"{what}: no answer within {timeout:g} s"
            self.kill(reason)
            raise RuntimeUnavailable(
                reason, "the page hung or crashed; Chromium was stopped"
            ) from None

    def _chromium_pids(self) -> set[int]:
        try:
            me = self._psutil.Process()
            return {
                child.pid
                for child in me.children(recursive=True)
                if "chrom" in (child.name() or "").lower()
            }
        except self._psutil.Error:
            return set()

    def server_for(self, root: Path) -> Any:
        from toolkit.serve import make_server

        key = root.resolve()
        if key not in self._servers:
            self._servers[key] = make_server(key, port=0).start()
        return self._servers[key]

    def acquire(self) -> None:
        self._users += 1

    def release(self) -> None:
        # Kept open for the next load (bench loads artifact x backend in turn); a dead
        # one is closed at once, a live one by shutdown() or at exit.
        self._users -= 1
        if self._users <= 0 and self.dead:
            self.close()

    def kill(self, reason: str) -> None:
        """Kill the Chromium processes this session started (a hung or crashed page)."""
        self.dead = True
        self.killed_for = reason
        for pid in self._pids:
            with contextlib.suppress(self._psutil.Error):
                self._psutil.Process(pid).kill()

    def memory_bytes(self) -> int:
        # USS, not RSS: Chromium's processes share most pages, and summing RSS would
        # count the shared libraries once per process.
        total = 0
        for pid in self._pids | self._chromium_pids():
            with contextlib.suppress(self._psutil.Error):
                total += int(self._psutil.Process(pid).memory_full_info().uss)
        return total

    def close(self) -> None:
        global _SESSION
        if _SESSION is self:
            _SESSION = None
        for server in self._servers.values():
            server.close()
        self._servers.clear()

        def stop() -> None:
            with contextlib.suppress(Exception):
                self.browser.close()
            with contextlib.suppress(Exception):
                self._playwright.stop()

        try:
            self._thread.run(stop, 15)
        except _Timeout:
            self.kill("it did not close")
        self._thread.stop()
        self.dead = True


_SESSION: BrowserSession | None = None


def _session(timeout: float) -> BrowserSession:
    global _SESSION
    if _SESSION is None or _SESSION.dead:
        if _SESSION is not None:
            _SESSION.close()
        _SESSION = BrowserSession(timeout)
    return _SESSION


def shutdown() -> None:
    """Close the shared Chromium and its servers (models still open stop working)."""
    if _SESSION is not None:
        _SESSION.close()


atexit.register(shutdown)


class BrowserModel(LoadedModel):
    """An artifact loaded in one page of the shared headless Chromium."""

    def __init__(
        self,
        session: BrowserSession,
        manifest: Manifest,
        entry: ArtifactEntry,
        backend: str,
        timeout: float,
    ) -> None:
        self._session = session
        self._manifest = manifest
        self._entry = entry
        self._timeout = timeout
        self.what = f"{entry.id} on browser/{backend}"
        self.console_errors: list[str] = []
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
            raise RuntimeUnavailable(
                f"{self.what}: cannot open a page: {_summary(error)}"
            ) from None

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
                f"{self.what}: {what} failed in Chromium: {_summary(error)}{said}"
            ) from None

    def evaluate(
        self, what: str, script: str, arg: Any = None, timeout: float | None = None
    ) -> Any:
        return self.call(what, lambda: self.page.evaluate(script, arg), timeout or self._timeout)

    def _encode(self, array: np.ndarray) -> str:
        return base64.b64encode(np.ascontiguousarray(array, dtype="<f4").tobytes()).decode("ascii")

    def predict(self, batch: np.ndarray) -> np.ndarray:
        array = check_batch(batch, self._entry, self._manifest)
        classes = len(self._manifest.labels)

        def predict_part(part: np.ndarray) -> np.ndarray:
            answer = self.evaluate(
                "predict",
                "([data, rows]) => window.cnnx.predictInput(data, rows)",
                [self._encode(part), len(part)],
            )
            values = np.frombuffer(base64.b64decode(answer["output"]), dtype="<f4")
            if values.size != len(part) * classes:
                raise RuntimeUnavailable(
                    f"{self.what}: the page returned {values.size} values for {len(part)} rows "
                    f"of {classes} classes"
                )
            return values.astype(np.float32).reshape(len(part), classes)

        return predict_in_chunks(array, CHUNK, classes, predict_part)

    def self_timed(self, batch: np.ndarray, runs: int) -> list[int] | None:
        """Latency per run by performance.now() in the page (fine-grained: COOP/COEP)."""
        array = check_batch(batch, self._entry, self._manifest)
        limit = timing_limit(self._timeout, int(runs), lambda: self.predict(array))
        result = self.evaluate(
            "the timing run",
            "([data, rows, runs]) => window.cnnx.bench(runs, "
            "{input: data, batch: rows, warmup: 0, times: true})",
            [self._encode(array), len(array), int(runs)],
            timeout=limit,
        )
        return [round(float(ms) * 1e6) for ms in result["times"]]

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
        if not self._session.dead:
            with contextlib.suppress(Exception):
                self._session.run(f"{self.what}: closing", self._context.close, self._timeout)
        self._session.release()


def load(manifest: Manifest, entry: ArtifactEntry, **options: Any) -> BrowserModel:
    """Open `entry` in headless Chromium; options: backend (wasm|webgl|cpu), timeout (s)."""
    backend = backend_option(options, BACKENDS, "the browser runtime")
    if entry.format != "tfjs":
        raise ArtifactError(f"the browser runtime runs TF.js artifacts, not {entry.format!r}")
    timeout = float(options.get("timeout") or CALL_TIMEOUT)
    manifest.artifact_path(entry, check=bool(options.get("check", True)))
    started = time.perf_counter()
    session = _session(max(timeout, LOAD_TIMEOUT))
    server = session.server_for(manifest.root)
    model = BrowserModel(session, manifest, entry, backend, timeout)
    try:
        url = f"{server.url}?model={entry.id}&backend={backend}"
        model.call("loading the page", lambda: model.page.goto(url), max(timeout, LOAD_TIMEOUT))
        info = model.evaluate("loading the model", "window.cnnx.ready", None, LOAD_TIMEOUT)
        if info.get("artifact") != entry.id:
            raise RuntimeUnavailable(f"{model.what}: the page loaded {info.get('artifact')!r}")
        if info.get("backend") != backend:
            # TF.js falls back to another backend without an error: that is a failure here.
            raise RuntimeUnavailable(
                f"{model.what}: TF.js could not start the {backend} backend in Chromium "
                f"({info.get('backendNote') or 'it fell back to ' + str(info.get('backend'))})",
                "webgl needs SwiftShader (--enable-unsafe-swiftshader); try --runtimes with wasm",
            )
    except BaseException:
        model.close()
        raise
    features = info.get("features") or {}
    model.info = RuntimeInfo(
        runtime="browser",
        backend=backend,
        threads=int(features["threadCount"]) if features.get("threads") else None,
        init_ms=float(info["loadMs"]) + float(info["firstMs"]),
        details={
            "chromium": session.version,
            "tfjs": info.get("tfVersion"),
            "load_ms": float(info["loadMs"]),
            "first_inference_ms": float(info["firstMs"]),
            "page_start_ms": (time.perf_counter() - started) * 1e3,
            "browser_start_ms": session.start_ms,
            "cross_origin_isolated": bool(info.get("crossOriginIsolated")),
            "wasm_simd": features.get("simd"),
            "wasm_threads": features.get("threadCount") if features.get("threads") else None,
        },
    )
    return model
