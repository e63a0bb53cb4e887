"""The bench suite: what `cnnx bench` costs and what it shows, on this machine.

Records, with the machine (benchmarks/machine.py), into benchmarks/results/bench.json:

1. the whole `cnnx demo` time (a fresh work folder);
2. the artifact table (id, format, precision, size) of the demo's artifacts;
3. the harness's own overhead: its LiteRT float32 batch-1 p50 (the loop `cnnx bench`
   runs, `toolkit.bench.latency_samples`) against a bare `interpreter.invoke()` loop on
   the same interpreter in the same run, interleaved in blocks (goal: within 10%);
4. the headline ratio: Keras `model.predict` on one image (the tutorial's way) against
   LiteRT through the harness;
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

from toolkit.quiet import silence_tensorflow  # noqa: E402

silence_tensorflow()

from benchmarks.machine import machine_info, write_result  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "bench.json"
CNNX = ROOT / ".venv" / "bin" / "cnnx"
HARNESS_GOAL = 0.10  # the harness's p50 within 10% of a bare invoke loop
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
    from toolkit.exporting import ExportRequest, export
    from toolkit.locate import last_run

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


def harness_overhead(artifacts: Path, runs: int) -> dict[str, Any]:
    """Harness p50 against a bare invoke loop, interleaved so both see the same load."""
    import numpy as np

    from toolkit.bench import LatencyStats, latency_samples
    from toolkit.evalset import load_eval_set
    from toolkit.manifest import load_manifest
    from toolkit.runtimes import load

    manifest = load_manifest(artifacts)
    x1 = np.ascontiguousarray(load_eval_set(manifest, limit=1).images)
    model = load("litert", manifest, manifest.artifact("tflite_float32"), threads=1)
    interpreter = model.interpreter  # type: ignore[attr-defined]
    index = interpreter.get_input_details()[0]["index"]
    timer = time.perf_counter_ns
    harness: list[int] = []
    bare: list[int] = []
    block = max(10, runs // 10)
    latency_samples(model, x1, 0, 50, timer)  # warm-up
    for _ in range(max(1, runs // block)):
        harness += latency_samples(model, x1, block, 0, timer)
        interpreter.set_tensor(index, x1)
        for _ in range(block):
            start = timer()
            interpreter.invoke()
            bare.append(timer() - start)
    model.close()
    h = LatencyStats.from_ns(harness, "harness: predict() timed by perf_counter_ns")
    b = LatencyStats.from_ns(bare, "bare interpreter.invoke() loop")
    overhead = h.p50 / b.p50 - 1
    return {"harness": h.to_dict(), "bare": b.to_dict(), "overhead": round(overhead, 4),
            "goal": HARNESS_GOAL, "within_goal": overhead <= HARNESS_GOAL}  # fmt: skip


def headline(work: Path, artifacts: Path, runs: int) -> dict[str, Any]:
    """Keras model.predict on one image (the tutorial's way) against LiteRT via the harness."""
    import keras
    import numpy as np

    from toolkit.bench import LatencyStats, latency_samples
    from toolkit.evalset import load_eval_set
    from toolkit.locate import last_run
    from toolkit.manifest import load_manifest
    from toolkit.runtimes import load

    manifest = load_manifest(artifacts)
    x1 = np.ascontiguousarray(load_eval_set(manifest, limit=1).images)
    keras_model = keras.models.load_model(last_run(work) / "model.keras")
    keras_model.predict(x1, verbose=0)
    timer = time.perf_counter_ns
    keras_ns = []
    for _ in range(max(10, runs // 5)):  # predict() is slow: fewer runs say enough
        start = timer()
        keras_model.predict(x1, verbose=0)
        keras_ns.append(timer() - start)
    result: dict[str, Any] = {
        "keras_predict": LatencyStats.from_ns(keras_ns, "model.predict").to_dict()
    }
    for artifact_id in ("tflite_float32", "tflite_int8"):
        if artifact_id not in manifest.artifacts:
            continue
        with load("litert", manifest, manifest.artifact(artifact_id), threads=1) as model:
            stats = LatencyStats.from_ns(latency_samples(model, x1, runs, 20, timer), "harness")
        result[artifact_id] = stats.to_dict()
        result[f"speedup_{artifact_id}"] = round(result["keras_predict"]["p50"] / stats.p50, 1)
    return result


def accuracy_10k(artifacts: Path) -> dict[str, Any]:
    """Every artifact on TF or LiteRT over 10,000 fresh test images, timed."""
    from toolkit.data import DataSpec, load_dataset
    from toolkit.evalset import EvalSet
    from toolkit.manifest import load_manifest
    from toolkit.runtimes import runtimes_for
    from toolkit.tolerances import tolerance_for
    from toolkit.verify import reference_outputs, run_parity

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
    reference, ref_model = reference_outputs(manifest, evalset)
    ref_model.close()
    rows = []
    for entry in manifest.artifacts.values():
        for runtime in runtimes_for(entry, ("tf", "litert")):
            row = run_parity(manifest, entry, runtime, {}, evalset, reference, tolerance_for(entry))
            m = row.metrics
            rows.append({"artifact": entry.id, "runtime": row.label, "status": row.status,
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
    h = record["harness"]
    print(f"harness p50 {h['harness']['p50']:.4f} ms vs bare invoke {h['bare']['p50']:.4f} ms: "
          f"overhead {h['overhead'] * 100:.1f}% (goal <= {HARNESS_GOAL * 100:.0f}%)")  # fmt: skip
    record["headline"] = headline(args.work, artifacts, args.runs)
    hl = record["headline"]
    print(f"keras model.predict p50 {hl['keras_predict']['p50']:.3f} ms; "
          + ", ".join(f"{k}: {v}x" for k, v in hl.items() if k.startswith("speedup")))  # fmt: skip
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
