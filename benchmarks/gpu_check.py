"""GPU check: every GPU path of cnnx, really run, in one prepared run of at most 8 minutes.

On a machine with an NVIDIA GPU it installs what it lacks (`--install`: Debian's
libvulkan1 and chromium, and the `gpu` extra, TensorFlow's CUDA build), exports the seed
CNN (untrained: latency and parity do not need trained weights) to the artifacts it
runs, and runs `cnnx bench --device gpu` in TensorFlow (the SavedModel on the GPU),
LiteRT (CPU, the baseline), litert-gpu (LiteRT's GPU accelerator on the Vulkan adapter
Dawn selects) and Chromium (TF.js webgl/webgpu, LiteRT.js webgpu) launched with its
hardware GPU flags (CNNX_CHROMIUM_GPU=1). Each bench row holds verify's parity and
checks beside its latency, so no separate verify runs the same rows again.

It writes benchmarks/results/gpu.json: the machine record (with nvidia-smi's GPU and
driver), what LiteRT's accelerator sees, every bench row (label, status, device,
adapter, parity, p50/p90/p99) and the seconds of each step. Without a GPU it
runs the same steps: TensorFlow on the CPU (its GPU rows skipped with the reason),
litert-gpu and the browser's GPU backends on SwiftShader (rows `@swiftshader`, never a
speed figure); the test suite runs it so (tests/test_gpu_check.py).

    .venv/bin/python benchmarks/gpu_check.py [--install] [--out FILE] [--budget 480]
        [--artifacts savedmodel,tflite_float16]
"""

from __future__ import annotations

import argparse
import json
import os
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

RESULT = ROOT / "benchmarks" / "results" / "gpu.json"
BUDGET_S = 480.0  # 8 minutes, installs included
ARTIFACTS = "savedmodel,tflite_float32,tflite_float16,tflite_int8,tfjs_float32"
NATIVE = "tf,litert,litert-gpu"
BROWSER = "browser,litertjs"
BACKENDS = "webgl,webgpu"
EVAL_IMAGES = 200  # generated `shapes` pictures: calibration and the evaluation split
LIB_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib")


class Budget:
    """Seconds left of the run; each step gets what remains, and says how long it took."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds
        self.steps: dict[str, float] = {}

    def left(self) -> float:
        return max(1.0, self.end - time.monotonic())

    def run(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Any:
        start = time.monotonic()
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=self.left(),
                env={**os.environ, **(env or {})},
                cwd=ROOT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            self.steps[name] = round(time.monotonic() - start, 1)
            return None
        self.steps[name] = round(time.monotonic() - start, 1)
        return done


def nvidia_gpus() -> list[str]:
    """nvidia-smi's 'name, driver, memory' per GPU; [] where there is none."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    query = "--query-gpu=name,driver_version,memory.total"
    done = subprocess.run([smi, query, "--format=csv,noheader"], capture_output=True, text=True)
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


def install(budget: Budget, gpus: list[str]) -> dict[str, Any]:
    """What a fresh GPU machine lacks: Debian's Vulkan loader and Chromium, and
    TensorFlow's CUDA build (the `gpu` extra) where nvidia-smi sees a GPU."""
    done: dict[str, Any] = {}
    needed = (("libvulkan1", "libvulkan.so.1"), ("chromium", "chromium"))
    missing = [
        package
        for package, file in needed
        if not (shutil.which(file) or any(Path(d, file).exists() for d in LIB_DIRS))
    ]
    if missing and shutil.which("apt-get"):
        apt = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]
        result = budget.run("apt", ["sh", "-c", f"apt-get update -qq && {' '.join(apt)}"])
        done["apt"] = {"packages": missing, "ok": bool(result and result.returncode == 0)}
    if gpus:
        pip = [sys.executable, "-m", "pip", "install", "-q", "-c", "requirements.lock"]
        result = budget.run("pip", [*pip, "-e", ".[gpu]"])
        done["pip"] = {"extra": "gpu", "ok": bool(result and result.returncode == 0)}
    return done


def export_seed(budget: Budget, workdir: Path) -> Path:
    """The untrained seed CNN exported to the ARTIFACTS (the TFLite files and TF.js
    float32, not every format), calibrated and evaluated on EVAL_IMAGES generated
    `shapes` pictures (class folders)."""
    script = f"""
import numpy as np
from pathlib import Path
from PIL import Image
from toolkit.data import DataSpec, load_dataset
from toolkit.export.artifacts import ExportRequest, export
from toolkit.train.models import build_model
work = Path({str(workdir)!r})
data = load_dataset(DataSpec(kind="shapes", seed=0, size={EVAL_IMAGES}, image_size=32))
for i, (image, label) in enumerate(zip(data.x_train, data.y_train)):
    folder = work / "pictures" / data.class_names[int(label)]
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(folder / f"{{i:03d}}.png")
build_model("seed", (32, 32, 3), len(data.class_names), seed=0).save(work / "seed.keras")
for to, tfjs in (("tflite", None), ("tfjs", "float32")):
    export(ExportRequest(model=work / "seed.keras", to=to, tfjs_quantize=tfjs,
                         out=work / "artifacts", data=work / "pictures", calibration_check=False))
"""
    done = budget.run("export", [sys.executable, "-c", script])
    if done is None or done.returncode != 0:
        why = "timed out" if done is None else done.stderr.strip().splitlines()[-1:]
        raise SystemExit(f"gpu_check: the export failed: {why}")
    return workdir / "artifacts"


def cnnx(budget: Budget, name: str, args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """One cnnx command with --json: its exit code and the rows it reported."""
    done = budget.run(name, [sys.executable, "-m", "toolkit", *args, "--json"], env)
    if done is None:
        return {"exit_code": None, "error": "timed out", "rows": []}
    try:
        report = json.loads(done.stdout)
    except ValueError:
        return {"exit_code": done.returncode, "error": done.stderr.strip()[-400:], "rows": []}
    return {"exit_code": done.returncode, "rows": [summary(r) for r in report["rows"]]}


def summary(row: dict[str, Any]) -> dict[str, Any]:
    """What the record keeps of a row: where it ran, what it gave, how fast."""
    info = row.get("runtime_info") or {}
    details = info.get("details") or {}
    latency = row.get("latency") or {}
    metrics = row.get("metrics") or {}
    return {
        "artifact": row["artifact"],
        "label": row["label"],
        "status": row["status"],
        "reason": row.get("reason", ""),
        "device": info.get("device"),
        "gpu": details.get("gpu_name") or details.get("gpus"),
        "software_gpu": details.get("gpu_software"),
        "fully_accelerated": details.get("fully_accelerated"),
        "cpu_ops": details.get("cpu_ops"),
        "precision": details.get("precision"),
        "agreement": metrics.get("agreement"),
        "max_abs": metrics.get("max_abs"),
        **{k: latency.get(k) for k in ("p50", "p90", "p99") if latency},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--install", action="store_true", help="install what is missing first")
    parser.add_argument("--out", type=Path, default=RESULT, help="the record (JSON)")
    parser.add_argument("--budget", type=float, default=BUDGET_S, help="seconds for it all")
    parser.add_argument("--runs", type=int, default=30, help="timed runs per bench row")
    parser.add_argument(
        "--limit", type=int, default=None, help="compare on the first N evaluation images only"
    )
    parser.add_argument(
        "--artifacts",
        default=ARTIFACTS,
        help=f"the artifacts to bench, comma-separated: a subset of {ARTIFACTS} (all of them)",
    )
    args = parser.parse_args(argv)
    unknown = set(args.artifacts.split(",")) - set(ARTIFACTS.split(","))
    if unknown:
        parser.error(f"--artifacts: not one of {ARTIFACTS}: {','.join(sorted(unknown))}")
    budget = Budget(args.budget)
    gpus = nvidia_gpus()
    installed = install(budget, gpus) if args.install else {}
    probe = budget.run("litert-gpu probe", [sys.executable, "-m", "toolkit.runtimes.litert_gpu"])
    seen = json.loads(probe.stdout.splitlines()[-1]) if probe and probe.returncode == 0 else None
    # Chromium's hardware GPU flags only where there is a GPU to use.
    env = {"CNNX_CHROMIUM_GPU": "1"} if gpus else {}
    with tempfile.TemporaryDirectory(prefix="cnnx-gpu-check-") as work:
        artifacts = str(export_seed(budget, Path(work)))
        bench = cnnx(
            budget,
            "bench",
            ["bench", artifacts, "-r", f"{NATIVE},{BROWSER}", "--backends", BACKENDS,
             "-a", args.artifacts, "--device", "gpu", "--runs", str(args.runs), "--warmup", "3",
             "--no-plots", "--out", str(Path(work) / "report"),
             *(["--limit", str(args.limit)] if args.limit else [])],
            env,
        )  # fmt: skip
    record = {
        "machine": {**machine_info(), "nvidia_gpus": gpus},
        "litert_gpu": seen,
        "installed": installed,
        "bench": bench,
        "seconds": budget.steps,
        "total_seconds": round(sum(budget.steps.values()), 1),
        "budget_seconds": args.budget,
    }
    write_result(args.out, record)
    ran = [r for r in bench["rows"] if r["status"] not in ("skipped", "failed")]
    print(f"gpu_check: {len(ran)} rows ran; record in {args.out} ({record['total_seconds']} s)")
    for row in bench["rows"]:
        p50 = f" p50 {row['p50']:.3f} ms" if row.get("p50") else ""
        print(f"  {row['artifact']:<15} {row['label']:<28} {row['status']}{p50} {row['reason']}")
    return 0 if ran else 1


if __name__ == "__main__":
    raise SystemExit(main())
