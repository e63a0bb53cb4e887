"""Benchmark: the three families side by side on the seed CNN, through `cnnx bench`.

TFLite on LiteRT, TF.js, and ONNX on ONNX Runtime, native and in the same Chromium page
(LiteRT.js, TF.js, ONNX Runtime Web), on the artifacts of `cnnx demo` (the default-
trained seed CNN, every format exported). One `cnnx bench` run measures every row on the
same preprocessed images, after warm-up, at one thread (native) and on the wasm
backends (browser): size, batch-1 p50, first inference, memory, agreement with the
SavedModel and accuracy. Figures and the machine go to benchmarks/results/onnx.json,
with the ratios the README quotes: ONNX Runtime against LiteRT (native, float32 and
int8) and ONNX Runtime Web against LiteRT.js (wasm, float32).

    .venv/bin/python benchmarks/onnx_bench.py [--work DIR] [--skip-demo] [--runs N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.machine import machine_info, write_result  # noqa: E402

RESULT = ROOT / "benchmarks" / "results" / "onnx.json"
CNNX = ROOT / ".venv" / "bin" / "cnnx"
RUNTIMES = "litert,onnxruntime,litertjs,browser,onnxruntime-web"
ARTIFACTS = "tflite_float32,tflite_int8,tfjs_float32,onnx_float32,onnx_float16,onnx_int8"
BACKENDS = "wasm"  # one thread in the page, as native runs at --threads 1


def cnnx(*args: str) -> subprocess.CompletedProcess[str]:
    command = [str(CNNX if CNNX.exists() else "cnnx"), *args]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def p50(rows: dict[str, dict[str, Any]], artifact: str, label: str) -> float | None:
    row = rows.get(f"{artifact} {label}")
    return row["p50_ms"] if row else None


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("cnnx-demo"))
    parser.add_argument("--skip-demo", action="store_true", help="reuse --work's artifacts")
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    if not args.skip_demo:
        done = cnnx("demo", "--out", str(args.work))
        if done.returncode != 0:
            print(done.stdout[-2000:], done.stderr[-2000:], sep="\n")
            return done.returncode
    artifacts = args.work / "artifacts"
    with tempfile.TemporaryDirectory(prefix="cnnx-onnx-bench-") as out:
        bench_args = [
            "bench", str(artifacts), "--runtimes", RUNTIMES, "--artifacts", ARTIFACTS,
            "--threads", "1", "--backends", BACKENDS, "--runs", str(args.runs),
            "--warmup", "20", "--no-plots", "--out", out,
        ]  # fmt: skip
        done = cnnx(*bench_args)
        if done.returncode != 0:
            print(done.stdout[-3000:], done.stderr[-2000:], sep="\n")
            return done.returncode
        report = json.loads((Path(out) / "report.json").read_text())
    rows: dict[str, dict[str, Any]] = {}
    for row in report["rows"]:
        rows[f"{row['artifact']} {row['label']}"] = {
            "artifact": row["artifact"],
            "label": row["label"],
            "size": row["size"],
            "p50_ms": row["latency"]["p50"] if row.get("latency") else None,
            "first_ms": row.get("first_ms"),
            "memory_bytes": (row.get("memory") or {}).get("bytes"),
            "agreement": (row.get("metrics") or {}).get("agreement"),
            "accuracy": (row.get("metrics") or {}).get("accuracy"),
            "status": row["status"],
        }
    record = {
        "machine": machine_info(),
        "command": "cnnx " + " ".join([*bench_args[:1], "ARTIFACTS", *bench_args[2:-2]]),
        "rows": list(rows.values()),
        "ratios": {
            "onnxruntime_vs_litert_float32": ratio(
                p50(rows, "onnx_float32", "onnxruntime x1"),
                p50(rows, "tflite_float32", "litert x1"),
            ),
            "onnxruntime_vs_litert_int8": ratio(
                p50(rows, "onnx_int8", "onnxruntime x1"), p50(rows, "tflite_int8", "litert x1")
            ),
            "onnxruntime_web_vs_litertjs_float32": ratio(
                p50(rows, "onnx_float32", "onnxruntime-web/wasm x1"),
                p50(rows, "tflite_float32", "litertjs/wasm x1"),
            ),
        },
        "recommendation": report.get("recommendation", {}).get("sentence"),
    }
    write_result(RESULT, record)
    for row in record["rows"]:
        print(
            f"{row['artifact']:<15} {row['label']:<26} {row['size'] / 1024:8.1f} KB "
            f"p50 {row['p50_ms'] or float('nan'):8.3f} ms  first {row['first_ms'] or 0:8.1f} ms  "
            f"agree {row['agreement'] or 0:.3f}  acc {row['accuracy'] or 0:.3f}  {row['status']}"
        )
    print(json.dumps(record["ratios"]), record["recommendation"], sep="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
