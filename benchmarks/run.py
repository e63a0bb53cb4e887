"""Run every benchmark suite, one after another, on one machine in one go.

    .venv/bin/python benchmarks/run.py [--work DIR]

Order: the bench suite runs `cnnx demo` into WORK (default ./cnnx-demo) and measures its
artifacts; the export, browser and ONNX benchmarks reuse that run and those artifacts; the
train benchmark times a default `cnnx train`, and the multiworker one one worker against
two, last. Each script prints its figures and writes benchmarks/results/*.json with the
machine it ran on. Quote figures from one run:
the machine may be shared and noisy.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("cnnx-demo"), help="demo work folder")
    args = parser.parse_args()
    work = args.work.resolve()
    suites = [
        ["bench_suite.py", "--work", str(work)],
        ["export_bench.py", "--model", "LAST_RUN"],
        ["browser_bench.py", str(work / "artifacts")],
        ["onnx_bench.py", "--work", str(work), "--skip-demo"],
        ["train_bench.py"],
        ["multiworker_bench.py"],
    ]
    failed = []
    for script, *options in suites:
        if "LAST_RUN" in options:
            runs = sorted((work / "runs").glob("*/run.json"), key=lambda p: p.stat().st_mtime)
            options = [str(runs[-1].parent) if o == "LAST_RUN" else o for o in options]
        print(f"== {script} {' '.join(options)}", flush=True)
        done = subprocess.run([sys.executable, str(HERE / script), *options], check=False)
        if done.returncode != 0:
            failed.append(script)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
