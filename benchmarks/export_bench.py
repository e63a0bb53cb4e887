"""Benchmark: `cnnx export --to all` of a trained seed CNN, and what int8 costs.

Imports TensorFlow, the TF.js converter and LiteRT first (timed apart), then times the
export of every format into a fresh folder (the figure the target applies to), and
measures the int8 model against the SavedModel on the run's whole test split: top-1
agreement, accuracy drop, size against float32, and whether it is integer throughout.
Records it with the machine to benchmarks/results/export.json and prints it.

Targets: export of all formats <= 20 s after import; int8 >= 98% agreement, <= 1 point
of accuracy lost, <= 0.3x the float32 file, weights and activations int8.

    .venv/bin/python benchmarks/export_bench.py [--model RUN] [--repeat N]

Without --model it uses the last run under ./runs, or trains one with `cnnx train`
(the defaults: shapes, seed CNN) in a temporary folder.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.machine import machine_info, write_result  # noqa: E402

RESULT = ROOT / "benchmarks" / "results" / "export.json"
TARGET_EXPORT_SECONDS = 20.0
TARGET_AGREEMENT = 0.98
TARGET_ACCURACY_DROP = 0.01
TARGET_SIZE_RATIO = 0.3


def find_run(given: Path | None, scratch: Path) -> Path:
    if given is not None:
        return given
    from toolkit.core.locate import last_run
    from toolkit.errors import PathError

    try:
        return last_run()
    except PathError:
        out = scratch / "run"
        cli = [str(Path(sys.executable).with_name("cnnx")), "train", "--out", str(out)]
        print("no run under ./runs: training one with cnnx train ...", flush=True)
        subprocess.run(cli, check=True, capture_output=True)
        return out


def timed_imports() -> float:
    started = time.perf_counter()
    from toolkit.core.quiet import silence_tensorflow

    silence_tensorflow()
    from exporters.quiet import silenced
    from exporters.tfjs import load_converter

    with silenced():
        import tensorflow  # noqa: F401
        from ai_edge_litert.interpreter import Interpreter  # noqa: F401
    load_converter()
    return time.perf_counter() - started


def int8_quality(folder: Path) -> dict[str, object]:
    import numpy as np

    from exporters.savedmodel import load_pivot, predict
    from exporters.tflite import predict_tflite
    from exporters.tflite_inspect import inspect_tflite
    from toolkit.data import DataSpec, load_dataset
    from toolkit.manifest import load_manifest

    manifest = load_manifest(folder)
    assert manifest.eval_data is not None, "the run names no dataset"
    data = load_dataset(DataSpec.from_dict(manifest.eval_data))
    x, y = manifest.input.apply(data.x_test), data.y_test
    reference = predict(load_pivot(manifest.artifact_path(manifest.artifact("savedmodel"))), x)
    entry = manifest.artifact("tflite_int8")
    content = manifest.artifact_path(entry).read_bytes()
    got = predict_tflite(content, x)
    report = inspect_tflite(content)
    float32 = manifest.artifact("tflite_float32")
    ref_top1, top1 = reference.argmax(1), got.argmax(1)
    return {
        "test_images": len(y),
        "savedmodel_accuracy": round(float(np.mean(ref_top1 == y)), 4),
        "int8_accuracy": round(float(np.mean(top1 == y)), 4),
        "accuracy_drop": round(float(np.mean(ref_top1 == y) - np.mean(top1 == y)), 4),
        "agreement": round(float(np.mean(top1 == ref_top1)), 4),
        "max_abs_error": round(float(np.max(np.abs(got - reference))), 4),
        "int8_bytes": entry.size,
        "float32_bytes": float32.size,
        "size_ratio": round(entry.size / float32.size, 3),
        "fully_integer": report.fully_integer,
        "weight_dtypes": report.weight_dtypes,
        "io": [report.inputs[0]["dtype"], report.outputs[0]["dtype"]],
        "calibration_images": entry.details["calibration"]["count"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="run folder (default: last under ./runs)")
    parser.add_argument("--repeat", type=int, default=3, help="exports to time (median counts)")
    args = parser.parse_args()
    info = machine_info()  # before the work: the load average at the start
    scratch = Path(tempfile.mkdtemp(prefix="cnnx-export-bench-"))
    try:
        run = find_run(args.model, scratch)
        import_seconds = timed_imports()
        from toolkit.export.artifacts import ExportRequest, export, versions

        times = []
        for n in range(args.repeat):
            out = scratch / f"artifacts-{n}"
            started = time.perf_counter()
            manifest = export(ExportRequest(model=run, to="all", out=out))
            times.append(round(time.perf_counter() - started, 2))
        quality = int8_quality(out)
        sizes = {key: entry.size for key, entry in sorted(manifest.artifacts.items())}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    median = sorted(times)[len(times) // 2]
    meets = {
        "export_seconds": median <= TARGET_EXPORT_SECONDS,
        "agreement": quality["agreement"] >= TARGET_AGREEMENT,  # type: ignore[operator]
        "accuracy_drop": quality["accuracy_drop"] <= TARGET_ACCURACY_DROP,  # type: ignore[operator]
        "size_ratio": quality["size_ratio"] <= TARGET_SIZE_RATIO,  # type: ignore[operator]
        "fully_integer": bool(quality["fully_integer"]),
    }
    result = {
        "benchmark": "cnnx export --to all (every format) of a trained seed CNN",
        "date": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "machine": info,
        "versions": versions(),
        "model": {"run": str(run), "input": manifest.input.to_dict(), "source": manifest.source},
        "import_seconds": round(import_seconds, 2),
        "export_seconds": times,
        "export_seconds_median": median,
        "artifact_bytes": sizes,
        "int8": quality,
        "targets": {
            "export_seconds_max": TARGET_EXPORT_SECONDS,
            "agreement_min": TARGET_AGREEMENT,
            "accuracy_drop_max": TARGET_ACCURACY_DROP,
            "size_ratio_max": TARGET_SIZE_RATIO,
        },
        "meets_targets": meets,
        "note": "export time is after TensorFlow, the TF.js converter and LiteRT are imported",
    }
    write_result(RESULT, result)
    print(
        f"cnnx export --to all: {median:.1f} s median of {times} (target <= "
        f"{TARGET_EXPORT_SECONDS:.0f} s) after {import_seconds:.1f} s of imports, on "
        f"{info['cores']} cores ({info['cpu']}), load at start {info['load_average']}"
    )
    print(
        f"int8: agreement {quality['agreement']:.2%}, accuracy {quality['savedmodel_accuracy']:.2%}"
        f" -> {quality['int8_accuracy']:.2%}, {quality['size_ratio']}x the float32 file, "
        f"fully integer {quality['fully_integer']}"
    )
    print(f"written to {RESULT.relative_to(ROOT)}")
    if not all(meets.values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
