"""How batches reach the JavaScript runners, and how long each request may take.

A batch travels to Node over a pipe (js/protocol.mjs, read a payload at a time into a
buffer of its announced size) and to a page as raw bytes it fetches from a one-time URL
(page_feed.py), in chunks of at most CHUNK_BYTES and MAX_ROWS rows, each under a time
limit scaled from the time per picture measured on the chunk before. The rows must come
back in order whatever the chunking, the pictures done must be reported as they go, and
a banner the engine prints on every start must not become a failure's reason. The speed at 224x224
is measured in benchmarks/tfjs_scale_bench.py, not here.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from toolkit.core.progress import Step
from toolkit.errors import RuntimeUnavailable
from toolkit.manifest import Manifest
from toolkit.runtimes import load, tfjs_shared
from toolkit.runtimes.page_feed import PageFeed

PROTOCOL = Path(__file__).resolve().parents[1] / "toolkit" / "runtimes" / "js" / "protocol.mjs"


pytest_plugins = ["tests.web_support"]


@pytest.fixture(scope="module")
def images(manifest: Manifest) -> np.ndarray:
    from toolkit.data.generated import generated_pixels

    height, width, channels = manifest.input.shape
    return manifest.input.apply(generated_pixels(height, width, channels, count=37))


@pytest.fixture(scope="module")
def reference(manifest: Manifest, images: np.ndarray) -> np.ndarray:
    """The SavedModel's answers on `images`: what every chunking must give back."""
    with load("tf", manifest, manifest.artifact("savedmodel")) as model:
        return model.predict(images)


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch, images: np.ndarray) -> int:
    """Chunks of 5 rows, so 37 pictures take a one-row probe and 8 chunks."""
    monkeypatch.setattr(tfjs_shared, "CHUNK_BYTES", images[:1].nbytes * 5)
    return 5


# --- the time limit of each chunk -------------------------------------------------


def test_each_chunk_gets_a_limit_from_the_time_per_picture(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A unit test of the loop with a fake clock: the probe is one row under the plain
    timeout; every later chunk gets timeout + SLACK x its rows x the last seconds/row."""
    rows = np.arange(12, dtype=np.float32).reshape(12, 1, 1, 1).repeat(3, 3)
    monkeypatch.setattr(tfjs_shared, "CHUNK_BYTES", rows[:1].nbytes * 5)
    clock = [0.0]
    monkeypatch.setattr(tfjs_shared.time, "monotonic", lambda: clock[0])
    calls: list[tuple[int, float]] = []
    reports: list[tuple[int, int]] = []

    def predict(part: np.ndarray, limit: float) -> np.ndarray:
        calls.append((len(part), limit))
        clock[0] += 2.0 * len(part)  # two seconds a picture: a slow model on a busy CPU
        return np.full((len(part), 3), part[:, 0, 0, 0:1], dtype=np.float32)

    out = tfjs_shared.predict_in_chunks(
        np.ascontiguousarray(rows),
        3,
        60.0,
        predict,
        lambda done, total: reports.append((done, total)),
    )
    assert [len_ for len_, _ in calls] == [1, 5, 5, 1]
    assert calls[0][1] == 60.0
    assert calls[1][1] == 60.0 + tfjs_shared.SLACK * 5 * 2.0  # 100 s: more than 60
    assert out[:, 0].tolist() == list(range(12))  # in order
    assert reports == [(1, 12), (6, 12), (11, 12), (12, 12)]


def test_no_request_carries_more_than_max_rows() -> None:
    """However small the pictures, a request carries at most MAX_ROWS of them, in order."""
    max_rows = tfjs_shared.MAX_ROWS
    rows = np.arange(2 * max_rows + 3, dtype=np.float32).reshape(-1, 1, 1, 1)
    sizes: list[int] = []

    def predict(part: np.ndarray, limit: float) -> np.ndarray:
        sizes.append(len(part))
        return part.reshape(-1, 1)

    out = tfjs_shared.predict_in_chunks(rows, 1, 60.0, predict)
    assert sizes == [1, max_rows, max_rows, 2]
    assert out[:, 0].tolist() == rows.ravel().tolist()


# --- Node: the pipe ---------------------------------------------------------------


@pytest.mark.node
def test_the_runner_reads_requests_split_anywhere(tmp_path: Path) -> None:
    """protocol.mjs's reader, in real Node, fed one stream of three requests (a payload
    of 3 MB among them) in pieces of every size from 1 byte to 1 MB."""
    script = tmp_path / "reader.mjs"
    script.write_text(
        f"import {{ requestReader }} from {json.dumps(PROTOCOL.as_uri())};\n"
        + """
const body = Buffer.alloc(3_000_001);
for (let i = 0; i < body.length; i++) body[i] = (i * 7) % 251;
const stream = Buffer.concat([
  Buffer.from(JSON.stringify({ cmd: "a", nbytes: body.length }) + "\\n"), body,
  Buffer.from('{"cmd": "b"}\\n{"cmd": "c", "nbytes": 2}\\n\\n\\n'),
]);
const seen = [];
for (const size of [1, 5, 4096, 65536, 1 << 20]) {
  const reader = requestReader();
  const got = [];
  for (let at = 0; at < stream.length; at += size) {
    reader.push(stream.subarray(at, at + size));
    for (let r; (r = reader.next()); ) got.push(r);
  }
  seen.push(got.map(([h, p]) => [h.cmd, p.length, h.cmd === "a" ? p.equals(body) : p.toString()]));
}
console.log(JSON.stringify(seen));
"""
    )
    out = subprocess.run(
        ["node", str(script)], capture_output=True, text=True, timeout=120, check=True
    )
    for got in json.loads(out.stdout):
        assert got == [["a", 3_000_001, True], ["b", 0, ""], ["c", 2, "\n\n"]]


@pytest.mark.node
@pytest.mark.slow
def test_node_predicts_chunk_by_chunk_in_order(
    manifest: Manifest, images: np.ndarray, reference: np.ndarray, small_chunks: int
) -> None:
    entry = manifest.artifact("tfjs_float32")
    reports: list[tuple[int, int]] = []
    with load("tfjs-node", manifest, entry) as model:
        chunked = model.predict_reporting(images, lambda done, total: reports.append((done, total)))
    assert reports == [(1, 37)] + [(min(37, 1 + 5 * i), 37) for i in range(1, 9)]
    np.testing.assert_allclose(chunked, reference, atol=1e-5)
    assert (chunked.argmax(1) == reference.argmax(1)).all()


def _fake_node(tmp_path: Path, body: str) -> str:
    script = tmp_path / "fake-node"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


BANNER = (
    "\n============================\nHi, looks like you are running TensorFlow.js in "
    "Node.js. To speed things up dramatically, install our node backend, visit "
    "https://github.com/tensorflow/tfjs-node for more details. \n============================"
)


@pytest.mark.node
def test_the_engine_banner_is_not_a_reason(
    manifest: Manifest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TF.js's cpu backend prints its banner at the first tensor: a runner that fails
    after it must be reported with what it said after the banner, without the banner."""
    said = tmp_path / "said.txt"
    said.write_text(BANNER + "\nRangeError: Array buffer allocation failed\n")
    monkeypatch.setenv("CNNX_NODE", _fake_node(tmp_path, f"cat '{said}' >&2; exit 3"))
    with pytest.raises(RuntimeUnavailable) as caught:
        load("tfjs-node", manifest, manifest.artifact("tfjs_float32"), backend="cpu")
    line = caught.value.one_line()
    assert "Array buffer allocation failed" in line
    assert "install our node backend" not in line and "=====" not in line


# --- Chromium: the one-time URL ---------------------------------------------------


@pytest.fixture
def feed() -> Iterator[PageFeed]:
    with PageFeed() as page_feed:
        yield page_feed


def test_a_page_feed_url_answers_once(feed: PageFeed) -> None:
    body = os.urandom(1 << 20)
    url = feed.offer(body)
    assert url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(url, timeout=30) as answer:
        assert answer.read() == body
        assert answer.headers["Access-Control-Allow-Origin"] == "*"
    with pytest.raises(urllib.error.HTTPError, match="404"):
        urllib.request.urlopen(url, timeout=30)
    forgotten = feed.offer(b"never fetched")
    feed.forget(forgotten)
    with pytest.raises(urllib.error.HTTPError, match="404"):
        urllib.request.urlopen(forgotten, timeout=30)


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.usefixtures("runtime_chromium")
def test_the_page_predicts_chunk_by_chunk_in_order(
    manifest: Manifest, images: np.ndarray, reference: np.ndarray, small_chunks: int
) -> None:
    reports: list[tuple[int, int]] = []
    with load("browser", manifest, manifest.artifact("tfjs_float32")) as model:
        chunked = model.predict_reporting(images, lambda done, total: reports.append((done, total)))
    assert reports[0] == (1, 37) and reports[-1] == (37, 37) and len(reports) == 9
    np.testing.assert_allclose(chunked, reference, atol=1e-5)


# --- verify: the pictures bar -----------------------------------------------------


@pytest.mark.node
@pytest.mark.slow
def test_verify_reports_the_pictures_of_each_row(
    artifacts: Path, small_chunks: int, images: np.ndarray
) -> None:
    from toolkit.measure.verify import VerifyConfig, verify

    steps: list[Step] = []
    config = VerifyConfig(
        artifacts_dir=artifacts, runtimes=("tfjs-node",), artifacts=("tfjs_float32",), limit=12
    )
    report = verify(config, progress=steps.append)
    assert all(row.status == "ok" for row in report.rows), report.rows
    pictures = [(s.label, s.done, s.total) for s in steps if s.task == "pictures"]
    for backend in ("wasm", "cpu"):
        label = f"tfjs_float32 on tfjs-node/{backend}"
        assert [(d, t) for name, d, t in pictures if name == label] == [
            (1, 12),
            (6, 12),
            (11, 12),
            (12, 12),
        ]
