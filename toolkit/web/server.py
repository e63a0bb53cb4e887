"""The web demo server: the page, its engines and one artifacts folder, on 127.0.0.1.

The site has the same layout as a `cnnx package --target web` bundle, so the page uses
only relative URLs and runs unchanged from either:

    /                      index.html        (web_demo/)
    /app.js, /style.css    the page and its modules (web_demo/)
    /vendor/NAME           TF.js dist files and wasm binaries (web_demo/node_modules)
    /vendor/litertjs/NAME  LiteRT.js (@litertjs/core) and its wasm builds (same)
    /vendor/ort/NAME       ONNX Runtime Web (onnxruntime-web) and its wasm builds (same)
    /artifacts/...         manifest.json, samples/ and the TF.js and TFLite artifacts
                           it names (TF.js runs the first, LiteRT.js the second)

Nothing else is served: every request is decoded once, refused if any segment is `.`,
`..` or empty (so `/..%2f`, `%2e%2e` and `//etc/passwd` all fail), and the resolved
real path must stay inside its root (so a symlink out fails too). Responses carry
COOP/COEP so the page is cross-origin isolated: `performance.now()` is fine-grained
and the wasm backend may use threads.

Load: a page with many assets open in a few tabs sends hundreds of requests at once.
The kernel holds up to BACKLOG connections until they are accepted (with Python's
default of 5, a burst of 200 lost SYNs, whose retries a second, three, seven... later
ran into the clients' time-outs); at most WORKERS are served at once, the others
wait in that queue in order. A kept-alive connection gives its worker back after an
answer when another connection waits for one, and after IDLE_S without a request, so
idle tabs never hold a busy one back for more than IDLE_S.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import socket
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from toolkit.core.closing import Closing
from toolkit.errors import ArtifactError, PathError, ResourceError, UsageError
from toolkit.manifest import FILENAME as MANIFEST_FILE
from toolkit.web.page import (
    ARTIFACTS_PREFIX,
    PAGE_FILES,
    SAMPLES_DIR,
    SECURITY_HEADERS,
    VENDOR_PREFIX,
    vendor_files,
    web_artifact_paths,
    web_demo_dir,
)

log = logging.getLogger("cnnx.serve")

WORKERS = 32  # connections served at once
BACKLOG = 1024  # connections the kernel queues for accepting (the system may cap it)
IDLE_S = 2.0  # a connection with no (new) request this long is closed
SEND_S = 60.0  # a client that reads nothing of its answer this long is dropped

MIME_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".bin": "application/octet-stream",
    ".wasm": "application/wasm",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".txt": "text/plain; charset=utf-8",
}


class Refused(Exception):
    """A request for something the site does not serve."""

    def __init__(self, status: HTTPStatus) -> None:
        super().__init__(status.phrase)
        self.status = status


def request_segments(raw_path: str) -> list[str]:
    """Split a request target into decoded path segments, refusing traversal shapes.

    Decoding happens exactly once; a decoded segment that is empty, `.` or `..`, or
    that holds a backslash or NUL, refuses the whole request. A double-encoded `..`
    (`%252e%252e`) decodes to the literal name `%2e%2e`, which simply does not exist.
    """
    path = urlsplit(raw_path).path
    if not path.startswith("/"):
        raise Refused(HTTPStatus.BAD_REQUEST)
    try:
        decoded = unquote(path, errors="strict")
    except UnicodeDecodeError:
        raise Refused(HTTPStatus.BAD_REQUEST) from None
    if decoded == "/":
        return []
    segments = decoded[1:].split("/")
    for segment in segments:
        if segment in ("", ".", "..") or "\\" in segment or "\x00" in segment:
            raise Refused(HTTPStatus.FORBIDDEN)
    return segments


def _inside(root: Path, segments: list[str]) -> Path:
    """root/segments as a real file that stays inside root after resolving symlinks."""
    real_root = root.resolve()
    candidate = real_root.joinpath(*segments).resolve()
    if not candidate.is_relative_to(real_root):
        raise Refused(HTTPStatus.FORBIDDEN)
    if not candidate.is_file():
        raise Refused(HTTPStatus.NOT_FOUND)
    return candidate


@dataclass(frozen=True)
class Site:
    """What the server may answer, and from where."""

    page_dir: Path
    vendor: dict[str, Path]
    artifacts_dir: Path

    def resolve(self, raw_path: str) -> Path:
        """The file for a request target, or Refused."""
        segments = request_segments(raw_path)
        if not segments:
            return _inside(self.page_dir, ["index.html"])
        head, rest = segments[0], segments[1:]
        if not rest and head in PAGE_FILES:
            return _inside(self.page_dir, [head])
        if head == VENDOR_PREFIX and "/".join(rest) in self.vendor:
            return self.vendor["/".join(rest)]
        if head == ARTIFACTS_PREFIX and rest and self._artifact_allowed(rest):
            return _inside(self.artifacts_dir, rest)
        raise Refused(HTTPStatus.NOT_FOUND)

    def _artifact_allowed(self, rest: list[str]) -> bool:
        # Only the manifest, the samples and the artifacts the page runs (TF.js and
        # TFLite): not the SavedModel or reports. Read per request: a re-export may
        # change them.
        if rest == [MANIFEST_FILE]:
            return True
        if rest[0] == SAMPLES_DIR and len(rest) > 1:
            return True
        try:
            prefixes = web_artifact_paths(self.artifacts_dir)
        except (ArtifactError, PathError, UsageError):
            return False
        relative = "/".join(rest)
        return any(
            relative == p.rstrip("/") or relative.startswith(p.rstrip("/") + "/") for p in prefixes
        )


def _handler_for(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "cnnx-serve"
        sys_version = ""
        protocol_version = "HTTP/1.1"
        # Headers and body leave in separate writes: with Nagle's algorithm on, a small
        # body waits for the ACK of the headers, which the browser delays (40 ms on
        # Linux), and a page's chain of module imports pays that once per file.
        disable_nagle_algorithm = True

        def handle(self) -> None:
            # Keep-alive on the server's terms: a connection waits IDLE_S at most for
            # each request (handle_one_request closes on the time-out), and not at all
            # for another one when a new connection waits for this worker.
            self.close_connection = False
            while not self.close_connection:
                self.connection.settimeout(IDLE_S)
                self.handle_one_request()
                if self.server.waiting():  # type: ignore[attr-defined]
                    break

        def parse_request(self) -> bool:
            self.connection.settimeout(SEND_S)  # it arrived: now a limit on a stalled reader
            return super().parse_request()

        def do_GET(self) -> None:
            self._answer(send_body=True)

        def do_HEAD(self) -> None:
            self._answer(send_body=False)

        def _answer(self, *, send_body: bool) -> None:
            try:
                path = site.resolve(self.path)
            except Refused as refused:
                self._refuse(refused.status, send_body=send_body)
                return
            try:
                handle = open(path, "rb")  # noqa: SIM115 - closed below after streaming
            except OSError:
                self._refuse(HTTPStatus.NOT_FOUND, send_body=send_body)
                return
            with handle:
                size = os.fstat(handle.fileno()).st_size
                self.send_response(HTTPStatus.OK)
                mime = MIME_TYPES.get(path.suffix.lower(), "application/octet-stream")
                self.send_header("Content-Type", mime)
                self.send_header("Content-Length", str(size))
                self._common_headers()
                self.end_headers()
                # The browser may go away mid-file; there is nobody left to tell.
                if send_body:
                    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                        shutil.copyfileobj(handle, self.wfile)

        def _refuse(self, status: HTTPStatus, *, send_body: bool) -> None:
            body = f"{status.value} {status.phrase}\n".encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self._common_headers()
            self.end_headers()
            if send_body:
                self.wfile.write(body)

        def _common_headers(self) -> None:
            for key, value in SECURITY_HEADERS.items():
                self.send_header(key, value)

        def log_message(self, format: str, *args: object) -> None:
            log.info("%s %s", self.address_string(), format % args)

    return Handler


class _Server(ThreadingHTTPServer):
    """A thread per connection, WORKERS at most: the next one is accepted when a worker
    is free, and waits in the listen queue (BACKLOG) until then."""

    daemon_threads = True  # a stuck browser connection never blocks shutdown
    request_queue_size = BACKLOG

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._free = threading.Condition()
        self._active = 0
        self._waiting = 0
        super().__init__(*args, **kwargs)

    def waiting(self) -> bool:
        """Whether an accepted connection waits for a worker."""
        return self._waiting > 0

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._free:
            self._waiting += 1
            while self._active >= WORKERS:
                self._free.wait()
            self._waiting -= 1
            self._active += 1
        try:
            worker = threading.Thread(
                target=self.process_request_thread,
                args=(request, client_address),
                name="cnnx-serve-worker",
                daemon=True,
            )
            worker.start()
        except BaseException:
            self._release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release()

    def _release(self) -> None:
        with self._free:
            self._active -= 1
            self._free.notify()


class DemoServer(Closing):
    """A running (or ready to run) web demo server. Use as a context manager."""

    def __init__(self, httpd: ThreadingHTTPServer, site: Site) -> None:
        self._httpd = httpd
        self.site = site
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def serve_forever(self) -> None:
        self._httpd.serve_forever(poll_interval=0.05)

    def start(self) -> DemoServer:
        """Serve from a background thread (for tests, the browser runtime and bench)."""
        self._thread = threading.Thread(target=self.serve_forever, name="cnnx-serve", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()


def make_server(artifacts_dir: Path, host: str = "127.0.0.1", port: int = 8000) -> DemoServer:
    """Bind a web demo server for one artifacts folder (port 0 picks a free port).

    Raises PathError / ArtifactError for an unusable folder, RuntimeUnavailable when
    TF.js is not installed, ResourceError when the port is taken, UsageError for a bad
    host or port.
    """
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, got {port}")
    artifacts_dir = Path(artifacts_dir)
    web_artifact_paths(artifacts_dir)  # fail now, not on the first request
    page_dir = web_demo_dir()
    site = Site(page_dir=page_dir, vendor=vendor_files(page_dir), artifacts_dir=artifacts_dir)
    server_class: type[_Server] = _Server
    if ":" in host:
        server_class = type("_Server6", (_Server,), {"address_family": socket.AF_INET6})
    try:
        httpd = server_class((host, port), _handler_for(site))
    except socket.gaierror:
        raise UsageError(f"--host {host!r} is not an address of this machine") from None
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise ResourceError(
                f"port {port} on {host} is already in use",
                "stop the other server, choose another --port, or use --port 0 for a free one",
            ) from None
        if error.errno == errno.EACCES:
            raise ResourceError(
                f"not allowed to listen on port {port}", "use a port above 1023"
            ) from None
        if error.errno == errno.EADDRNOTAVAIL:
            raise UsageError(f"--host {host!r} is not an address of this machine") from None
        raise ResourceError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    return DemoServer(httpd, site)
