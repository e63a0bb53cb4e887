"""Benchmark: what `cnnx export --gpu-answer` costs, per TFLite file and per export.

For each .tflite of an artifacts folder it times `ask_in_child([file])` (a child process
starting, LiteRT's GPU accelerator compiling the file on the Vulkan adapter it finds,
four seeded inputs run against LiteRT's CPU interpreter), then `ask_in_child(all files)`,
what one export of them pays. Medians of --repeat runs, with the adapter and the
machine, in benchmarks/results/gpu_answer.json. The figures decided that the answer is
asked for (`--gpu-answer`) rather than asked on every export.

    .venv/bin/python benchmarks/gpu_answer_bench.py ARTIFACTS [--repeat 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.machine import machine_info, write_result  # noqa: E402

RESULT = ROOT / "benchmarks" / "results" / "gpu_answer.json"


def timed(paths: list[Path], repeat: int) -> tuple[float, str]:
    """The median seconds of asking about `paths` in one child, and the first answer."""
    from toolkit.measure.gpu_answer import ask_in_child

    seconds, summary = [], ""
    for _ in range(repeat):
        start = time.perf_counter()
        answers = ask_in_child(paths)
        seconds.append(time.perf_counter() - start)
        summary = answers[0].summary()
    return statistics.median(seconds), summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("artifacts", type=Path, help="an artifacts folder with TFLite files")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median)")
    args = parser.parse_args()
    from toolkit.manifest import load_manifest

    manifest = load_manifest(args.artifacts)
    files = {
        key: manifest.artifact_path(entry)
        for key, entry in sorted(manifest.artifacts.items())
        if entry.format == "tflite"
    }
    per_file = {}
    for key, path in files.items():
        seconds, summary = timed([path], args.repeat)
        per_file[key] = {"size": path.stat().st_size, "seconds": round(seconds, 2)}
        print(f"{key:16} {seconds:6.2f} s  {summary}")
    together, _ = timed(list(files.values()), args.repeat)
    print(f"{len(files)} files in one child: {together:.2f} s (median of {args.repeat})")
    write_result(
        RESULT,
        {
            "benchmark": "gpu_answer",
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": machine_info(),
            "artifacts": str(args.artifacts),
            "input": list(manifest.input.shape),
            "repeat": args.repeat,
            "per_file_seconds": per_file,
            "all_files_seconds": round(together, 2),
        },
    )
    print(f"written: {RESULT}")


if __name__ == "__main__":
    main()
