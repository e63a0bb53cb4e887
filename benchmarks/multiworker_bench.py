"""Benchmark: `cnnx train` on one worker and on two workers of a TF_CONFIG cluster.

Side by side in one run, on the same data and settings: the plain command, then two
`--strategy multiworker` processes on 127.0.0.1 (free ports), as two machines would run
them. Records the wall time of each (TensorFlow's start-up, joining the cluster, training,
saving), the test accuracy, and the ratio, to benchmarks/results/multiworker.json.

On one machine the two workers share its cores and add gRPC all-reduces, so they are not
faster: the figures say what the collective costs and that accuracy holds. Target: the
two workers' test accuracy within 2 points of one worker's, with cnnx train's defaults
(where both converge; small settings sit on a plateau and differ by chance).

    .venv/bin/python benchmarks/multiworker_bench.py [--size N] [--epochs N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.machine import machine_info, write_result  # noqa: E402

RESULT = ROOT / "benchmarks" / "results" / "multiworker.json"
TARGET_ACCURACY_GAP = 0.02


def cnnx() -> str:
    return str(Path(sys.executable).with_name("cnnx"))


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [int(s.getsockname()[1]) for s in sockets]
    for s in sockets:
        s.close()
    return ports


def summary(run: Path, wall: float) -> dict[str, object]:
    record = json.loads((run / "run.json").read_text())
    return {
        "wall_seconds": round(wall, 1),
        "fit_seconds": record["metrics"]["train_seconds"],
        "test_accuracy": round(record["metrics"]["test_accuracy"], 4),
        "distribution": record["distribution"],
        "config": record["config"],
    }


def single(work: Path, options: list[str]) -> dict[str, object]:
    started = time.perf_counter()
    done = subprocess.run([cnnx(), "train", *options, "--out", str(work / "single")], check=False)
    if done.returncode != 0:
        raise SystemExit(f"single-worker cnnx train failed ({done.returncode})")
    return summary(work / "single", time.perf_counter() - started)


def two_workers(work: Path, options: list[str]) -> dict[str, object]:
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    processes = []
    started = time.perf_counter()
    for index in (0, 1):
        config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(config)}
        argv = [cnnx(), "train", "--strategy", "multiworker", *options]
        argv += ["--out", str(work / f"worker{index}")]
        processes.append(
            subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        )
    codes = [p.wait() for p in processes]
    wall = time.perf_counter() - started
    if any(codes):
        errors = [p.stderr.read().decode() if p.stderr else "" for p in processes]
        raise SystemExit(f"two-worker cnnx train failed {codes}: {errors}")
    return summary(work / "worker0", wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, help="shapes images to draw [cnnx's default]")
    parser.add_argument("--epochs", type=int, help="[cnnx's default]")
    args = parser.parse_args()
    options = []
    for flag, value in (("--size", args.size), ("--epochs", args.epochs)):
        options += [flag, str(value)] if value is not None else []
    info = machine_info()
    work = Path(tempfile.mkdtemp(prefix="cnnx-multiworker-bench-"))
    try:
        one = single(work, options)
        two = two_workers(work, options)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    gap = abs(float(two["test_accuracy"]) - float(one["test_accuracy"]))  # type: ignore[arg-type]
    wall = float(two["wall_seconds"])  # type: ignore[arg-type]
    result = {
        "benchmark": "cnnx train: one worker vs two multiworker processes on 127.0.0.1",
        "date": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "machine": info,
        "options": options,
        "single": one,
        "two_workers": two,
        "wall_ratio": round(wall / float(one["wall_seconds"]), 2),  # type: ignore[arg-type]
        "accuracy_gap": round(gap, 4),
        "targets": {"accuracy_gap_max": TARGET_ACCURACY_GAP},
        "meets_targets": gap <= TARGET_ACCURACY_GAP,
    }
    write_result(RESULT, result)
    print(
        f"one worker: {one['wall_seconds']} s, test accuracy {one['test_accuracy']}; "
        f"two workers: {two['wall_seconds']} s (x{result['wall_ratio']}), test accuracy "
        f"{two['test_accuracy']} (gap {gap:.4f}); load at start {info['load_average']}"
    )
    print(f"written to {RESULT.relative_to(ROOT)}")
    if not result["meets_targets"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
