"""Benchmark: `cnnx verify` on a realistic model and a few hundred pictures, per runtime.

A keras.applications MobileNetV2 (alpha 0.35, 224x224, random weights, 4 classes) is
exported with `cnnx export` (the pictures calibrate int8), then `cnnx verify --data`
runs on the same N pictures once per runtime, each in its own process, timed from the
outside: wall, user and system seconds of cnnx and its children (Node, Chromium), and
each row's status and seconds from the report. The JavaScript runtimes get their
pictures in chunks (toolkit/runtimes/tfjs_shared.py); a row that is slow in system time
or fails on a time limit shows it here. Records to benchmarks/results/tfjs_scale.json
with the machine.

    .venv/bin/python benchmarks/tfjs_scale_bench.py [--pictures 240] [--runtimes ...]
        [--artifacts savedmodel,tflite_float32,...] [--backends wasm] [--work DIR] [--keep]

--work keeps the model, pictures and artifacts between runs (exported once); --keep
keeps the recorded figures of the runtimes not run this time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.machine import machine_info, write_result  # noqa: E402

RESULT = ROOT / "benchmarks" / "results" / "tfjs_scale.json"
RUNTIMES = ("tfjs-node", "browser", "litertjs", "litertjs-node", "tf", "litert")
JS_RUNTIMES = ("tfjs-node", "browser", "litertjs", "litertjs-node")
ARTIFACTS = ("savedmodel", "tflite_float32", "tflite_int8", "tfjs_float32", "tfjs_uint8")
CLASSES = 4
SIZE = 224
ALPHA = 0.35


def cnnx() -> str:
    return str(Path(sys.executable).with_name("cnnx"))


def build_model(path: Path) -> None:
    import keras

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(
        input_shape=(SIZE, SIZE, 3), alpha=ALPHA, weights=None, classes=CLASSES
    )
    model.save(path)


def write_pictures(folder: Path, count: int) -> None:
    """`count` seeded noise JPEGs at 224x224 in class folders 0..3."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for index in range(count):
        klass = folder / str(index % CLASSES)
        klass.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(klass / f"{index:04d}.jpg", quality=90)


def timed(command: list[str]) -> dict[str, Any]:
    """Run `command`; its wall, user and system seconds (with its children), exit code
    and stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "exit_code": done.returncode,
        "wall_s": round(wall, 2),
        "user_s": round(after.ru_utime - before.ru_utime, 2),
        "sys_s": round(after.ru_stime - before.ru_stime, 2),
        "stderr_tail": done.stderr.strip().splitlines()[-1:] if done.returncode else [],
        "stdout": done.stdout,
    }


def prepare(work: Path, pictures: int) -> tuple[Path, Path, float | None]:
    """The artifacts folder and the pictures, made if missing; the export's seconds."""
    model, images, artifacts = work / "mobilenet_v2.keras", work / "pictures", work / "artifacts"
    if not model.exists():
        build_model(model)
    if len(list(images.glob("*/*.jpg"))) != pictures:
        shutil.rmtree(images, ignore_errors=True)
        write_pictures(images, pictures)
    export_s = None
    if not (artifacts / "manifest.json").exists():
        command = [cnnx(), "export", "--model", str(model), "--to", "all", "--data", str(images)]
        command += ["--preprocess", "symmetric", "--out", str(artifacts)]
        result = timed(command)
        if result["exit_code"]:
            raise SystemExit(f"export failed: {result['stderr_tail']}")
        export_s = result["wall_s"]
    return artifacts, images, export_s


def verify_runtime(
    artifacts: Path, images: Path, runtime: str, ids: tuple[str, ...], pictures: int, backends: str
) -> dict[str, Any]:
    command = [cnnx(), "verify", str(artifacts), "--runtimes", runtime, "--data", str(images)]
    command += ["--artifacts", ",".join(ids), "--limit", str(pictures), "--json"]
    # Random weights on noise pictures score at chance: that is the model, not a fault.
    command += ["--min-reference-accuracy", "0"]
    if backends and runtime in JS_RUNTIMES:
        command += ["--backends", backends]
    result = timed(command)
    stdout = result.pop("stdout")
    rows = []
    if stdout.strip():
        for row in json.loads(stdout).get("rows", []):
            rows.append(
                {
                    "row": f"{row['artifact']} on {row['label']}",
                    "status": row["status"],
                    "seconds": round(float(row.get("seconds") or 0), 2),
                    "ms_per_picture": round(float(row.get("seconds") or 0) * 1e3 / pictures, 1),
                    "reason": row.get("reason"),
                }
            )
    when = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return {"runtime": runtime, "date": when, "artifacts": list(ids), **result, "rows": rows}


def kept(pictures: int, rerun: list[str]) -> list[dict[str, Any]]:
    """The recorded runtimes that are not run again, from a record of as many pictures."""
    if not RESULT.exists():
        return []
    record = json.loads(RESULT.read_text())
    if record.get("pictures") != pictures:
        return []
    return [run for run in record.get("runtimes", []) if run["runtime"] not in rerun]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pictures", type=int, default=240)
    parser.add_argument("--runtimes", default=",".join(RUNTIMES))
    parser.add_argument("--artifacts", default=",".join(ARTIFACTS))
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--backends", default="", help="JavaScript runtimes' backends only")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the recorded figures of runtimes not run now (same pictures and artifacts)",
    )
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="cnnx-tfjs-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    artifacts, images, export_s = prepare(work, args.pictures)
    ids = tuple(args.artifacts.split(","))
    runs: list[dict[str, Any]] = kept(args.pictures, args.runtimes.split(",")) if args.keep else []
    record = {
        "benchmark": "cnnx verify per runtime: MobileNetV2 alpha 0.35, 224x224, random weights",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "pictures": args.pictures,
        "artifacts": list(ids),
        "export_s": export_s,
        "runtimes": runs,
    }
    for runtime in args.runtimes.split(","):
        entry = verify_runtime(artifacts, images, runtime, ids, args.pictures, args.backends)
        runs.append(entry)
        write_result(RESULT, record)  # after each runtime: a long run keeps what it measured
        print(
            f"{runtime:14} wall {entry['wall_s']:7.1f} s  user {entry['user_s']:6.1f}  "
            f"sys {entry['sys_s']:6.1f}  exit {entry['exit_code']}",
            flush=True,
        )
        for row in entry["rows"]:
            print(f"    {row['row']:44} {row['status']:8} {row['seconds']:7.1f} s", flush=True)
    print(f"recorded to {RESULT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
