"""Benchmark: what int16x8 costs in speed, and how long `--quantize auto` takes.

1. Exports tflite float32, int8 and int16x8 of one model into a scratch folder and times
   each on LiteRT with 1 thread in the same run, interleaved (one round of each in turn,
   so a busy neighbour slows all three alike): p50 and p90 of `invoke()` on one image,
   sizes, and the ratios int16x8 / int8 and int16x8 / float32. XNNPACK has no int16
   kernels, so int16x8 runs on LiteRT's builtin kernels: this measures the price.
2. Times `cnnx export --quantize auto` (the CLI, a fresh process, as a user runs it) on
   the same model: the whole search, candidates built, verified and timed. Target
   <= 60 s on a 2-core machine for the seed CNN.

Records both with the machine to benchmarks/results/quantize.json and prints them.

    .venv/bin/python benchmarks/quantize_bench.py [--model RUN] [--runs N] [--skip-auto]

Without --model it uses the last run under ./runs, or trains the seed CNN with
`cnnx train` (the defaults) in a temporary folder.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.export_bench import find_run  # noqa: E402
from benchmarks.machine import machine_info, write_result  # noqa: E402

RESULT = ROOT / "benchmarks" / "results" / "quantize.json"
TARGET_AUTO_SECONDS = 60.0
PRECISIONS = ("float32", "int8", "int16x8")
ROUND = 20  # invokes per precision per round


def export_three(run: Path, out: Path) -> dict[str, Path]:
    from toolkit.export.artifacts import ExportRequest, export

    paths = {}
    for precision in PRECISIONS:
        quantize = "none" if precision == "float32" else precision
        manifest = export(ExportRequest(model=run, to="tflite", quantize=quantize, out=out))
        entry = manifest.artifact(f"tflite_{precision}")
        paths[precision] = manifest.artifact_path(entry)
    return paths


def interleaved_latency(paths: dict[str, Path], runs: int) -> dict[str, dict[str, Any]]:
    """p50/p90 of invoke() per model, 1 thread, rounds of ROUND invokes taken in turn."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    from toolkit.core.quiet import stderr_to_devnull

    interpreters = {}
    for name, path in paths.items():
        with stderr_to_devnull():
            interpreter = Interpreter(model_path=str(path), num_threads=1)
            interpreter.allocate_tensors()
        detail = interpreter.get_input_details()[0]
        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, detail["shape"]).astype(detail["dtype"])
        interpreter.set_tensor(detail["index"], x)
        for _ in range(5):  # warm-up: first invokes allocate and pack weights
            interpreter.invoke()
        interpreters[name] = interpreter
    samples: dict[str, list[int]] = {name: [] for name in paths}
    while min(len(v) for v in samples.values()) < runs:
        for name, interpreter in interpreters.items():
            for _ in range(ROUND):
                start = time.perf_counter_ns()
                interpreter.invoke()
                samples[name].append(time.perf_counter_ns() - start)
    result = {}
    for name, values in samples.items():
        ms = np.asarray(values[:runs], dtype=np.float64) / 1e6
        result[name] = {
            "p50_ms": round(float(np.percentile(ms, 50)), 4),
            "p90_ms": round(float(np.percentile(ms, 90)), 4),
            "runs": runs,
            "bytes": paths[name].stat().st_size,
        }
    return result


def time_auto(run: Path, out: Path) -> tuple[float, int, str]:
    cli = [str(Path(sys.executable).with_name("cnnx")), "export", "--model", str(run)]
    cli += ["--to", "tflite", "--quantize", "auto", "--out", str(out)]
    started = time.perf_counter()
    done = subprocess.run(cli, capture_output=True, text=True, check=False)
    return time.perf_counter() - started, done.returncode, done.stdout + done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="run folder (default: last under ./runs)")
    parser.add_argument("--runs", type=int, default=300, help="timed invokes per model")
    parser.add_argument("--skip-auto", action="store_true", help="only the latency part")
    args = parser.parse_args()
    info = machine_info()  # before the work: the load average at the start
    scratch = Path(tempfile.mkdtemp(prefix="cnnx-quantize-bench-"))
    try:
        run = find_run(args.model, scratch)
        latency = interleaved_latency(export_three(run, scratch / "three"), args.runs)
        auto: dict[str, Any] = {"skipped": True}
        if not args.skip_auto:
            seconds, code, output = time_auto(run, scratch / "auto")
            auto = {"seconds": round(seconds, 1), "exit_code": code, "output": output[-3000:]}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    p50 = {name: row["p50_ms"] for name, row in latency.items()}
    ratios = {
        "int16x8_over_int8": round(p50["int16x8"] / p50["int8"], 2),
        "int16x8_over_float32": round(p50["int16x8"] / p50["float32"], 2),
        "int8_over_float32": round(p50["int8"] / p50["float32"], 2),
    }
    result: dict[str, Any] = {
        "benchmark": "int16x8 vs int8 vs float32 on LiteRT x1; cnnx export --quantize auto",
        "date": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "machine": info,
        "model": str(run),
        "latency_litert_1_thread": latency,
        "ratios_p50": ratios,
        "quantize_auto": auto,
        "targets": {"quantize_auto_seconds_max": TARGET_AUTO_SECONDS},
    }
    if "seconds" in auto:
        result["meets_targets"] = {
            "quantize_auto_seconds": auto["exit_code"] == 0
            and auto["seconds"] <= TARGET_AUTO_SECONDS
        }
    write_result(RESULT, result)
    for name, row in latency.items():
        print(
            f"{name:8s} p50 {row['p50_ms']:.3f} ms  p90 {row['p90_ms']:.3f} ms  "
            f"{row['bytes'] / 1024:.1f} KiB  (LiteRT x1, {row['runs']} runs)"
        )
    print(
        f"int16x8 / int8 p50: {ratios['int16x8_over_int8']}x; "
        f"int16x8 / float32: {ratios['int16x8_over_float32']}x"
    )
    if "seconds" in auto:
        print(
            f"cnnx export --quantize auto: {auto['seconds']:.1f} s (exit {auto['exit_code']}, "
            f"target <= {TARGET_AUTO_SECONDS:.0f} s), load at start {info['load_average']}"
        )
    print(f"written to {RESULT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
