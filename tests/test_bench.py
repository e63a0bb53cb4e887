"""cnnx bench: the harness (unit, with a fake model and a fake clock) and real runs on
the session's artifacts with report files, gates and a crashing runtime."""

from __future__ import annotations

import json
import stat
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.cli import cnnx
from toolkit.bench.gates import Gates, baseline_breaches, check_gates
from toolkit.bench.run import BenchConfig
from toolkit.errors import UsageError
from toolkit.measure.parity import Check, Metrics
from toolkit.measure.rows import Row, Speed
from toolkit.measure.timing import LatencyStats, latency_samples, timing
from toolkit.measure.tolerances import Tolerance
from toolkit.runtimes import LoadedModel, RuntimeInfo, Stages

TINY_TOLERANCES = "min_agreement = 0.85\nmax_accuracy_drop = 0.05\n[float32]\nmin_agreement = 1.0\n"


class FakeModel(LoadedModel):
    def __init__(self) -> None:
        self.info = RuntimeInfo(runtime="litert", backend="xnnpack")
        self.calls = 0

    def predict(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        return np.zeros((len(batch), 2), np.float32)

    def close(self) -> None:
        pass


def test_latency_uses_the_swappable_timer() -> None:
    ticks = iter(range(0, 10_000_000_000, 250_000))  # each reading 0.25 ms later
    model = FakeModel()
    samples = latency_samples(
        model, np.zeros((1, 2, 2, 3), np.float32), runs=20, warmup=3, timer=lambda: next(ticks)
    )
    assert model.calls == 23 and samples == [250_000] * 20
    stats = LatencyStats.from_ns([1_000_000] * 9 + [11_000_000], "fake")
    assert stats.p50 == pytest.approx(1.0) and stats.p99 > 10 and stats.mean == pytest.approx(2.0)


def _row(artifact: str = "tflite_int8", **changes: Any) -> Row:
    row = Row(
        artifact=artifact, runtime="litert", label="litert x1", precision="int8", format="tflite",
        size=300 * 1024, status="ok",
        speed=Speed(latency=LatencyStats(100, 2.0, 3.0, 4.0, 2.1, 0.1, 1.9, "fake")),
        metrics=Metrics(150, 0.99, 0.1, 0.01, 0.99, accuracy=0.8, top5=0.95, accuracy_drop=0.02),
    )  # fmt: skip
    return replace(row, **changes)


def test_gates_name_each_breach() -> None:
    rows = (
        _row(),
        _row("savedmodel", size=10**9),
        _row("tfjs_uint8", status="failed", speed=None),
    )
    breaches = check_gates(rows, Gates(max_size_kb=200, max_latency_ms=1.5, max_accuracy_drop=0.01))
    kinds = sorted((b.kind, b.artifact) for b in breaches)
    # The reference's size is not gated; a failed row has no latency to gate.
    assert kinds == [
        ("accuracy_drop", "savedmodel"), ("accuracy_drop", "tflite_int8"),
        ("latency", "savedmodel"), ("latency", "tflite_int8"),
        ("size", "tfjs_uint8"), ("size", "tflite_int8"),
    ]  # fmt: skip
    assert not check_gates(rows, Gates(max_size_kb=400, max_latency_ms=5, max_accuracy_drop=0.03))
    with pytest.raises(UsageError, match="--max-latency-ms must be >= 0"):
        Gates(max_latency_ms=-1)


def test_baseline_flags_slower_and_less_accurate_rows() -> None:
    metrics = {"accuracy": 0.9, "agreement": 0.99}
    old = {"tflite_int8|litert x1": {"status": "ok", "latency": {"p50": 1.0}, "metrics": metrics}}
    breaches = baseline_breaches((_row(),), old, max_regression=50)
    assert [(b.metric, round(b.limit, 2)) for b in breaches] == [("p50_ms", 1.0), ("accuracy", 0.9)]
    assert "100% slower" in breaches[0].message
    assert [b.metric for b in baseline_breaches((_row(),), old, max_regression=150)] == ["accuracy"]


def test_config_rejects_nonsense() -> None:
    with pytest.raises(UsageError, match="--runs must be at least 1"):
        BenchConfig(Path("."), runs=0)
    with pytest.raises(UsageError, match="--threads"):
        BenchConfig(Path("."), threads=(0,))


# --- real runs ------------------------------------------------------------------------


@pytest.fixture
def copy(artifacts_copy: Path) -> Path:
    (artifacts_copy.parent / "tiny.toml").write_text(TINY_TOLERANCES)
    return artifacts_copy


def _bench(*args: str) -> tuple[int, str]:
    done = cnnx("bench", *args)
    return done.returncode, done.output


QUICK = ("--runs", "5", "--warmup", "1", "--batch", "4")


@pytest.mark.slow
@pytest.mark.node
def test_bench_writes_the_report_and_gates_exit_10(copy: Path) -> None:
    tol = str(copy.parent / "tiny.toml")
    code, output = _bench(str(copy), "-r", "tf,litert,tfjs-node", "--threads", "1,2",
                          "--artifacts", "savedmodel,tflite_float32,tflite_int8,tfjs_float32",
                          "--tolerances", tol, *QUICK)  # fmt: skip
    assert code == 0, output
    report = json.loads((copy / "report" / "report.json").read_text())
    assert report["schema"] == "cnnx.report/1" and report["status"]["ok"] is True
    labels = {(r["artifact"], r["label"]) for r in report["rows"]}
    expected = {
        ("tflite_int8", "litert x1"), ("tflite_int8", "litert x2"), ("savedmodel", "tf"),
        ("tfjs_float32", "tfjs-node/wasm"), ("tfjs_float32", "tfjs-node/cpu"),
    }  # fmt: skip
    assert expected <= labels
    for row in report["rows"]:
        assert row["status"] == "ok", row
        assert row["latency"]["runs"] == 5 and 0 < row["latency"]["p50"] <= row["latency"]["p99"]
        assert row["load_ms"] > 0 and row["first_ms"] > 0 and row["throughput"] > 0
        assert row["memory"]["source"] and row["metrics"]["top5"] >= row["metrics"]["accuracy"]
    node = next(r for r in report["rows"] if r["label"] == "tfjs-node/wasm")
    # Node times itself: the latency is Node's clock around the engine's run, the pipe is
    # in Python's clock around predict(), reported apart. (Their figures are not compared:
    # five runs each on a loaded machine can put either first.)
    assert node["latency"]["source"].startswith("tfjs-node clock around the engine's run")
    assert node["latency_outer"]["source"].endswith("around predict()")
    outer, inner = node["latency_outer"]["p50"], node["latency"]["p50"]
    assert node["ipc_ms"] == pytest.approx(outer - inner, abs=1e-3)
    assert "node" in node["memory"]["source"]
    # Work from the graph and what each row made of it; LiteRT's timed region holds
    # invoke() alone, with the quantization and copies beside it.
    flops = report["work"]["flops"]
    assert flops > 2 * report["work"]["macs"] > 0 and report["machine"]["peak"]
    for row in report["rows"]:
        p50 = row["latency"]["p50"]
        assert row["gflops"] == pytest.approx(flops / (p50 * 1e6), rel=0.01)
        assert row["peak_percent"] > 0
    litert = [r for r in report["rows"] if r["runtime"] == "litert"]
    assert all(r["pre_ms"] > 0 and r["post_ms"] > 0 for r in litert)
    assert all("fresh process" in r["memory"]["source"] for r in litert)
    # Node times the graph's execute alone too: making the tensor and reading it back apart.
    assert node["pre_ms"] > 0 and node["post_ms"] > 0
    assert "around the engine's run" in node["latency"]["source"]
    assert {"latency.png", "size_accuracy.png", "per_class.png"} <= set(report["plots"])
    for name in report["plots"]:
        assert (copy / "report" / name).read_bytes()[:4] == b"\x89PNG"
    markdown = (copy / "report" / "report.md").read_text()
    assert "| tflite_int8 | litert x2 |" in markdown and "## Gates" in markdown

    baseline = copy.parent / "baseline.json"
    report["rows"] = [
        dict(r, latency=dict(r["latency"], p50=r["latency"]["p50"] / 100)) for r in report["rows"]
    ]
    baseline.write_text(json.dumps(report))
    code, output = _bench(str(copy), "-r", "litert", "--artifacts", "tflite_float32",
                          "--threads", "1", "--max-size-kb", "1", "--baseline", str(baseline),
                          *QUICK)  # fmt: skip
    assert code == 10, output
    assert (
        "tflite_float32 is" in output
        and "--max-size-kb 1" in output
        and "slower than the baseline" in output
    )
    after = json.loads((copy / "report" / "report.json").read_text())
    assert after["gates"]["breaches"] and after["status"]["ok"] is False  # written before the exit


@pytest.mark.slow
@pytest.mark.node
def test_a_crashing_runtime_fails_its_rows_and_the_rest_goes_on(
    copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "node"
    fake.write_text("#!/bin/sh\necho 'Segmentation fault' >&2\nkill -SEGV $$\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("CNNX_NODE", str(fake))
    code, output = _bench(str(copy), "-r", "litert,tfjs-node", "--threads", "1", "--json",
                          "--artifacts", "tflite_float32,tfjs_float32", *QUICK)  # fmt: skip
    assert code == 8
    report = json.loads(output[: output.rindex("}") + 1])
    status = {r["label"]: r["status"] for r in report["rows"]}
    assert status == {"litert x1": "ok", "tfjs-node/wasm": "failed", "tfjs-node/cpu": "failed"}
    reason = next(r["reason"] for r in report["rows"] if r["label"] == "tfjs-node/wasm")
    assert "exited during load" in reason and "Segmentation fault" in reason


@pytest.mark.slow
def test_gpu_without_gpu_is_a_skipped_row(copy: Path) -> None:
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is present: the no-GPU path cannot be shown here")
    code, output = _bench(str(copy), "-r", "tf", "--device", "gpu", "--json", "--no-plots", *QUICK)
    assert code == 0, output
    row = json.loads(output)["rows"][0]
    assert row["status"] == "skipped" and "no GPU" in row["reason"]


# --- the measuring stage's parts --------------------------------------------------------


class StagedFake(FakeModel):
    """A model whose three stages each move a fake clock by a known amount."""

    def __init__(self, clock: list[int]) -> None:
        super().__init__()
        self.clock = clock

    def stages(self, batch: np.ndarray) -> Stages:
        def tick(ns: int, value: Any = None) -> Any:
            self.clock[0] += ns
            return value

        return Stages(
            prepare=lambda: tick(3_000, "prepared"),
            run=lambda x: tick(1_000, np.zeros((1, 2), np.float32)),
            finish=lambda y: tick(2_000, y),
        )


def test_the_timed_region_holds_the_inference_call_only() -> None:
    clock = [0]
    model = StagedFake(clock)
    measured = timing(model, np.zeros((1, 2, 2, 3), np.float32), 10, 2, lambda: clock[0])
    assert measured.latency.runs == 10 and measured.latency.p50 == pytest.approx(0.001)
    assert measured.pre_ms == pytest.approx(0.003) and measured.post_ms == pytest.approx(0.002)
    assert "inference call" in measured.latency.source
    assert model.calls == 0  # predict() is not what was timed


def test_a_row_round_trips_through_json() -> None:
    """A row measured elsewhere (another machine) joins a report as its dict."""
    row = replace(
        _row(status="drift", checks=(Check("agreement", 0.9, 0.98, ">=", False),)),
        tolerance=Tolerance(min_agreement=0.98),
        runtime_info={"threads": 2},
        speed=Speed(load_ms=1.5, latency=LatencyStats(10, 1.0, 2.0, 3.0, 1.2, 0.1, 0.9, "x"),
                    pre_ms=0.01, memory_bytes=1024, memory_source="worker", gflops=3.5),
    )  # fmt: skip
    data = json.loads(json.dumps(row.to_dict(speed=True)))
    assert data["status"] == "ok" and data["drifted"] is True  # report schema 1
    back = Row.from_dict(data)
    assert back.status == "drift" and back.to_dict(speed=True) == data
    assert Row.from_dict(json.loads(json.dumps(row.to_dict()))).speed is None


@pytest.mark.slow
def test_memory_does_not_depend_on_row_order(artifacts: Path) -> None:
    from toolkit.bench.run import run_bench
    from toolkit.manifest import load_manifest

    manifest = load_manifest(artifacts)
    memory = []
    for order in (("tflite_float32", "tflite_int8"), ("tflite_int8", "tflite_float32")):
        config = BenchConfig(artifacts, artifacts=order, runtimes=("litert",), threads=(1,),
                             runs=5, warmup=1, batch=4, limit=20, plots=False)  # fmt: skip
        report = run_bench(config, manifest)
        memory.append({r.artifact: r.speed.memory_bytes for r in report.rows if r.speed})
    first, second = memory
    assert set(first) == {"tflite_float32", "tflite_int8"}
    for artifact, size in first.items():
        entry = manifest.artifact(artifact)
        assert size is not None and size >= entry.size  # at least the model it loaded
        assert abs(size - second[artifact]) <= max(0.05 * size, 256 * 1024), (first, second)


@pytest.mark.slow
def test_work_is_counted_from_the_graph(tiny_run: Path, artifacts: Path) -> None:
    """The graph's MACs against the Keras layers' own arithmetic, counted by hand."""
    import keras

    from toolkit.bench.flops import graph_work

    model = keras.models.load_model(tiny_run / "model.keras")
    macs = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, height, width, filters = layer.output.shape
            kh, kw = layer.kernel_size
            macs += height * width * filters * kh * kw * layer.input.shape[-1]
        elif isinstance(layer, keras.layers.Dense):
            macs += layer.input.shape[-1] * layer.units
    work = graph_work(artifacts / "saved_model")
    assert work.macs == macs > 0
    assert 2 * macs < work.flops < 2.2 * macs  # adds, activations and pooling on top


@pytest.mark.slow
def test_a_depthwise_convolution_counts_its_window_once_per_output(tmp_path: Path) -> None:
    """MobileNet's and EfficientNet's depthwise layers: no sum over input channels."""
    import keras

    from toolkit.bench.flops import graph_work

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, use_bias=False)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(4, use_bias=False)(x))
    model.export(str(tmp_path / "saved_model"), verbose=False)
    work = graph_work(tmp_path / "saved_model")
    assert work.macs == 6 * 6 * 6 * 3 * 3 + 6 * 4  # 6x6 outputs of 3x2 channels, 3x3 windows


@pytest.mark.slow  # the peak is measured with TensorFlow
def test_the_machine_peak_is_measured_once_and_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from toolkit.bench import machine

    monkeypatch.setenv("CNNX_CACHE_DIR", str(tmp_path))
    peak = machine.machine_peak()
    assert peak is not None and peak["gflops_1_thread"] > 0.1
    assert peak["gflops_all_threads"] >= peak["gflops_1_thread"]
    assert (tmp_path / machine.PEAK_FILE).is_file()

    def measured_again() -> None:
        raise AssertionError("the cached peak was measured again")

    monkeypatch.setattr(machine, "_measure_peak", measured_again)
    assert machine.machine_peak() == peak
    one = peak["gflops_1_thread"]
    assert machine.peak_for(peak, 1) == one
    assert machine.peak_for(peak, None) == peak["gflops_all_threads"]
    assert machine.peak_for(peak, 64) == peak["gflops_all_threads"]


@pytest.mark.slow
def test_litert_gpu_rows_stand_beside_litert_labelled_software(copy: Path) -> None:
    """On SwiftShader the GPU rows are measured like any other, and said to be software."""
    tol = str(copy.parent / "tiny.toml")
    code, output = _bench(str(copy), "-r", "litert,litert-gpu", "-a", "tflite_float32",
                          "--threads", "1", "--tolerances", tol, "--no-plots", *QUICK)  # fmt: skip
    assert code == 0, output
    report = json.loads((copy / "report" / "report.json").read_text())
    rows = {row["label"]: row for row in report["rows"]}
    assert set(rows) == {"litert x1", "litert-gpu@swiftshader"}
    gpu = rows["litert-gpu@swiftshader"]
    assert gpu["status"] == "ok" and gpu["latency"]["p50"] > 0 and gpu["first_ms"] > 0
    assert gpu["runtime_info"]["details"]["adapter"]["software"] is True
    note = "Software GPU (litert-gpu@swiftshader): parity is real, latency is the CPU's"
    assert note in " ".join(output.split())
    assert note in (copy / "report" / "report.md").read_text()
