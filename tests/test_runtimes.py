"""Runtime adapters on real runtimes: TensorFlow, LiteRT and TF.js in Node.

The artifacts are a tiny seeded CNN converted here (SavedModel, TFLite float32 and
int8 with uint8 I/O, TF.js float32) with a hand-written manifest, so these tests do not
depend on the exporters.
"""

from __future__ import annotations

import os
import re
import stat
import time
from pathlib import Path

import numpy as np
import pytest

from tests.factories import random_pictures, tiny_cnn
from toolkit.data.inputspec import InputSpec
from toolkit.errors import ArtifactError, RuntimeUnavailable, UsageError
from toolkit.manifest import ArtifactEntry, Manifest, describe_files, load_manifest
from toolkit.runtimes import RUNTIMES, RuntimeSkipped, load, parse_runtimes, runtimes_for

# Every test here loads artifacts converted by the module fixture.
pytestmark = pytest.mark.slow

SIZE = 16
CLASSES = 5


def build_tiny_artifacts(root: Path) -> Manifest:
    """A tiny CNN in every format the adapters run, plus its manifest."""
    import keras
    import tensorflow as tf

    model = tiny_cnn(SIZE, CLASSES)

    def save(batch: int | None, path: Path) -> None:
        # The pivot's fixed signature: serving_default, image -> probabilities.
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(
            "serving_default",
            lambda image: {"probabilities": model(image)},
            input_signature=[tf.TensorSpec([batch, SIZE, SIZE, 3], tf.float32, name="image")],
        )
        archive.write_out(str(path), verbose=False)

    save(None, root / "saved_model")

    # Edge artifacts have a static batch of 1: convert from a batch-1 SavedModel.
    static_dir = root.parent / f"{root.name}-static"
    save(1, static_dir)
    (root / "tflite").mkdir()
    converter = tf.lite.TFLiteConverter.from_saved_model(str(static_dir))
    (root / "tflite" / "model_float32.tflite").write_bytes(converter.convert())
    calibration = random_pictures(32, SIZE, seed=1)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(static_dir))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([row[None]] for row in calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    converter.inference_output_type = tf.uint8
    (root / "tflite" / "model_int8.tflite").write_bytes(converter.convert())

    # tensorflowjs imports TF-DF, whose welcome banner needs IPython under pytest.
    os.environ.setdefault("TFDF_DISABLE_WELCOME_MESSAGE", "1")
    import tensorflowjs as tfjs

    tfjs.converters.convert_tf_saved_model(
        str(root / "saved_model"), str(root / "tfjs" / "float32")
    )

    def entry(artifact_id: str, fmt: str, precision: str, runtime: str, path: str) -> ArtifactEntry:
        return ArtifactEntry(
            id=artifact_id,
            format=fmt,
            precision=precision,
            runtime=runtime,
            path=path,
            files=describe_files(root, path),
            inputs=[],
            outputs=[],
        )

    manifest = Manifest(
        root=root,
        input=InputSpec(SIZE, SIZE, 3),
        labels=[f"class{i}" for i in range(CLASSES)],
        artifacts={
            e.id: e
            for e in (
                entry("savedmodel", "savedmodel", "float32", "tf", "saved_model"),
                entry(
                    "tflite_float32", "tflite", "float32", "litert", "tflite/model_float32.tflite"
                ),
                entry("tflite_int8", "tflite", "int8", "litert", "tflite/model_int8.tflite"),
                entry("tfjs_float32", "tfjs", "float32", "tfjs", "tfjs/float32"),
            )
        },
    )
    manifest.save()
    return load_manifest(root)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    return build_tiny_artifacts(tmp_path_factory.mktemp("tiny-artifacts"))


@pytest.fixture(scope="module")
def reference(tiny: Manifest) -> tuple[np.ndarray, np.ndarray]:
    batch = random_pictures(12, SIZE, seed=7)
    with load("tf", tiny, tiny.artifact("savedmodel")) as model:
        return batch, model.predict(batch)


def test_registry_names_and_formats(tiny: Manifest) -> None:
    assert set(RUNTIMES) == {
        "tf",
        "litert",
        "litert-gpu",
        "tfjs-node",
        "browser",
        "litertjs",
        "litertjs-node",
        "onnxruntime",
        "onnxruntime-web",
    }
    assert runtimes_for(tiny.artifact("tflite_int8")) == [
        "litert",
        "litert-gpu",
        "litertjs",
        "litertjs-node",
    ]
    assert runtimes_for(tiny.artifact("tfjs_float32")) == ["tfjs-node", "browser"]
    assert parse_runtimes("tf, litert,tf") == ("tf", "litert")
    with pytest.raises(UsageError, match="unknown runtime 'onnx'"):
        parse_runtimes("tf,onnx")
    with pytest.raises(ArtifactError, match="cannot run artifact 'savedmodel'"):
        load("litert", tiny, tiny.artifact("savedmodel"))


def test_tf_reference_is_probabilities(
    tiny: Manifest, reference: tuple[np.ndarray, np.ndarray]
) -> None:
    _, probs = reference
    assert probs.shape == (12, CLASSES) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert len(set(probs.argmax(axis=1))) > 1  # a constant model would hide disagreement


def test_tf_gpu_without_gpu_is_skipped(tiny: Manifest) -> None:
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is present: the no-GPU path cannot be shown here")
    with pytest.raises(RuntimeSkipped, match="no GPU"):
        load("tf", tiny, tiny.artifact("savedmodel"), device="gpu")


@pytest.mark.parametrize("threads", [1, 2])
def test_litert_float32_matches_tf(
    tiny: Manifest, reference: tuple[np.ndarray, np.ndarray], threads: int
) -> None:
    batch, probs = reference
    with load("litert", tiny, tiny.artifact("tflite_float32"), threads=threads) as model:
        assert model.info.max_batch == 1 and model.info.threads == threads
        out = model.predict(batch)
    assert out.shape == probs.shape and out.dtype == np.float32
    assert np.abs(out - probs).max() < 1e-5


def test_litert_uint8_io_is_quantized_and_dequantized(
    tiny: Manifest, reference: tuple[np.ndarray, np.ndarray]
) -> None:
    batch, probs = reference
    with load("litert", tiny, tiny.artifact("tflite_int8")) as model:
        assert model.info.details["input_dtype"] == "uint8"
        out = model.predict(batch)
    assert out.dtype == np.float32
    # Dequantized with the output's own scale: probabilities again, near the reference.
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=0.05)
    assert np.abs(out - probs).max() < 0.1
    assert (out.argmax(1) == probs.argmax(1)).mean() >= 0.75


def test_litert_rejects_wrong_shape(tiny: Manifest) -> None:
    with (
        load("litert", tiny, tiny.artifact("tflite_float32")) as model,
        pytest.raises(
            UsageError, match=r"takes float32 \[N, 16, 16, 3\], got shape \[2, 8, 8, 3\]"
        ),
    ):
        model.predict(np.zeros((2, 8, 8, 3), np.float32))


def test_hash_mismatch_is_refused_before_loading(tiny: Manifest, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny.root, copy)
    (copy / "tflite" / "model_float32.tflite").write_bytes(b"not a model")
    manifest = load_manifest(copy)
    with pytest.raises(ArtifactError, match="does not match its sha256"):
        load("litert", manifest, manifest.artifact("tflite_float32"))


@pytest.mark.node
@pytest.mark.parametrize("backend", ["wasm", "cpu"])
def test_tfjs_node_float32_matches_savedmodel(
    tiny: Manifest, reference: tuple[np.ndarray, np.ndarray], backend: str
) -> None:
    batch, probs = reference
    with load("tfjs-node", tiny, tiny.artifact("tfjs_float32"), backend=backend) as model:
        assert model.info.backend == backend
        out = model.predict(batch)
        assert out.shape == probs.shape
        assert np.abs(out - probs).max() < 1e-4
        timed = model.self_timed(batch[:1], runs=5)
        assert timed is not None and timed.runs == 5 and all(s > 0 for s in timed.samples)
        assert len(timed.pre) == len(timed.post) == len(timed.samples)
        memory = model.memory()
        assert memory is not None and memory.bytes > 10_000_000 and "node" in memory.source
        # The process stays up between calls: a second predict gives the same answer.
        np.testing.assert_array_equal(model.predict(batch), out)


TIMED_LOOP_SCRIPT = """
import { timeStages } from './timed_loop.js';
// A clock that moves only when the stages spend time (and 0.001 per read), read in steps
// of `step` as a page's coarse clock: what timeStages reports is then known.
const [step, runs] = process.argv.slice(1).map(Number);
let t = 0;
const now = () => { t += 0.001; return Math.floor(t / step) * step; };
let made = 0;
const live = new Set();
const make = () => { const id = made++; live.add(id); return id; };
const stages = {
  prepare: () => { t += 1000; return make(); },    // handing over: 1000 per call
  run: async () => { t += 10; return make(); },    // the engine's run: 10
  finish: (y) => { if (!live.has(y)) throw new Error('read a disposed output'); t += 100; },
  dispose: (x) => { if (!live.delete(x)) throw new Error(`disposed ${x} twice`); },
};
const answer = await timeStages(stages, runs, now);
console.log(JSON.stringify({ ...answer, made, live: live.size }));
"""


@pytest.mark.node
@pytest.mark.parametrize("step", [0.0001, 5.0])
def test_the_timed_loop_times_the_run_alone(step: float) -> None:
    """web_demo/timed_loop.js (the page's and Node runners' timed loop) on a simulated
    clock: each sample is the run's cost alone, handing over and reading back are timed
    apart, a coarse clock gets blocks long enough for its step, nothing is left undisposed."""
    import json
    import subprocess

    web_demo = Path(__file__).resolve().parents[1] / "web_demo"
    out = subprocess.run(
        ["node", "--input-type=module", "-e", TIMED_LOOP_SCRIPT, "--", str(step), "300"],
        cwd=web_demo, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    answer = json.loads(out.stdout)
    assert answer["live"] == 0 and answer["made"] > answer["runs"] >= 300
    assert answer["timer_step_ms"] == pytest.approx(max(step, 0.001), rel=0.2)
    # The step is at most 1% of a block: one run when it is fine, blocks when coarse.
    assert answer["block"] == 1 if step < 0.01 else answer["block"] >= 40
    samples, pre, post = answer["samples_ms"], answer["pre_ms"], answer["post_ms"]
    assert len(samples) == len(pre) == len(post) == answer["runs"] / answer["block"]
    assert all(ms == pytest.approx(10, rel=0.02) for ms in samples)  # the run, and no 1000
    assert all(ms == pytest.approx(1000, rel=0.02) for ms in pre)
    assert all(ms == pytest.approx(100, rel=0.02) for ms in post)


def _raises_line(
    error: type[Exception], pattern: str, call: object, *args: object, **kw: object
) -> None:
    """`call` raises `error` whose one-line message (with its hint) matches `pattern`."""
    with pytest.raises(error) as caught:
        call(*args, **kw)  # type: ignore[operator]
    assert re.search(pattern, caught.value.one_line()), caught.value.one_line()  # type: ignore[attr-defined]


def _fake_node(tmp_path: Path, body: str) -> str:
    script = tmp_path / "fake-node"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


@pytest.mark.node
def test_tfjs_node_crash_is_runtime_unavailable(
    tiny: Manifest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CNNX_NODE", _fake_node(tmp_path, "echo 'boom: out of memory' >&2; exit 3"))
    _raises_line(
        RuntimeUnavailable,
        r"exited during load \(exit code 3\).*boom: out of memory",
        load,
        "tfjs-node",
        tiny,
        tiny.artifact("tfjs_float32"),
    )


def test_tfjs_node_exit_before_the_request_reads_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A runner gone before the request is written fails on the write (a broken pipe), not
    the read; under load either can come first, so both must give the same line."""
    from toolkit.runtimes.tfjs_node import NodeRunner

    monkeypatch.setenv("CNNX_NODE", _fake_node(tmp_path, "echo 'boom: out of memory' >&2; exit 3"))
    runner = NodeRunner("tiny on tfjs-node/wasm", dict(os.environ))
    assert runner._process is not None
    runner._process.wait(timeout=30)  # the write below now meets a closed pipe
    _raises_line(
        RuntimeUnavailable,
        r"exited during load \(exit code 3\).*boom: out of memory",
        runner.call,
        {"cmd": "load"},
        b"x" * (1 << 20),
        timeout=10,
    )


@pytest.mark.node
def test_tfjs_node_hang_hits_the_time_limit(
    tiny: Manifest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import toolkit.runtimes.tfjs_node as tfjs_node

    monkeypatch.setenv("CNNX_NODE", _fake_node(tmp_path, "exec sleep 30"))
    monkeypatch.setattr(tfjs_node, "LOAD_TIMEOUT", 0.5)
    start = time.monotonic()
    with pytest.raises(RuntimeUnavailable, match=r"did not answer load within 0.5 s"):
        load("tfjs-node", tiny, tiny.artifact("tfjs_float32"), timeout=0.5)
    assert time.monotonic() - start < 10


def test_tfjs_node_missing_node_says_how_to_fix(
    tiny: Manifest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CNNX_NODE", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    _raises_line(
        RuntimeUnavailable,
        r"node is not installed.*apt-get install nodejs",
        load,
        "tfjs-node",
        tiny,
        tiny.artifact("tfjs_float32"),
    )
    monkeypatch.setenv("CNNX_NODE", str(tmp_path / "nowhere"))
    with pytest.raises(RuntimeUnavailable, match=r"CNNX_NODE=.* is not an executable"):
        load("tfjs-node", tiny, tiny.artifact("tfjs_float32"))


def test_tfjs_node_missing_packages(
    tiny: Manifest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CNNX_NODE_MODULES", str(tmp_path))
    _raises_line(
        RuntimeUnavailable,
        r"@tensorflow/tfjs is not installed.*make npm",
        load,
        "tfjs-node",
        tiny,
        tiny.artifact("tfjs_float32"),
    )


def test_unknown_backend_and_device(tiny: Manifest) -> None:
    with pytest.raises(UsageError, match="no backend 'webgl'"):
        load("tfjs-node", tiny, tiny.artifact("tfjs_float32"), backend="webgl")
    with pytest.raises(UsageError, match="unknown device 'tpu'"):
        load("tf", tiny, tiny.artifact("savedmodel"), device="tpu")


@pytest.mark.node
def test_no_stray_node_processes_after_close(tiny: Manifest) -> None:
    model = load("tfjs-node", tiny, tiny.artifact("tfjs_float32"))
    pid = model.info.details["node_pid"]
    model.close()
    model.close()  # harmless twice
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
