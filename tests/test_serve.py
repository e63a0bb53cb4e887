"""The web demo server over real sockets: what it serves, with which headers, and what
it refuses (traversal in every encoding, symlinks out, files outside the allow-list).

The artifacts folder here is hand-written (a manifest naming fake files): the server
never parses a model, so these tests need no TensorFlow and run in a few seconds.
"""

from __future__ import annotations

import http.client
import re
import selectors
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.web_support import artifact_entry
from toolkit.data.inputspec import InputSpec
from toolkit.errors import ArtifactError, ResourceError, UsageError
from toolkit.manifest import Manifest
from toolkit.web.server import WORKERS, DemoServer, Refused, make_server, request_segments

SECRET = "top secret, never served"


def write_fake_artifacts(root: Path, *, tfjs: bool = True, tflite: bool = True) -> Path:
    (root / "tfjs" / "float32").mkdir(parents=True)
    (root / "tflite").mkdir()
    (root / "tflite" / "model_float32.tflite").write_bytes(b"\0\0\0\0TFL3 fake")
    (root / "tfjs" / "float32" / "model.json").write_text('{"format": "graph-model"}')
    (root / "tfjs" / "float32" / "group1-shard1of1.bin").write_bytes(b"\0" * 64)
    (root / "saved_model").mkdir()
    (root / "saved_model" / "saved_model.pb").write_bytes(b"not for the web")
    (root / "samples").mkdir()
    (root / "samples" / "samples.json").write_text('{"samples": []}')
    (root / "samples" / "000_a.png").write_bytes(b"\x89PNG fake")
    entries = {
        "savedmodel": ("savedmodel", "tf", "saved_model"),
    }
    if tfjs:
        entries["tfjs_float32"] = ("tfjs", "tfjs", "tfjs/float32")
    if tflite:
        entries["tflite_float32"] = ("tflite", "litert", "tflite/model_float32.tflite")
    manifest = Manifest(
        root=root,
        input=InputSpec(height=8, width=8, channels=3),
        labels=["a", "b"],
        artifacts={
            key: artifact_entry(root, key, fmt, runtime, path)
            for key, (fmt, runtime, path) in entries.items()
        },
    )
    manifest.save()
    return root


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An artifacts folder, with a secret beside it and a symlink pointing at it."""
    tmp_path = tmp_path_factory.mktemp("serve")
    (tmp_path / "secret.txt").write_text(SECRET)
    root = write_fake_artifacts(tmp_path / "artifacts")
    (root / "samples" / "escape.txt").symlink_to(tmp_path / "secret.txt")
    (root / "samples" / "escape_dir").symlink_to(tmp_path)
    (root / "tfjs" / "float32" / "escape.json").symlink_to(tmp_path / "secret.txt")
    (root / "private.txt").write_text(SECRET)  # in the folder, named by no artifact
    return root


@pytest.fixture(scope="module")
def server(site: Path) -> Iterator[DemoServer]:
    with make_server(site, port=0) as running:
        running.start()
        yield running


def get(server: DemoServer, target: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """A raw request: http.client sends the target exactly as written (no normalising)."""
    connection = http.client.HTTPConnection(server.host, server.port, timeout=5)
    try:
        connection.putrequest(method, target, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_serves_the_page_vendor_files_and_web_artifacts(server: DemoServer) -> None:
    status, headers, body = get(server, "/")
    assert status == 200 and b'src="app.js"' in body
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    expected = {
        "/app.js": "text/javascript; charset=utf-8",
        "/style.css": "text/css; charset=utf-8",
        "/vendor/tf.min.js": "text/javascript; charset=utf-8",
        "/vendor/tfjs-backend-wasm-simd.wasm": "application/wasm",
        "/vendor/tfjs-backend-wasm-threaded-simd.wasm": "application/wasm",
        "/vendor/tf-backend-webgpu.min.js": "text/javascript; charset=utf-8",
        "/engine_litertjs.js": "text/javascript; charset=utf-8",
        "/tflite.js": "text/javascript; charset=utf-8",
        "/vendor/litertjs/index.js": "text/javascript; charset=utf-8",
        "/vendor/litertjs/wasm-utils.js": "text/javascript; charset=utf-8",
        "/vendor/litertjs/litert_wasm_threaded_internal.js": "text/javascript; charset=utf-8",
        "/vendor/litertjs/litert_wasm_internal.wasm": "application/wasm",
        "/vendor/litertjs/litert_wasm_compat_internal.wasm": "application/wasm",
        "/vendor/litertjs/litert_wasm_jspi_internal.wasm": "application/wasm",
        "/artifacts/tflite/model_float32.tflite": "application/octet-stream",
        "/artifacts/manifest.json": "application/json",
        "/artifacts/tfjs/float32/model.json": "application/json",
        "/artifacts/tfjs/float32/group1-shard1of1.bin": "application/octet-stream",
        "/artifacts/samples/000_a.png": "image/png",
    }
    for target, mime in expected.items():
        status, headers, body = get(server, target)
        assert (status, headers["Content-Type"]) == (200, mime), target
        assert int(headers["Content-Length"]) == len(body) > 0, target


def test_every_response_is_cross_origin_isolated(server: DemoServer) -> None:
    for target in ("/", "/vendor/tf-backend-wasm.min.js", "/nope"):
        _, headers, _ = get(server, target)
        assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
        assert headers["Cross-Origin-Embedder-Policy"] == "require-corp"
        assert headers["X-Content-Type-Options"] == "nosniff"


def test_head_sends_headers_without_a_body(server: DemoServer) -> None:
    status, headers, body = get(server, "/app.js", method="HEAD")
    assert status == 200 and int(headers["Content-Length"]) > 1000 and body == b""


@pytest.mark.parametrize(
    "target",
    [
        "/../secret.txt",
        "/artifacts/../secret.txt",
        "/artifacts/../../secret.txt",
        "/..%2fsecret.txt",
        "/artifacts/..%2f..%2fsecret.txt",
        "/artifacts/%2e%2e/secret.txt",
        "/artifacts/%2E%2E%2Fsecret.txt",
        "/artifacts/samples/%2e%2e/%2e%2e/secret.txt",
        "/artifacts%2f..%2fsecret.txt",
        "/artifacts/samples/..%5c..%5csecret.txt",
        "/artifacts/samples/%00/../../secret.txt",
        "//etc/passwd",
        "/artifacts//etc/passwd",
        "/vendor/../../secret.txt",
        "/vendor/litertjs/../../secret.txt",
        "/vendor/litertjs/%2e%2e/%2e%2e/secret.txt",
        "/./index.html/../../secret.txt",
        "/artifacts/samples/escape.txt",
        "/artifacts/samples/escape_dir/secret.txt",
        "/artifacts/samples/%252e%252e/%252e%252e/secret.txt",
        "http://evil.example/../secret.txt",
        "/%ff%fe",
        "secret.txt",
        "/artifacts/..\\secret.txt",
        "/artifacts/%c0%ae%c0%ae/secret.txt",  # an overlong UTF-8 dot
        "/artifacts/tfjs/float32/../../../secret.txt",
        "/artifacts/tfjs/float32/escape.json",
        "/artifacts/tfjs/float32/model.json%00.png",
        "/artifacts/private.txt",
        "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/vendor/%2e%2e%2f%2e%2e%2fpackage.json",
        "/vendor/../../../../etc/passwd",
        "/etc/passwd",
    ],
)
def test_refuses_paths_outside_the_site(server: DemoServer, target: str) -> None:
    status, _, body = get(server, target)
    assert status in (400, 403, 404), target
    assert SECRET.encode() not in body and b"root:" not in body


@pytest.mark.parametrize(
    "target",
    [
        "/artifacts/saved_model/saved_model.pb",  # in the folder, but not for the web
        "/artifacts/samples",  # a folder: no listings
        "/artifacts/",
        "/vendor/tf.min.js.map",  # only the dist files the page loads
        "/vendor/package.json",
        "/vendor/litertjs/package.json",  # only the dist and wasm files the page loads
        "/vendor/litertjs/index.js.map",
        "/vendor/litertjs",
        "/vendor/litertjs/",
        "/node_modules/@tensorflow/tfjs/package.json",
        "/index.html/",
        "/README.md",
    ],
)
def test_serves_nothing_outside_the_allow_list(server: DemoServer, target: str) -> None:
    status, _, _ = get(server, target)
    assert status in (403, 404), target


BURST = 200  # requests at once: a page's assets in a few tabs
BURST_LIMIT_S = 30.0  # for the whole burst; a lost connection waits a minute or more
BURST_TARGETS = {
    "/": "index.html",
    "/app.js": "app.js",
    "/vendor/tf.min.js": "tf.min.js",
    "/vendor/tfjs-backend-wasm.wasm": "tfjs-backend-wasm.wasm",
    "/artifacts/manifest.json": "manifest.json",
    "/artifacts/tfjs/float32/group1-shard1of1.bin": "group1-shard1of1.bin",
}


def burst(host: str, port: int, targets: list[str], limit: float) -> list[bytes]:
    """Open one connection per target at once (non-blocking connects from one loop, so
    they arrive together however loaded the machine is), send each its GET, and read
    every answer to its end; a connection still open after `limit` seconds fails."""
    selector = selectors.DefaultSelector()
    answers = [b""] * len(targets)
    sockets = [socket.socket() for _ in targets]
    for sock in sockets:
        sock.setblocking(False)
    for sock in sockets:  # nothing else in this loop: the connections come all at once
        sock.connect_ex((host, port))
    for index, (sock, target) in enumerate(zip(sockets, targets, strict=True)):
        request = f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        selector.register(sock, selectors.EVENT_WRITE, (index, request.encode()))
    deadline = time.monotonic() + limit
    try:
        while selector.get_map() and time.monotonic() < deadline:
            for key, events in selector.select(timeout=0.5):
                connection = key.fileobj
                assert isinstance(connection, socket.socket)
                index, request = key.data
                if events & selectors.EVENT_WRITE:
                    connection.sendall(request)
                    selector.modify(connection, selectors.EVENT_READ, (index, b""))
                    continue
                chunk = connection.recv(1 << 16)
                answers[index] += chunk
                if not chunk:  # the server closed it: the answer is whole
                    selector.unregister(connection)
                    connection.close()
        unanswered = len(selector.get_map())
    finally:
        for key in list(selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        selector.close()
    assert unanswered == 0, f"{unanswered} of {len(targets)} requests unanswered after {limit} s"
    return answers


def test_a_burst_of_requests_beside_idle_connections_is_served_in_full_and_bounded(
    server: DemoServer,
) -> None:
    # Idle kept-alive connections, one per worker (tabs left open), hold every worker
    # when the burst starts: they must give way, and the burst must get through whole.
    expected = {target: server.site.resolve(target).read_bytes() for target in BURST_TARGETS}
    idle = []
    for _ in range(WORKERS):
        connection = http.client.HTTPConnection(server.host, server.port, timeout=20)
        connection.request("GET", "/app.js")
        connection.getresponse().read()
        idle.append(connection)
    busiest = 0
    watching = True

    def watch() -> None:
        nonlocal busiest
        while watching:
            working = [t for t in threading.enumerate() if t.name == "cnnx-serve-worker"]
            busiest = max(busiest, len(working))
            time.sleep(0.002)

    targets = [list(BURST_TARGETS)[i % len(BURST_TARGETS)] for i in range(BURST)]
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        answers = burst(server.host, server.port, targets, BURST_LIMIT_S)
    finally:
        watching = False
        watcher.join()
        for connection in idle:
            connection.close()
    for target, answer in zip(targets, answers, strict=True):
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), (target, head[:80])
        assert body == expected[target], target
    assert 0 < busiest <= WORKERS, f"{busiest} connections served at once"


def test_request_segments_decode_once() -> None:
    assert request_segments("/artifacts/samples/a%20b.png?x=1") == [
        "artifacts",
        "samples",
        "a b.png",
    ]
    assert request_segments("/") == []
    # A double-encoded dot-dot is a literal (missing) name, not a parent folder.
    assert request_segments("/%252e%252e/x") == ["%2e%2e", "x"]
    for bad in ("/a/%2e%2e/b", "/a//b", "/a/./b", "/a%5cb", "/a%00b"):
        with pytest.raises(Refused):
            request_segments(bad)


def test_unknown_methods_are_refused(server: DemoServer) -> None:
    status, _, _ = get(server, "/", method="POST")
    assert status == 501


def test_a_taken_port_is_a_resource_error(site: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ResourceError, match=f"port {port} on 127.0.0.1 is already in use"):
            make_server(site, port=port)


def test_cnnx_serve_prints_its_url_and_answers_on_loopback_only(site: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "toolkit", "serve", str(site), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(120, process.kill)  # a server that never says its URL
    watchdog.start()
    try:
        assert process.stdout is not None
        url = None
        for line in process.stdout:  # ends if the server stops: then the assert says why
            url = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
            if url:
                break
        assert url, process.stderr.read() if process.stderr else ""
        port = int(url.group(1))
        with urllib.request.urlopen(url.group(0) + "artifacts/manifest.json", timeout=30) as answer:
            assert answer.status == 200 and b"cnnx.manifest/1" in answer.read()
        # Not reachable on the machine's other addresses.
        others = {i[4][0] for i in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)}
        for address in sorted(others - {"127.0.0.1"}):
            with pytest.raises(OSError), socket.create_connection((address, port), timeout=3):
                pass
    finally:
        watchdog.cancel()
        process.terminate()
        process.wait(timeout=30)


def test_bad_host_and_port_are_usage_errors(site: Path) -> None:
    with pytest.raises(UsageError):
        make_server(site, port=70000)
    with pytest.raises(UsageError):
        make_server(site, host="no-such-host.invalid", port=0)


def test_a_folder_with_tflite_alone_is_served_for_litertjs(tmp_path: Path) -> None:
    root = write_fake_artifacts(tmp_path / "artifacts", tfjs=False)
    with make_server(root, port=0) as running:
        running.start()
        assert get(running, "/artifacts/tflite/model_float32.tflite")[0] == 200
        assert get(running, "/artifacts/tfjs/float32/model.json")[0] == 404  # not in the manifest


def test_a_folder_without_web_artifacts_is_refused_before_serving(tmp_path: Path) -> None:
    root = write_fake_artifacts(tmp_path / "artifacts", tfjs=False, tflite=False)
    with pytest.raises(ArtifactError, match=r"no TF\.js or TFLite or ONNX artifact") as error:
        make_server(root, port=0)
    assert "cnnx export --to tfjs" in error.value.one_line()
