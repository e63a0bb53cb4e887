"""Benchmark: `cnnx train` with its defaults (shapes, seed CNN) on this machine.

Runs the real command in a subprocess (so the figure includes TensorFlow's start-up,
generating the data and writing the run folder), then records the wall time, the test
accuracy and the machine to benchmarks/results/train.json and prints them.

Targets: test accuracy >= 0.90 and wall time <= 120 s on a 2-core machine. Apart from
the command, the time to draw 10,000 `shapes` pictures (the data step alone, in this
process) is recorded as `shapes_10k_seconds` (target <= 20 s).

    .venv/bin/python benchmarks/train_bench.py [--repeat N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.machine import machine_info, write_result  # noqa: E402

RESULT = ROOT / "benchmarks" / "results" / "train.json"
TARGET_ACCURACY = 0.90
TARGET_SECONDS = 120.0
TARGET_SHAPES_SECONDS = 20.0


def shapes_seconds(size: int = 10_000) -> float:
    """Wall time of drawing `size` shapes pictures (the generator alone, no TensorFlow)."""
    from toolkit.data import DataSpec, load_dataset

    started = time.perf_counter()
    load_dataset(DataSpec(size=size))
    return round(time.perf_counter() - started, 2)


def run_once(workdir: Path) -> dict[str, object]:
    out = workdir / "run"
    cli = [str(Path(sys.executable).with_name("cnnx")), "train", "--out", str(out)]
    started = time.perf_counter()
    done = subprocess.run(cli, cwd=workdir, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"cnnx train failed ({done.returncode}): {done.stderr.strip()}")
    record = json.loads((out / "run.json").read_text())
    return {
        "wall_seconds": round(wall, 1),
        "fit_seconds": record["metrics"]["train_seconds"],
        "test_accuracy": round(record["metrics"]["test_accuracy"], 4),
        "val_accuracy": round(record["metrics"]["val_accuracy"], 4),
        "epochs": record["metrics"]["epochs"],
        "config": record["config"],
        "versions": record["versions"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs to make (the worst counts)")
    args = parser.parse_args()
    info = machine_info()  # before the runs: the load average at the start
    shapes = shapes_seconds()
    runs = []
    for _ in range(args.repeat):
        workdir = Path(tempfile.mkdtemp(prefix="cnnx-train-bench-"))
        try:
            runs.append(run_once(workdir))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    worst_time = max(float(r["wall_seconds"]) for r in runs)  # type: ignore[arg-type]
    worst_acc = min(float(r["test_accuracy"]) for r in runs)  # type: ignore[arg-type]
    result = {
        "benchmark": "cnnx train (defaults: shapes, seed)",
        "date": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "machine": info,
        "versions": runs[0]["versions"],
        "config": runs[0]["config"],
        "runs": [{k: v for k, v in r.items() if k not in ("config", "versions")} for r in runs],
        "wall_seconds": worst_time,
        "test_accuracy": worst_acc,
        "shapes_10k_seconds": shapes,
        "targets": {
            "test_accuracy_min": TARGET_ACCURACY,
            "wall_seconds_max": TARGET_SECONDS,
            "shapes_10k_seconds_max": TARGET_SHAPES_SECONDS,
        },
        "meets_targets": worst_acc >= TARGET_ACCURACY
        and worst_time <= TARGET_SECONDS
        and shapes <= TARGET_SHAPES_SECONDS,
        "note": "wall time of the whole command: TF start-up, data, training, saving",
    }
    write_result(RESULT, result)
    print(
        f"cnnx train defaults: test accuracy {worst_acc:.4f} (target >= {TARGET_ACCURACY}), "
        f"wall time {worst_time:.1f} s (target <= {TARGET_SECONDS:.0f} s) on "
        f"{info['cores']} cores ({info['cpu']}); load at start {info['load_average']}"
    )
    print(
        f"10,000 shapes pictures drawn in {shapes:.2f} s (target <= {TARGET_SHAPES_SECONDS:.0f} s)"
    )
    print(f"written to {RESULT.relative_to(ROOT)}")
    if not result["meets_targets"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
