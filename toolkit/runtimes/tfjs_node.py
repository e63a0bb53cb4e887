"""TF.js graph models in Node (`@tensorflow/tfjs`, wasm or cpu backend).

One long-lived `node js/node_runner.mjs` process per loaded model, so latency measures
inference and not process start. The protocol (documented in the runner) is a JSON
header line plus raw float32 bytes each way. Every call has a time limit: a runner that
crashes, hangs or answers garbage is killed and becomes a RuntimeUnavailable, never a
hang of cnnx.

Node comes from `CNNX_NODE` or the PATH; the npm packages from `CNNX_NODE_MODULES` or
the repository's `web_demo/node_modules` (installed by `make npm`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO, Any

import numpy as np

from toolkit.errors import RuntimeUnavailable, shorten
from toolkit.manifest import ArtifactEntry, Manifest
from toolkit.runtimes import (
    LoadedModel,
    MemoryReading,
    PicturesFn,
    RuntimeInfo,
    SelfTimed,
    check_batch,
)
from toolkit.runtimes.tfjs_shared import (
    backend_option,
    checked_model_json,
    executable_from_env,
    predict_in_chunks,
    timing_limit,
)

RUNNER = Path(__file__).resolve().parent / "js" / "node_runner.mjs"
PREFIX = b"CNNX1 "
BACKENDS = ("wasm", "cpu")
LOAD_TIMEOUT = 120.0  # seconds: starting Node, compiling wasm and reading the weights
CALL_TIMEOUT = 60.0  # seconds for a call's fixed part (scaled up by its measured work)
STDERR_TAIL = 400  # characters of the runner's stderr quoted in an error
# What an engine prints on every start, whatever went wrong: never a reason.
BANNERS = re.compile(
    r"=+\s*Hi, looks like you are running TensorFlow\.js in Node\.js\..*?=+", re.DOTALL
)


def node_binary() -> str:
    """The node executable: $CNNX_NODE, else `node` on the PATH."""
    given = executable_from_env("CNNX_NODE", "point it at a node binary")
    if given:
        return given
    found = shutil.which("node")
    if found is None:
        raise RuntimeUnavailable(
            "node is not installed (needed for the tfjs-node runtime)",
            "apt-get install nodejs npm, then make npm; or skip it with --runtimes tf,litert",
        )
    return found


def node_modules(package: str = "@tensorflow/tfjs") -> Path:
    """The node_modules folder holding `package` (CNNX_NODE_MODULES overrides)."""
    given = os.environ.get("CNNX_NODE_MODULES")
    folder = (
        Path(given) if given else Path(__file__).resolve().parents[2] / "web_demo" / "node_modules"
    )
    if not (folder / package / "package.json").is_file():
        raise RuntimeUnavailable(
            f"{package} is not installed in {folder}",
            "run make npm (npm ci in web_demo/), or set CNNX_NODE_MODULES",
        )
    return folder


class NodeRunner:
    """One node process speaking the runner protocol (js/protocol.mjs), with a time limit
    on every call: node_runner.mjs for TF.js, or another runner script."""

    def __init__(
        self,
        what: str,
        env: dict[str, str],
        script: Path = RUNNER,
        node_args: tuple[str, ...] = (),
    ) -> None:
        self.what = what
        binary = node_binary()
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the runner
        try:
            self._process: subprocess.Popen[bytes] | None = subprocess.Popen(
                [binary, *node_args, str(script)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                env=env,
            )
        except OSError as error:
            self._stderr.close()
            raise RuntimeUnavailable(f"cannot start node for {what}: {error.strerror}") from None
        assert self._process.stdin is not None and self._process.stdout is not None
        os.set_blocking(self._process.stdin.fileno(), False)
        os.set_blocking(self._process.stdout.fileno(), False)
        self._buffer = bytearray()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def call(
        self, header: dict[str, Any], payload: bytes | None = None, *, timeout: float
    ) -> tuple[dict[str, Any], bytes]:
        """Send one request, return (response header, payload bytes) or raise."""
        if self._process is None:
            raise RuntimeUnavailable(f"{self.what}: the node runner was already closed")
        request = dict(header)
        if payload is not None:
            request["nbytes"] = len(payload)
        deadline = time.monotonic() + timeout
        self._write(json.dumps(request).encode() + b"\n", deadline, header["cmd"], timeout)
        if payload:
            self._write(payload, deadline, header["cmd"], timeout)
        line = self._read_line(deadline, header["cmd"], timeout)
        seen = shorten(line.decode(errors="replace"), 80)
        try:
            response = json.loads(line[len(PREFIX) :])
        except json.JSONDecodeError:
            self._fail(f"answered {header['cmd']} with an unreadable header {seen!r}")
        if not isinstance(response, dict):
            self._fail(f"answered {header['cmd']} with {seen!r}")
        body = self._read_exact(int(response.get("nbytes") or 0), deadline, header["cmd"], timeout)
        if not response.get("ok"):
            message = shorten(str(response.get("error", "unknown error")), 300)
            raise RuntimeUnavailable(
                f"{self.what}: node runner failed in {header['cmd']}: {message}"
            )
        return response, body

    def _selector(self, write: bool) -> selectors.BaseSelector:
        assert self._process is not None
        selector = selectors.DefaultSelector()
        stream = self._process.stdin if write else self._process.stdout
        assert stream is not None
        selector.register(stream, selectors.EVENT_WRITE if write else selectors.EVENT_READ)
        return selector

    def _wait(
        self, selector: selectors.BaseSelector, deadline: float, cmd: str, timeout: float
    ) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not selector.select(remaining):
            self._fail(f"did not answer {cmd} within {timeout:g} s", timed_out=True)

    def _write(self, data: bytes, deadline: float, cmd: str, timeout: float) -> None:
        assert self._process is not None and self._process.stdin is not None
        fd = self._process.stdin.fileno()
        view = memoryview(data)
        with self._selector(write=True) as selector:
            while view:
                self._wait(selector, deadline, cmd, timeout)
                try:
                    written = os.write(fd, view)
                except BrokenPipeError:
                    # The same exit as an EOF on stdout: whether the write or the read
                    # notices first depends on scheduling, so both say the same.
                    self._fail(f"exited during {cmd}")
                except BlockingIOError:
                    continue
                view = view[written:]

    def _fill(
        self, selector: selectors.BaseSelector, deadline: float, cmd: str, timeout: float
    ) -> None:
        assert self._process is not None and self._process.stdout is not None
        self._wait(selector, deadline, cmd, timeout)
        try:
            chunk = os.read(self._process.stdout.fileno(), 1 << 20)
        except BlockingIOError:
            return
        if not chunk:
            self._fail(f"exited during {cmd}")
        self._buffer += chunk

    def _read_line(self, deadline: float, cmd: str, timeout: float) -> bytes:
        with self._selector(write=False) as selector:
            while True:
                newline = self._buffer.find(b"\n")
                while newline >= 0:
                    line = bytes(self._buffer[:newline])
                    del self._buffer[: newline + 1]
                    if line.startswith(PREFIX):
                        return line
                    newline = self._buffer.find(b"\n")  # not ours: something TF.js printed
                self._fill(selector, deadline, cmd, timeout)

    def _read_exact(self, size: int, deadline: float, cmd: str, timeout: float) -> bytes:
        with self._selector(write=False) as selector:
            while len(self._buffer) < size:
                self._fill(selector, deadline, cmd, timeout)
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def stderr_tail(self) -> str:
        try:
            self._stderr.seek(0, os.SEEK_END)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - 4 * STDERR_TAIL))
            text = self._stderr.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""
        return " ".join(BANNERS.sub(" ", text).split())[-STDERR_TAIL:]

    def _fail(self, what: str, *, timed_out: bool = False) -> Any:
        code = None
        if self._process is not None and not timed_out:
            # The pipe closes a moment before the exit status is there to read.
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self._process.wait(timeout=10)
        tail = self.stderr_tail()
        self.kill()
        detail = f" (exit code {code})" if code is not None else ""
        hint = f"node said: {tail}" if tail else "run with the same files in node to see why"
        raise RuntimeUnavailable(f"{self.what}: node runner {what}{detail}", hint)

    def kill(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
            for stream in (process.stdin, process.stdout):
                with contextlib.suppress(OSError):
                    if stream is not None:
                        stream.close()
        with contextlib.suppress(OSError):
            self._stderr.close()

    def close(self, timeout: float = 5.0) -> None:
        if self._process is None:
            return
        with contextlib.suppress(RuntimeUnavailable):
            self.call({"cmd": "close"}, timeout=timeout)
        self.kill()


class NodeModel(LoadedModel):
    """A model in a Node runner: predict, self-timed runs and memory over the protocol."""

    def __init__(
        self,
        manifest: Manifest,
        entry: ArtifactEntry,
        runner: NodeRunner,
        info: RuntimeInfo,
        timeout: float,
    ) -> None:
        self._manifest = manifest
        self._entry = entry
        self._runner = runner
        self._timeout = timeout
        self.info = info

    def _request(
        self, cmd: str, array: np.ndarray, timeout: float, **extra: Any
    ) -> tuple[dict[str, Any], bytes]:
        header = {"cmd": cmd, "shape": list(array.shape), **extra}
        return self._runner.call(header, array.astype("<f4").tobytes(), timeout=timeout)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return self._predict(batch, None)

    def predict_reporting(self, batch: np.ndarray, pictures: PicturesFn) -> np.ndarray:
        return self._predict(batch, pictures)

    def _predict(self, batch: np.ndarray, pictures: PicturesFn | None) -> np.ndarray:
        array = check_batch(batch, self._entry, self._manifest)
        classes = len(self._manifest.labels)

        def predict_part(part: np.ndarray, limit: float) -> np.ndarray:
            response, body = self._request("predict", part, limit)
            values = np.frombuffer(body, dtype="<f4").astype(np.float32)
            shape = [int(d) for d in response.get("shape", [])]
            if values.size != len(part) * classes or (shape and shape[0] != len(part)):
                raise RuntimeUnavailable(
                    f"{self._runner.what}: node runner returned shape {shape} for "
                    f"{len(part)} rows of {classes} classes"
                )
            return values.reshape(len(part), classes)

        return predict_in_chunks(array, classes, self._timeout, predict_part, pictures)

    def self_timed(self, batch: np.ndarray, runs: int) -> SelfTimed | None:
        """One row's runs timed by performance.now() inside Node, without the pipe."""
        array = check_batch(batch, self._entry, self._manifest)
        limit = timing_limit(
            self._timeout, runs, lambda: self._request("predict", array, self._timeout)
        )
        response, _ = self._request("time", array, limit, runs=int(runs))
        return SelfTimed.from_answer(response)

    def memory(self) -> MemoryReading | None:
        response, _ = self._runner.call({"cmd": "memory"}, timeout=self._timeout)
        return MemoryReading(int(response["peak_rss"]), "node process.memoryUsage().rss, peak")

    def close(self) -> None:
        self._runner.close()


def load(manifest: Manifest, entry: ArtifactEntry, **options: Any) -> NodeModel:
    """Start a node runner and load `entry`; options: backend (wasm|cpu), timeout (s)."""
    backend = backend_option(options, BACKENDS, "tfjs-node")
    timeout = float(options.get("timeout") or CALL_TIMEOUT)
    path = checked_model_json(manifest, entry, options)
    env = dict(os.environ, CNNX_NODE_MODULES=str(node_modules()))
    start = time.perf_counter()
    runner = NodeRunner(f"{entry.id} on tfjs-node/{backend}", env)
    try:
        response, _ = runner.call(
            {"cmd": "load", "model": str(path), "backend": backend},
            # An explicit timeout (bench --timeout) bounds loading too: a hung Node must
            # not hold the bench for LOAD_TIMEOUT when the user asked for less.
            timeout=timeout if options.get("timeout") else max(timeout, LOAD_TIMEOUT),
        )
    except BaseException:
        runner.kill()
        raise
    spawn_ms = (time.perf_counter() - start) * 1e3
    info = RuntimeInfo(
        runtime="tfjs-node",
        backend=str(response.get("backend", backend)),
        init_ms=float(response.get("init_ms", spawn_ms)),
        details={
            "tfjs": response.get("tfjs_version"),
            "threads": 1,  # wasm threads are off in Node; the cpu backend is plain JS
            "node_pid": runner.pid,
            "start_ms": spawn_ms,  # process start + load, seen from Python
        },
    )
    return NodeModel(manifest, entry, runner, info, timeout)
