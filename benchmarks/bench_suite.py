"""The bench suite: what `cnnx bench` costs and what it shows, on this machine.

Records, with the machine (benchmarks/machine.py), into benchmarks/results/bench.json:

1. the whole `cnnx demo` time (a fresh work folder);
2. the artifact table (id, format, precision, size) of the demo's artifacts;
3. the harness's own overhead, for every TFLite artifact at 1 and 2 threads: the
   batch-1 p50 `cnnx bench` reports (`toolkit.measure.timing.timing`, the loop bench runs)
   against a bare `interpreter.invoke()` loop on the same interpreter in the same run,
   interleaved in blocks so both see the same load (goal: within 5%); with the harness's
   pre_ms / post_ms (quantize and copy in, copy out and dequantize) beside it;
4. the headline: one image through Keras `model.predict` (the tutorial's way), Keras
   `model(x)`, the SavedModel's signature call and LiteRT through the harness, so the
   framework's overhead shows apart from the compute; with the graph's FLOPs and each
   one's GFLOP/s against this machine's peak (toolkit/bench/flops.py, toolkit/bench/machine.py);
5. accuracy over 10,000 fresh test images (a new seed of the same generator) for every
   artifact on TensorFlow and LiteRT, and how long that takes (goal: 60 s).

    python benchmarks/bench_suite.py [--work DIR] [--skip-demo] [--runs N]

With --skip-demo, an existing work folder (default ./cnnx-demo) is reused.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from toolkit.core.quiet import silence_tensorflow  # noqa: E402

silence_tensorflow()

from benchmarks.machine import machine_info, write_result  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "bench.json"
CNNX = ROOT / ".venv" / "bin" / "cnnx"
HARNESS_GOAL = 0.05  # the harness's p50 within 5% of a bare invoke loop
THREADS = (1, 2)
ACCURACY_IMAGES = 10_000
ACCURACY_GOAL_S = 60.0


def run_demo(work: Path) -> dict[str, Any]:
    command = [str(CNNX if CNNX.exists() else "cnnx"), "demo", "--out", str(work)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
    return {"command": " ".join(command), "seconds": round(seconds, 2),
            "exit_code": done.returncode, "tail": tail}  # fmt: skip


def ensure_artifacts(work: Path) -> Path:
    """The demo's artifacts folder; exported here from its run if the demo did not."""
    artifacts = work / "artifacts"
    if (artifacts / "manifest.json").is_file():
        return artifacts
    from toolkit.core.locate import last_run
    from toolkit.export.artifacts import ExportRequest, export

    export(ExportRequest(model=last_run(work), to="all", out=artifacts))
    return artifacts


def artifact_table(artifacts: Path) -> list[dict[str, Any]]:
    from toolkit.manifest import load_manifest

    manifest = load_manifest(artifacts)
    return [
        {"id": e.id, "format": e.format, "precision": e.precision, "size": e.size,
         "size_kb": round(e.size / 1024, 1)}
        for e in manifest.artifacts.values()
    ]  # fmt: skip


def harness_overhead(artifacts: Path, runs: int) -> list[dict[str, Any]]:
    """Per TFLite artifact and thread count: the harness's p50 against a bare invoke loop
    on the same interpreter, in alternating blocks so both see the same load."""
    import numpy as np

    from toolkit.manifest import load_manifest
    from toolkit.measure.evalset import load_eval_set
    from toolkit.measure.timing import LatencyStats, time_inference
    from toolkit.runtimes import load

    manifest = load_manifest(artifacts)
    x1 = np.ascontiguousarray(load_eval_set(manifest, limit=1).images)
    timer = time.perf_counter_ns
    block = max(10, runs // 20)
    results = []
    for entry in manifest.artifacts.values():
        if entry.format != "tflite":
            continue
        for threads in THREADS:
            with load("litert", manifest, entry, threads=threads) as model:
                interpreter = model.interpreter  # type: ignore[attr-defined]
                stages = model.stages(x1)
                assert stages is not None
                harness: list[int] = []
                pre: list[int] = []
                post: list[int] = []
                bare: list[int] = []
                time_inference(model, x1, 0, 100, timer)  # warm-up
                for _ in range(max(1, runs // block)):
                    inference, before, after = time_inference(model, x1, block, 0, timer)
                    harness += inference
                    pre += before
                    post += after
                    stages.prepare()  # the same input tensor as the harness's
                    for _ in range(block):
                        start = timer()
                        interpreter.invoke()
                        bare.append(timer() - start)
            h = LatencyStats.from_ns(harness, "cnnx bench's timed region (toolkit.measure.timing)")
            b = LatencyStats.from_ns(bare, "bare interpreter.invoke() loop")
            overhead = h.p50 / b.p50 - 1
            results.append({"artifact": entry.id, "threads": threads,
                            "harness_p50_ms": round(h.p50, 5), "bare_p50_ms": round(b.p50, 5),
                            "overhead": round(overhead, 4), "goal": HARNESS_GOAL,
                            "within_goal": abs(overhead) <= HARNESS_GOAL,
                            "pre_ms": round(float(np.median(pre)) / 1e6, 5),
                            "post_ms": round(float(np.median(post)) / 1e6, 5),
                            "runs": len(bare)})  # fmt: skip
    return results


def headline(work: Path, artifacts: Path, runs: int) -> dict[str, Any]:
    """One image through Keras predict, Keras model(x), the SavedModel call and LiteRT."""
    import keras
    import numpy as np
    import tensorflow as tf

    from toolkit.bench.flops import graph_work
    from toolkit.bench.machine import machine_peak, peak_for
    from toolkit.core.locate import last_run
    from toolkit.manifest import load_manifest
    from toolkit.measure.evalset import load_eval_set
    from toolkit.measure.timing import LatencyStats, timing
    from toolkit.runtimes import load

    manifest = load_manifest(artifacts)
    x1 = np.ascontiguousarray(load_eval_set(manifest, limit=1).images)
    saved = manifest.artifact_path(manifest.artifact("savedmodel"))
    flops = graph_work(saved).flops
    peak = machine_peak()
    timer = time.perf_counter_ns

    def timed(call: Any, count: int) -> LatencyStats:
        call()
        samples = []
        for _ in range(count):
            start = timer()
            call()
            samples.append(timer() - start)
        return LatencyStats.from_ns(samples, "perf_counter_ns around the call")

    keras_model = keras.models.load_model(last_run(work) / "model.keras")
    signature = tf.saved_model.load(str(saved)).signatures["serving_default"]
    tensor = tf.constant(x1)
    few = max(10, runs // 5)  # predict() is slow: fewer runs say enough
    paths: dict[str, LatencyStats] = {
        "keras_predict": timed(lambda: keras_model.predict(x1, verbose=0), few),
        "keras_call": timed(lambda: keras_model(tensor, training=False).numpy(), runs),
        "savedmodel_call": timed(lambda: signature(image=tensor)["probabilities"].numpy(), runs),
    }
    for artifact_id in ("tflite_float32", "tflite_int8"):
        if artifact_id in manifest.artifacts:
            with load("litert", manifest, manifest.artifact(artifact_id), threads=1) as model:
                paths[f"litert_{artifact_id}"] = timing(model, x1, runs, 20, timer).latency
    result: dict[str, Any] = {"flops": flops, "peak": peak}
    base = paths["keras_predict"].p50
    for name, stats in paths.items():
        gflops = flops / (stats.p50 * 1e6)
        threads = 1 if name.startswith("litert") else None
        result[name] = {**stats.to_dict(), "gflops": round(gflops, 3),
                        "peak_percent": round(100 * gflops / peak_for(peak, threads), 2)
                        if peak else None,
                        "speedup_vs_keras_predict": round(base / stats.p50, 1)}  # fmt: skip
    return result


def accuracy_10k(artifacts: Path) -> dict[str, Any]:
    """Every artifact on TF or LiteRT over 10,000 fresh test images, timed."""
    from toolkit.data import DataSpec, load_dataset
    from toolkit.manifest import load_manifest
    from toolkit.measure.evalset import EvalSet
    from toolkit.measure.matrix import plan, run_matrix

    manifest = load_manifest(artifacts)
    start = time.perf_counter()
    base = DataSpec.from_dict(dict(manifest.eval_data or {}))
    # A new seed of the same generator: images no artifact was trained or calibrated on.
    spec = DataSpec(kind=base.kind, seed=base.seed + 1000, size=ACCURACY_IMAGES + 10,
                    image_size=base.image_size, val_fraction=0.0, test_fraction=0.999)  # fmt: skip
    dataset = load_dataset(spec)
    evalset = EvalSet(manifest.input.apply(dataset.x_test), dataset.y_test, list(manifest.labels),
                      f"fresh {spec.kind} images, seed {spec.seed}")  # fmt: skip
    data_s = time.perf_counter() - start
    cells = plan(manifest.artifacts.values(), ("tf", "litert"))
    rows = []
    for row in run_matrix(manifest, cells, evalset).rows:
        m = row.metrics
        rows.append({"artifact": row.artifact, "runtime": row.label, "status": row.status,
                     "accuracy": m.accuracy if m else None, "top5": m.top5 if m else None,
                     "agreement": m.agreement if m else None,
                     "seconds": round(row.seconds, 2)})  # fmt: skip
    seconds = time.perf_counter() - start
    return {"images": len(evalset), "source": evalset.source, "data_seconds": round(data_s, 2),
            "seconds": round(seconds, 2), "goal_seconds": ACCURACY_GOAL_S,
            "within_goal": seconds <= ACCURACY_GOAL_S, "rows": rows}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("cnnx-demo"), help="demo work folder")
    parser.add_argument("--skip-demo", action="store_true", help="reuse an existing work folder")
    parser.add_argument("--runs", type=int, default=1000, help="batch-1 runs per latency figure")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    record: dict[str, Any] = {"machine": machine_info()}
    if not args.skip_demo:
        record["demo"] = run_demo(args.work)
        print(f"cnnx demo: {record['demo']['seconds']} s (exit {record['demo']['exit_code']})")
    artifacts = ensure_artifacts(args.work)
    record["artifacts"] = artifact_table(artifacts)
    for row in record["artifacts"]:
        print(f"  {row['id']:<16} {row['precision']:<8} {row['size_kb']:>10} KB")
    record["harness"] = harness_overhead(artifacts, args.runs)
    print(f"harness p50 against a bare invoke() loop (goal within {HARNESS_GOAL * 100:.0f}%):")
    for h in record["harness"]:
        print(f"  {h['artifact']:<16} x{h['threads']}  {h['harness_p50_ms']:.4f} ms vs "
              f"{h['bare_p50_ms']:.4f} ms: {h['overhead'] * 100:+.1f}%  "
              f"(pre {h['pre_ms']:.4f} ms, post {h['post_ms']:.4f} ms)")  # fmt: skip
    record["headline"] = headline(args.work, artifacts, args.runs)
    hl = record["headline"]
    print(f"one image, {hl['flops'] / 1e6:.2f} MFLOP:")
    for name, stats in hl.items():
        if isinstance(stats, dict) and "p50" in stats:
            percent = "-" if stats["peak_percent"] is None else f"{stats['peak_percent']:.1f}%"
            print(
                f"  {name:<24} p50 {stats['p50']:.4f} ms  {stats['gflops']:.2f} GFLOP/s "
                f"({percent} of peak)  {stats['speedup_vs_keras_predict']}x keras predict"
            )
    record["accuracy_10k"] = accuracy_10k(artifacts)
    acc = record["accuracy_10k"]
    print(f"accuracy on {acc['images']} images, every artifact on TF/LiteRT: {acc['seconds']} s "
          f"(goal <= {ACCURACY_GOAL_S:.0f} s)")  # fmt: skip
    for row in acc["rows"]:
        print(f"  {row['artifact']:<16} {row['runtime']:<8} top-1 {row['accuracy'] * 100:.2f}% "
              f"agreement {row['agreement'] * 100:.2f}%")  # fmt: skip
    write_result(args.out, record)
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
