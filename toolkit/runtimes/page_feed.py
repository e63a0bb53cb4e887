"""Batches for a page in headless Chromium, over plain HTTP on 127.0.0.1.

A batch of 224x224 pictures is tens of megabytes. Handed to `page.evaluate` as a base64
string, or to a Playwright route, it crosses Playwright's driver and the DevTools
protocol as JSON text: about half a second a picture on a busy 2-core machine, far more
than the model. Here the page fetches the raw float32 bytes instead, as it fetches the
model's weights: `offer(bytes)` gives a one-time URL that answers once and forgets the
bytes. The server listens on the loopback only, at a random port, under unguessable
paths, and lives as long as the page that reads it.
"""

from __future__ import annotations

import secrets
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from toolkit.core.closing import Closing


class _Handler(BaseHTTPRequestHandler):
    server: _FeedServer

    def do_GET(self) -> None:
        body = self.server.take(self.path)
        if body is None:
            self.send_response(HTTPStatus.NOT_FOUND)
            self._cross_origin()
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(HTTPStatus.OK)
        self._cross_origin()
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _cross_origin(self) -> None:
        # The page's origin is the demo server's port, not this one; the page is
        # cross-origin isolated (COEP require-corp), which a CORS answer satisfies.
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Cross-Origin-Resource-Policy", "cross-origin")

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the library never prints."""


class _FeedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self._lock = threading.Lock()
        self._bodies: dict[str, bytes] = {}

    def offer(self, body: bytes) -> str:
        path = f"/{secrets.token_urlsafe(18)}"
        with self._lock:
            self._bodies[path] = body
        return path

    def take(self, path: str) -> bytes | None:
        with self._lock:
            return self._bodies.pop(path, None)

    def forget(self, path: str) -> None:
        self.take(path)


class PageFeed(Closing):
    """One-time URLs for raw bytes, served from a thread of this process."""

    def __init__(self) -> None:
        self._closed = False
        self._server = _FeedServer()
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="cnnx-page-feed", daemon=True
        )
        self._thread.start()

    def offer(self, body: bytes) -> str:
        """A URL that answers `body` once."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{self._server.offer(body)}"

    def forget(self, url: str) -> None:
        """Drop a body the page never fetched (its call failed or timed out)."""
        self._server.forget("/" + url.rsplit("/", 1)[-1])

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
