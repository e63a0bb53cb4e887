"""Benchmark: TF.js in headless Chromium next to LiteRT, same model, machine and run.

For one artifacts folder (default: the seed CNN, untrained, exported here to
TFLite float32 and TF.js float32; latency does not depend on the weights) it measures:

- LiteRT float32 (ai-edge-litert, XNNPACK) at 1 and 2 threads: batch-1 predict,
- the web demo page in Chromium on the wasm (SIMD), webgl (SwiftShader) and cpu
  backends: load, first inference and batch-1 latency timed in the page with
  performance.now() (fine-grained: the server sends COOP/COEP),

on the same preprocessed image, with warm-up, and records p50/p90/p99/mean, the
wasm/LiteRT p50 ratio (goal: at most 8x) and the machine to
benchmarks/results/browser.json.

    .venv/bin/python benchmarks/browser_bench.py [ARTIFACTS_DIR] [--runs N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.machine import machine_info, write_result  # noqa: E402

RESULT = ROOT / "benchmarks" / "results" / "browser.json"
GOAL_RATIO = 8.0


def seed_artifacts(workdir: Path) -> Path:
    """The default seed CNN (32x32x3, 10 classes) exported to TFLite and TF.js float32."""
    from toolkit.exporting import ExportRequest, export
    from toolkit.models import build_model

    model = build_model("seed", (32, 32, 3), 10, seed=0)
    path = workdir / "seed.keras"
    model.save(path)
    out = workdir / "artifacts"
    export(ExportRequest(model=path, to="all", quantize="none", out=out, samples=0))
    return out


def stats(samples_ns: list[int]) -> dict[str, float]:
    ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
    return {
        "runs": len(ms),
        "p50_ms": round(float(np.percentile(ms, 50)), 4),
        "p90_ms": round(float(np.percentile(ms, 90)), 4),
        "p99_ms": round(float(np.percentile(ms, 99)), 4),
        "mean_ms": round(float(ms.mean()), 4),
        "std_ms": round(float(ms.std()), 4),
    }


def litert_latency(manifest: Any, x: np.ndarray, threads: int, runs: int, warmup: int) -> dict:
    from toolkit.runtimes import load

    with load("litert", manifest, manifest.artifact("tflite_float32"), threads=threads) as model:
        for _ in range(warmup):
            model.predict(x)
        samples = []
        for _ in range(runs):
            start = time.perf_counter_ns()
            model.predict(x)
            samples.append(time.perf_counter_ns() - start)
        return {"runtime": f"litert x{threads}", "init_ms": round(model.info.init_ms, 2)} | stats(
            samples
        )


def browser_latency(manifest: Any, x: np.ndarray, backend: str, runs: int, warmup: int) -> dict:
    from toolkit.runtimes import load

    with load("browser", manifest, manifest.artifact("tfjs_float32"), backend=backend) as model:
        model.self_timed(x, warmup)
        samples = model.self_timed(x, runs) or []
        details = model.info.details
        return {
            "runtime": f"browser/{backend}",
            "init_ms": round(model.info.init_ms, 2),
            "load_ms": round(details["load_ms"], 2),
            "first_inference_ms": round(details["first_inference_ms"], 2),
            "threads": model.info.threads,
            "cross_origin_isolated": details["cross_origin_isolated"],
            "chromium": details["chromium"],
        } | stats(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "artifacts", nargs="?", type=Path, help="artifacts folder (default: seed CNN)"
    )
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--backends", default="wasm,webgl,cpu")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()

    from toolkit.quiet import silence_tensorflow

    silence_tensorflow()
    os.environ.setdefault("TFDF_DISABLE_WELCOME_MESSAGE", "1")
    from toolkit.manifest import load_manifest
    from toolkit.runtimes import browser

    info = machine_info()
    with tempfile.TemporaryDirectory(prefix="cnnx-browser-bench-") as tmp:
        folder = args.artifacts or seed_artifacts(Path(tmp))
        manifest = load_manifest(folder)
        # One image for every runtime: a fixed random one, preprocessed by the spec.
        pixels = np.random.default_rng(0).integers(0, 256, (1, *manifest.input.shape))
        x = manifest.input.apply(pixels.astype(np.uint8))
        rows = [litert_latency(manifest, x, t, args.runs, args.warmup) for t in (1, 2)]
        for backend in args.backends.split(","):
            try:
                rows.append(browser_latency(manifest, x, backend, args.runs, args.warmup))
            except Exception as error:  # a failed backend is a failed row; go on
                rows.append({"runtime": f"browser/{backend}", "error": str(error)})
        browser.shutdown()
        sizes = {k: e.size for k, e in manifest.artifacts.items() if k.endswith("float32")}

    by_name = {row["runtime"]: row for row in rows}
    litert = by_name["litert x1"]["p50_ms"]
    wasm = by_name.get("browser/wasm", {}).get("p50_ms")
    ratio = round(wasm / litert, 2) if wasm else None
    result = {
        "benchmark": "browser_bench",
        "date": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "machine": info,
        "model": {
            "artifacts": str(args.artifacts or "seed CNN (untrained), exported here"),
            "input": list(manifest.input.shape),
            "classes": len(manifest.labels),
            "bytes": sizes,
        },
        "runs": args.runs,
        "warmup": args.warmup,
        "results": rows,
        "wasm_p50_over_litert_p50": ratio,
        "goal": f"browser/wasm p50 <= {GOAL_RATIO:g}x LiteRT float32 p50 (1 thread)",
        "goal_met": ratio is not None and ratio <= GOAL_RATIO,
    }
    write_result(args.out, result)

    print(f"{'runtime':<16}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'init ms':>10}")
    for row in rows:
        if "error" in row:
            print(f"{row['runtime']:<16} failed: {row['error'][:100]}")
            continue
        print(
            f"{row['runtime']:<16}{row['p50_ms']:>10.3f}{row['p90_ms']:>10.3f}"
            f"{row['p99_ms']:>10.3f}{row['init_ms']:>10.1f}"
        )
    print(
        f"wasm p50 / LiteRT p50 = {ratio}x (goal <= {GOAL_RATIO:g}x): "
        f"{'met' if result['goal_met'] else 'NOT met'}; written to {args.out}"
    )
    return 0 if result["goal_met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
