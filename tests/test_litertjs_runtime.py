"""The `litertjs` (headless Chromium) and `litertjs-node` runtimes against LiteRT and the
SavedModel, on the session's real .tflite exports.

Every backend must give LiteRT's answers on the same preprocessed batch: float32 within
1e-4 of the SavedModel, int8 bit for bit equal to LiteRT's int8 (the quantization is
read from the .tflite by web_demo/tflite.js, checked here against the interpreter's).
Each row says its engine, backend, threads, build and isolation; a Chromium without a
WebGPU adapter gives a skipped load with the reason, never a row on another backend.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.web_support import References, load_in_page, per_image_ms
from toolkit.errors import ArtifactError, UsageError
from toolkit.manifest import Manifest
from toolkit.runtimes import RUNTIMES, RuntimeSkipped, chromium, litertjs, litertjs_node, load
from toolkit.runtimes import browser as browser_runtime

WEB_DEMO = Path(__file__).resolve().parents[1] / "web_demo"

pytest_plugins = ["tests.web_support"]
pytestmark = pytest.mark.usefixtures("runtime_chromium")


def check_outputs(artifact: str, probs: np.ndarray, references: References) -> None:
    expected = references(artifact)
    assert probs.dtype == np.float32 and probs.shape == expected.shape
    assert (probs.argmax(1) == expected.argmax(1)).all()
    if artifact == "tflite_int8":
        assert np.array_equal(probs, expected)
    else:
        assert np.abs(probs - references("savedmodel")).max() < 1e-4


def test_the_registry_names_both_runtimes() -> None:
    assert RUNTIMES["litertjs"].supported_variants == litertjs.BACKENDS
    assert RUNTIMES["litertjs-node"].supported_variants == litertjs_node.BACKENDS
    assert RUNTIMES["litertjs"].formats == RUNTIMES["litertjs-node"].formats == ("tflite",)


@pytest.mark.browser
@pytest.mark.slow
# int8 on every CPU build; on webgpu float32 alone: the page quantizes and dequantizes in
# the same JavaScript on every backend, and int8 on LiteRT.js's webgpu runs in every
# artifact's verify of tests/test_byom_binary.py (--backends wasm,webgpu).
@pytest.mark.parametrize(
    ("artifact", "backend"),
    [
        ("tflite_float32", "wasm"),
        ("tflite_float32", "wasm-threaded"),
        ("tflite_float32", "webgpu"),
        ("tflite_int8", "wasm"),
        ("tflite_int8", "wasm-threaded"),
    ],
)
def test_each_backend_gives_litert_answers_in_chromium(
    manifest: Manifest,
    batch: np.ndarray,
    references: References,
    artifact: str,
    backend: str,
) -> None:
    model = load_in_page("litertjs", manifest, artifact, backend)
    with model:
        check_outputs(artifact, model.predict(batch), references)
        info = model.info
        details = info.details
        assert (info.runtime, info.backend, details["engine"]) == ("litertjs", backend, "LiteRT.js")
        assert details["cross_origin_isolated"] is True and details["engine_version"] == "2.5.3"
        build = {
            "wasm": "litert_wasm_internal",
            "wasm-threaded": "litert_wasm_threaded_internal",
            "webgpu": "litert_wasm_jspi_internal",
        }[backend]
        assert details["wasm_build"] == build
        if backend == "webgpu":
            assert details["gpu_name"] and info.threads is None
            assert info.device == ("swiftshader" if details["gpu_software"] else "gpu")
            assert info.label.startswith("litertjs/webgpu@")
        else:
            assert info.threads == (1 if backend == "wasm" else details["wasm_threads"]) >= 1
            assert info.label == f"litertjs/{backend} x{info.threads}"
        timed = model.self_timed(batch[:1], 20)
        assert timed is not None and timed.runs >= 20 and all(t > 0 for t in timed.samples)
        assert timed.pre and len(timed.post) == len(timed.samples)
        # The page's clock steps by 5 us (cross-origin isolated): runs are timed in
        # blocks long enough for the step to be a small share of each.
        assert 0 < timed.clock_step_ns <= 5_000 * 1.5 and timed.block >= 1
        assert model.evaluate("memory", "window.cnnx.memory()")["liveTensors"] == 0


@pytest.mark.browser
@pytest.mark.slow
def test_float16_and_dynamic_run_and_bad_requests_are_refused(
    manifest: Manifest, batch: np.ndarray, references: References
) -> None:
    for artifact, limit in (("tflite_float16", 5e-3), ("tflite_dynamic", 5e-2)):
        with load("litertjs", manifest, manifest.artifact(artifact), backend="wasm") as model:
            assert np.abs(model.predict(batch) - references("savedmodel")).max() < limit
    with pytest.raises(UsageError, match="no backend 'webgl'"):
        load("litertjs", manifest, manifest.artifact("tflite_float32"), backend="webgl")
    with pytest.raises(ArtifactError, match=r"cannot run artifact 'tfjs_float32'"):
        load("litertjs", manifest, manifest.artifact("tfjs_float32"))


@pytest.mark.browser
@pytest.mark.slow
def test_no_webgpu_adapter_is_a_skipped_load(
    manifest: Manifest, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without --enable-unsafe-webgpu, Chromium here offers no adapter at all.
    browser_runtime.shutdown()
    flags = tuple(f for f in chromium.CHROMIUM_FLAGS if f != "--enable-unsafe-webgpu")
    monkeypatch.setattr(chromium, "CHROMIUM_FLAGS", flags)
    for runtime, artifact in (("litertjs", "tflite_float32"), ("browser", "tfjs_float32")):
        with pytest.raises(RuntimeSkipped, match="webgpu unavailable \\(no WebGPU adapter") as why:
            load(runtime, manifest, manifest.artifact(artifact), backend="webgpu")
        assert why.value.exit_code == 8 and "--enable-unsafe-webgpu" in why.value.one_line()
    browser_runtime.shutdown()


@pytest.mark.browser
@pytest.mark.slow
def test_cnnx_bench_and_verify_name_engine_backend_threads_and_isolation(
    artifacts: Path, tmp_path: Path
) -> None:
    """The three in-page engines side by side in one bench: each row says what ran, and
    the browser recommendation is the fastest of them per image. On wasm alone: each
    backend's build and threads are proven per row by the tests above, a runtime asked for
    a backend it lacks is passed over in tests/test_byom_binary.py (tfjs-node, asked for
    webgpu, gives no row)."""
    from typer.testing import CliRunner

    from toolkit.cli import app

    result = CliRunner().invoke(app, [
        "bench", str(artifacts), "--runtimes", "onnxruntime,browser,litertjs,onnxruntime-web",
        "--artifacts", "tfjs_float32,tflite_int8,onnx_float32", "--backends", "wasm",
        "--threads", "1", "--limit", "8", "--runs", "5", "--warmup", "1", "--no-plots",
        "--out", str(tmp_path / "r"),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "litertjs/wasm x1" in result.output
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    rows = {row["label"].split(" ")[0]: row for row in report["rows"]}
    in_page = ["browser/wasm", "litertjs/wasm", "onnxruntime-web/wasm"]
    assert set(rows) == {"onnxruntime", *in_page}
    row = rows["litertjs/wasm"]
    info = row["runtime_info"]
    assert (row["status"], info["backend"], info["details"]["engine"]) == (
        "ok",
        "wasm",
        "LiteRT.js",
    )
    assert info["threads"] == 1 and info["details"]["cross_origin_isolated"] is True
    assert row["latency"]["p50"] > 0 and row["metrics"]["agreement"] >= 0.98
    web = rows["onnxruntime-web/wasm"]
    assert web["status"] == "ok" and web["latency"]["p50"] > 0
    assert web["metrics"]["max_abs"] <= 1e-4 and web["runtime_info"]["threads"] == 1
    # The recommendation: the fastest in-page row per image (the run plus handing the
    # input over and back, as it ranks), named in report.json, report.md and here.
    fastest = min((rows[label] for label in in_page), key=per_image_ms)
    chosen = report["recommendation"]
    assert chosen["label"] == fastest["label"] and chosen["artifact"] == fastest["artifact"]
    assert chosen["engine"] == fastest["runtime_info"]["details"]["engine"]
    assert chosen["p50_ms"] == fastest["latency"]["p50"] and chosen["candidates"] == 3
    assert {"browser", "litertjs", "onnxruntime-web"} <= set(chosen["browser_runtimes"])
    assert chosen["sentence"] in " ".join(result.output.split())
    markdown = (tmp_path / "r" / "report.md").read_text()
    assert chosen["sentence"] in markdown
    browser_section = markdown[markdown.index("## In the browser") :]
    line = next(
        text
        for text in browser_section.splitlines()
        if text.startswith("| tflite_int8 | litertjs/wasm x1")
    )
    assert "| LiteRT.js | wasm | litert_wasm_internal |" in line and "| yes |" in line
    # verify runs the in-page runtimes too: LiteRT.js and ONNX Runtime Web, a row each.
    verify = CliRunner().invoke(
        app,
        [
            *["verify", str(artifacts), "--runtimes", "litertjs,onnxruntime-web"],
            *["--artifacts", "tflite_int8,onnx_float32", "--backends", "wasm", "--limit", "8"],
            "--json",
        ],
    )
    assert verify.exit_code == 0, verify.output
    rows = {row["label"]: row["status"] for row in json.loads(verify.output)["rows"]}
    assert rows == {"litertjs/wasm x1": "ok", "onnxruntime-web/wasm x1": "ok"}


@pytest.mark.node
@pytest.mark.parametrize("backend", ["wasm", "wasm-threaded"])
def test_the_same_wasm_runs_in_node(
    manifest: Manifest, batch: np.ndarray, references: References, backend: str
) -> None:
    for artifact in ("tflite_float32", "tflite_int8"):
        with load("litertjs-node", manifest, manifest.artifact(artifact), backend=backend) as model:
            check_outputs(artifact, model.predict(batch), references)
            info = model.info
            assert (info.runtime, info.backend) == ("litertjs-node", backend)
            assert info.details["wasm_build"] == (
                "litert_wasm_internal" if backend == "wasm" else "litert_wasm_threaded_internal"
            )
            assert info.threads == 1 if backend == "wasm" else info.threads >= 1
            # TurboFan alone, so no recompilation changes the speed while it is timed
            assert "--no-liftoff" in info.details["node_flags"]
            timed = model.self_timed(batch[:1], 20)
            assert timed is not None and timed.runs >= 20 and all(t > 0 for t in timed.samples)
            # model.run alone on a ready tensor; quantizing the row (int8), making the
            # tensor, the download and dequantizing timed apart.
            assert len(timed.pre) == len(timed.post) == len(timed.samples)
            assert all(t > 0 for t in timed.pre + timed.post)
            live, _ = model._runner.call({"cmd": "memory"}, timeout=30)
            assert live["live_tensors"] == 0  # every tensor of the timing deleted
            memory = model.memory()
            assert memory is not None and memory.bytes > 10_000_000


@pytest.mark.node
def test_node_refuses_what_it_cannot_run(manifest: Manifest) -> None:
    with pytest.raises(UsageError, match="no backend 'webgpu'"):
        load("litertjs-node", manifest, manifest.artifact("tflite_float32"), backend="webgpu")
    with pytest.raises(ArtifactError, match=r"cannot run artifact 'tfjs_float32'"):
        load("litertjs-node", manifest, manifest.artifact("tfjs_float32"))


@pytest.mark.node
def test_the_page_reads_quantization_from_the_tflite_file(manifest: Manifest) -> None:
    from ai_edge_litert.interpreter import Interpreter

    script = (
        "import {ioTensors} from './tflite.js'; import {readFileSync} from 'node:fs';"
        "console.log(JSON.stringify(ioTensors(new Uint8Array(readFileSync(process.argv[1])))));"
    )
    for artifact in ("tflite_int8", "tflite_float32"):
        path = manifest.artifact_path(manifest.artifact(artifact))
        out = subprocess.run(
            ["node", "--input-type=module", "-e", script, str(path)],
            cwd=WEB_DEMO,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        io = json.loads(out.stdout)
        interpreter = Interpreter(model_path=str(path))
        for side, details in (
            ("inputs", interpreter.get_input_details()),
            ("outputs", interpreter.get_output_details()),
        ):
            (ours,) = io[side]
            (theirs,) = details
            assert ours["name"] == theirs["name"]
            assert ours["dtype"] == np.dtype(theirs["dtype"]).name
            assert ours["shape"] == [int(d) for d in theirs["shape"]]
            scale, zero_point = theirs["quantization"]
            assert np.float32(ours["scale"]) == np.float32(scale)
            assert ours["zeroPoint"] == zero_point
    bad = subprocess.run(
        ["node", "--input-type=module", "-e", script, str(manifest.path)],
        cwd=WEB_DEMO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0 and "not a TFLite flatbuffer" in bad.stderr
