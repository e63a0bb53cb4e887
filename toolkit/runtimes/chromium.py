"""Headless Chromium for the in-page runtimes (browser, litertjs), driven by Playwright.

One Playwright driver, one Chromium and the demo servers it reads from are shared by
every model loaded in this process (a browser start costs about two seconds); each
model gets its own page (browser.py). Every call runs under a watchdog: a page that
does not answer in time has its Chromium killed, so a hung or crashed browser becomes
a RuntimeUnavailable (a failed row), never a hang.

Chromium comes from `CNNX_CHROMIUM`, /usr/bin/chromium, /usr/bin/chromium-browser or
the PATH.
"""

from __future__ import annotations

import atexit
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

from toolkit.errors import RuntimeUnavailable
from toolkit.runtimes.tfjs_shared import executable_from_env

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
# Headless as root in a container: no sandbox, software GL (SwiftShader) for webgl,
# WebGPU on whatever adapter Chromium finds (SwiftShader here, a software one: rows
# say so), and nothing that phones home while we measure.
CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--enable-unsafe-swiftshader",
    "--enable-unsafe-webgpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
# CNNX_CHROMIUM_GPU=1 (benchmarks/gpu_check.py on a GPU machine): the hardware GPU for
# WebGL (ANGLE over Vulkan) and WebGPU instead of --disable-gpu's software paths.
HARDWARE_GPU_FLAGS = (
    "--enable-gpu",
    "--ignore-gpu-blocklist",
    "--use-angle=vulkan",
    "--enable-features=Vulkan,VulkanFromANGLE,DefaultANGLEVulkan",
)
CHROMIUM_FIX = "apt-get install chromium (make browser), or set CNNX_CHROMIUM"


def chromium_flags() -> list[str]:
    """CHROMIUM_FLAGS, with the hardware GPU's flags instead of --disable-gpu where
    CNNX_CHROMIUM_GPU=1 asks for them."""
    if os.environ.get("CNNX_CHROMIUM_GPU") != "1":
        return list(CHROMIUM_FLAGS)
    return [f for f in CHROMIUM_FLAGS if f != "--disable-gpu"] + list(HARDWARE_GPU_FLAGS)


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


def brief(error: BaseException, limit: int = 300) -> str:
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
                args=chromium_flags(),
                timeout=timeout * 1e3,
            )
        except Exception as error:
            playwright.stop()
            raise RuntimeUnavailable(
                f"Chromium ({self.executable}) did not start: {brief(error)}", CHROMIUM_FIX
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
        from toolkit.web.server import make_server

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


def shared_session(timeout: float) -> BrowserSession:
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
