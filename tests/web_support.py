"""What the web demo, server and browser tests share: one Chromium per module, the demo
server on the session's artifacts, the reference answers, and a tiny artifacts folder.

The fixtures are a pytest plugin: a test module that uses them says
`pytest_plugins = ["tests.web_support"]`. Chromium is Debian's, with the browser
runtime's flags; a missing one fails the test that asks for it (never a skip). The test
modules import this one before pytest registers it, too late for pytest to rewrite its
asserts; it has none, and says so: PYTEST_DONT_REWRITE.

The tiny artifacts folder is what `cnnx export` writes, in miniature: a seeded 4-class
CNN on 16x16 RGB images (trained for a few epochs so its answers are confident and
runtimes cannot disagree on near-ties), its SavedModel, a TF.js graph model, a float32
TFLite file, labelled sample PNGs and a manifest. It takes a few seconds and is built
once per test run (tests/once.py), shared by the pytest-xdist workers, for the tests that
package or serve a folder of their own.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import threading
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.corpus.artifacts import write_samples
from tests.once import built_once
from toolkit.data.inputspec import InputSpec
from toolkit.manifest import ArtifactEntry, Manifest, describe_files, load_manifest

LABELS = ["red", "green", "blue", "gray"]
SIZE = 16


def _images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noisy images whose class is their dominant colour."""
    rng = np.random.default_rng(seed)
    bases = np.array([[200, 40, 40], [40, 190, 60], [50, 60, 210], [128, 128, 128]], np.float32)
    labels = rng.integers(0, len(LABELS), size=count)
    noise = rng.normal(0.0, 30.0, size=(count, SIZE, SIZE, 3))
    pixels = np.clip(bases[labels][:, None, None, :] + noise, 0, 255).astype(np.uint8)
    return pixels, labels.astype(np.int64)


def build_tiny_artifacts(root: Path, samples: int = 12) -> Path:
    """Write a tiny artifacts folder (savedmodel, tflite_float32, tfjs_float32) at root."""
    from toolkit.core.quiet import silence_tensorflow

    silence_tensorflow()
    # TF Decision Forests (pulled in by the converter) prints a banner at import and,
    # with pytest capturing stdout, tries to render it with IPython.
    os.environ.setdefault("TFDF_DISABLE_WELCOME_MESSAGE", "1")
    import keras
    import tensorflow as tf
    from tensorflowjs.converters import convert_tf_saved_model

    keras.utils.set_random_seed(7)
    root.mkdir(parents=True, exist_ok=True)
    x, y = _images(400, seed=1)
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    h = keras.layers.Rescaling(1.0 / 255)(inputs)
    h = keras.layers.Conv2D(4, 3, activation="relu")(h)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Flatten()(h)
    outputs = keras.layers.Dense(len(LABELS), activation="softmax", name="probabilities")(h)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(x.astype(np.float32), y, epochs=4, batch_size=32, verbose=0)

    saved = root / "saved_model"
    model.export(str(saved), verbose=False)
    convert_tf_saved_model(str(saved), str(root / "tfjs" / "float32"))
    # A static batch of 1, as cnnx export writes edge models (LiteRT.js needs it too).
    loaded = tf.saved_model.load(str(saved))
    serve = loaded.signatures["serving_default"]
    batch_of_one = tf.function(
        lambda image: serve(image=image), input_signature=[tf.TensorSpec([1, SIZE, SIZE, 3])]
    )
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [batch_of_one.get_concrete_function()], loaded
    )
    (root / "tflite").mkdir(exist_ok=True)
    (root / "tflite" / "model_float32.tflite").write_bytes(converter.convert())

    px, py = _images(samples, seed=99)
    write_samples(root / "samples", px, py, LABELS)

    tensor = [{"name": "image", "shape": [-1, SIZE, SIZE, 3], "dtype": "float32"}]
    probs = [{"name": "probabilities", "shape": [-1, len(LABELS)], "dtype": "float32"}]
    tolerance = {"max_abs": 1e-4, "top1_agreement": 1.0}

    def entry(artifact_id: str, fmt: str, runtime: str, path: str) -> ArtifactEntry:
        return artifact_entry(
            root, artifact_id, fmt, runtime, path, inputs=tensor, outputs=probs, tolerance=tolerance
        )

    manifest = Manifest(
        root=root,
        input=InputSpec(height=SIZE, width=SIZE, channels=3),
        labels=list(LABELS),
        artifacts={
            "savedmodel": entry("savedmodel", "savedmodel", "tf", "saved_model"),
            "tflite_float32": entry(
                "tflite_float32", "tflite", "litert", "tflite/model_float32.tflite"
            ),
            "tfjs_float32": entry("tfjs_float32", "tfjs", "tfjs", "tfjs/float32"),
        },
        command="tests/web_support.py",
    )
    manifest.save()
    return root


def artifact_entry(
    root: Path, artifact_id: str, fmt: str, runtime: str, path: str, **fields: Any
) -> ArtifactEntry:
    """A float32 manifest entry for the files at root/path (no tensors named unless given)."""
    return ArtifactEntry(
        **{"inputs": [], "outputs": [], **fields},
        id=artifact_id,
        format=fmt,
        precision="float32",
        runtime=runtime,
        path=path,
        files=describe_files(root, path),
    )


def sample_pixels(root: Path) -> tuple[list[str], np.ndarray]:
    """The sample files (as named in samples.json) and their raw uint8 NHWC pixels."""
    data = json.loads((root / "samples" / "samples.json").read_text())
    records = data["samples"] if isinstance(data, dict) else data
    files = [str(r["file"]) for r in records]
    pixels = np.stack([np.asarray(Image.open(root / "samples" / f).convert("RGB")) for f in files])
    return files, pixels


def tiny_artifacts_dir(factory: pytest.TempPathFactory) -> Path:
    """The tiny artifacts folder, built once per test run and shared by the workers
    (read-only: copy it before changing anything)."""
    return built_once(factory, "web-artifacts", build_tiny_artifacts)


def per_image_ms(row: dict[str, Any]) -> float:
    """A report row's cost per image as the browser recommendation ranks it: the run's p50
    plus handing the input over and reading the output back (toolkit/bench/recommend.py)."""
    return float(row["latency"]["p50"] + (row["pre_ms"] or 0) + (row["post_ms"] or 0))


@contextlib.contextmanager
def plain_static_host(folder: Path) -> Iterator[str]:
    """`folder` on Python's plain static server: no cnnx code, no special headers."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


# --- Chromium and the demo page ----------------------------------------------------------


def launch_chromium(playwright: Any, *extra: str) -> Any:
    """Debian's Chromium with the flags the browser runtime uses (plus `extra`)."""
    from toolkit.runtimes.browser import CHROMIUM_FLAGS, chromium_binary

    return playwright.chromium.launch(
        executable_path=chromium_binary(), args=[*CHROMIUM_FLAGS, *extra], timeout=60_000
    )


class PageLog:
    """Console errors and uncaught exceptions of a page: a clean page has none."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))


def open_page(browser: Any, url: str, init_script: str | None = None) -> tuple[Any, PageLog]:
    """A new page of `browser` at `url`, once the demo says it is ready, and its log."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    log = PageLog(page)
    if init_script:
        page.add_init_script(init_script)
    page.goto(url)
    page.evaluate("window.cnnx.ready")
    return page, log


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One headless Chromium for the module's pages; its fake camera stands in for a
    webcam. A page per test keeps the tests apart; the browser start is paid once."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(
            playwright, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"
        )
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def demo_server(artifacts: Path) -> Iterator[Any]:
    """`cnnx serve`'s server (COOP/COEP) on the session's artifacts, for the module."""
    from toolkit.web.server import make_server

    with make_server(artifacts, port=0) as running:
        yield running.start()


@pytest.fixture(scope="module")
def runtime_chromium() -> Iterator[None]:
    """The browser runtimes share one Chromium per process (toolkit/runtimes/chromium.py):
    a module that loads them closes it when done, so it does not outlive its tests."""
    from toolkit.runtimes import browser

    yield
    browser.shutdown()


def load_in_page(runtime: str, manifest: Manifest, artifact: str, backend: str) -> Any:
    """`artifact` loaded in an in-page runtime (browser, litertjs, onnxruntime-web) on
    `backend`. A Chromium with no WebGPU adapter makes bench's row a skipped one, said and
    never run on another backend; the test is skipped with that reason."""
    from toolkit.runtimes import RuntimeSkipped, load

    try:
        return load(runtime, manifest, manifest.artifact(artifact), backend=backend)
    except RuntimeSkipped as skipped:
        pytest.skip(skipped.one_line())


# --- what every runtime must answer on the samples -----------------------------------------

References = Callable[[str], np.ndarray]
REFERENCE_RUNTIME = {"savedmodel": "tf", "tflite": "litert", "onnx": "onnxruntime"}


@pytest.fixture(scope="session")
def manifest(artifacts: Path) -> Manifest:
    """The session artifacts' manifest (tests/conftest.py `artifacts`)."""
    return load_manifest(artifacts)


@pytest.fixture(scope="session")
def batch(manifest: Manifest) -> np.ndarray:
    """The session's sample pictures, preprocessed by the manifest's spec (what bench feeds)."""
    return manifest.input.apply(sample_pixels(manifest.root)[1])


@pytest.fixture(scope="session")
def references(manifest: Manifest, batch: np.ndarray) -> References:
    """An artifact's probabilities on `batch` in its native runtime (TensorFlow for
    the SavedModel, LiteRT for .tflite, ONNX Runtime for .onnx), each run once per session."""
    from toolkit.runtimes import load

    @functools.cache
    def reference(artifact: str) -> np.ndarray:
        entry = manifest.artifact(artifact)
        with load(REFERENCE_RUNTIME[entry.format], manifest, entry) as model:
            probs = model.predict(batch)
        probs.setflags(write=False)  # shared by every test that asks
        return probs

    return reference
