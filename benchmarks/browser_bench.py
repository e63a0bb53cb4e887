"""Benchmark: the browser engines next to native LiteRT, same model, machine and run.

For one artifacts folder (default: the seed CNN, untrained, exported here to TFLite
float32 and int8 and TF.js float32; latency does not depend on the weights) it measures
batch-1 latency on the same preprocessed image, after warm-up:

- native LiteRT (ai-edge-litert, XNNPACK), float32 and int8, 1 and 2 threads;
- TF.js in the web demo page in headless Chromium: wasm (SIMD), webgl (SwiftShader),
  cpu, webgpu (a skipped row where Chromium has no adapter);
- LiteRT.js in the same page: wasm, threaded wasm, webgpu, float32 and int8;
- what limits LiteRT.js (the `limits` record): its compat build (no relaxed SIMD) and its
  threaded build on 1 thread, the same wasm in Node (no browser), and where one page
  prediction's time goes (the awaited model.run, the tensor copies in and out, one
  await, the clock's step).

Browser rows are timed in the page with performance.now() (fine-grained: the server
sends COOP/COEP); each says its engine, backend, build, threads, isolation and GPU (the
WebGPU adapter or WebGL renderer; a software one's figures, SwiftShader's here, are
marked so and never count as the best).
Every row also runs 32 images and records its largest difference from native LiteRT
on the same artifact. Goals, from one run: the best browser float32 p50 at most 1.5x
native LiteRT float32 on 1 thread, the best browser int8 p50 at most 3x native int8.
Figures and the machine go to benchmarks/results/browser.json.

    .venv/bin/python benchmarks/browser_bench.py [ARTIFACTS_DIR] [--runs N]
"""

from __future__ import annotations

import argparse
import dataclasses
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
GOAL_FLOAT32 = 1.5  # best browser float32 p50 / native LiteRT float32 p50 (1 thread)
GOAL_INT8 = 3.0  # best browser int8 p50 / native LiteRT int8 p50 (1 thread)
PARITY_IMAGES = 32


def seed_artifacts(workdir: Path) -> Path:
    """The seed CNN (32x32x3, 10 classes) exported to TFLite and TF.js float32, and int8
    calibrated on 100 generated `shapes` images."""
    from PIL import Image

    from toolkit.data import DataSpec, load_dataset
    from toolkit.export.artifacts import ExportRequest, export
    from toolkit.train.models import build_model

    model = build_model("seed", (32, 32, 3), 10, seed=0)
    path = workdir / "seed.keras"
    model.save(path)
    calibration = workdir / "calibration"
    calibration.mkdir()
    images = load_dataset(DataSpec(kind="shapes", seed=0, size=100, image_size=32)).x_train
    for i, image in enumerate(images[:100]):
        Image.fromarray(np.asarray(image, dtype=np.uint8)).save(calibration / f"{i:03d}.png")
    out = workdir / "artifacts"
    for to, quantize in (("tflite", "none"), ("tflite", "int8"), ("tfjs", "none")):
        data = calibration if quantize == "int8" else None
        request = ExportRequest(model=path, to=to, quantize=quantize, out=out, samples=0)
        export(dataclasses.replace(request, calibration_data=data))
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


class Bench:
    """One artifacts folder, one image, one set of reference outputs: rows, one by one."""

    def __init__(self, folder: Path, runs: int, warmup: int) -> None:
        from toolkit.manifest import load_manifest

        self.manifest = load_manifest(folder)
        rng = np.random.default_rng(0)
        pixels = rng.integers(0, 256, (PARITY_IMAGES, *self.manifest.input.shape))
        self.images = self.manifest.input.apply(pixels.astype(np.uint8))
        self.x = self.images[:1]
        self.runs, self.warmup = runs, warmup
        self.native: dict[str, np.ndarray] = {}

    def litert(self, artifact: str, threads: int) -> dict[str, Any]:
        from toolkit.runtimes import load

        entry = self.manifest.artifact(artifact)
        with load("litert", self.manifest, entry, threads=threads) as model:
            self.native.setdefault(artifact, model.predict(self.images))
            for _ in range(self.warmup):
                model.predict(self.x)
            samples = []
            for _ in range(self.runs):
                start = time.perf_counter_ns()
                model.predict(self.x)
                samples.append(time.perf_counter_ns() - start)
        return {
            "engine": "LiteRT (native)",
            "runtime": "litert",
            "artifact": artifact,
            "backend": "xnnpack",
            "threads": threads,
        } | stats(samples)

    def in_process(self, runtime: str, artifact: str, backend: str, **options: Any) -> dict:
        """A row of a runtime timed on its own clock (the page, or Node)."""
        from toolkit.errors import CnnxError
        from toolkit.runtimes import RuntimeSkipped, load

        # options (a thread count, the compat build) mark a diagnostic row, never the best.
        row: dict[str, Any] = {"runtime": runtime, "artifact": artifact, "backend": backend}
        row["options"] = options
        try:
            model = load(
                runtime, self.manifest, self.manifest.artifact(artifact), backend=backend, **options
            )
        except RuntimeSkipped as error:
            return row | {"status": "skipped", "reason": error.one_line()}
        except CnnxError as error:
            return row | {"status": "failed", "reason": error.one_line()}
        with model:
            details = model.info.details
            row |= {
                "status": "ok",
                "engine": details.get("engine", "TF.js"),
                "label": model.info.label,
                "device": model.info.device,
                "threads": model.info.threads,
                "init_ms": round(model.info.init_ms, 2),
                **{
                    key: details[key]
                    for key in (
                        "cross_origin_isolated",
                        "wasm_build",
                        "wasm_relaxed_simd",
                        "gpu_name",
                        "gpu_software",
                        "fully_delegated",
                        "chromium",
                    )
                    if key in details
                },
            }
            reference = self.native.get(artifact.replace("tfjs_", "tflite_"))
            if reference is not None:
                row["max_abs_vs_native"] = float(
                    np.abs(model.predict(self.images) - reference).max()
                )
            model.self_timed(self.x, self.warmup)
            row |= stats(model.self_timed(self.x, self.runs) or [])
            if runtime == "litertjs" and backend == "wasm" and not options:
                row["profile"] = model.evaluate("profile", f"window.cnnx.profile({self.runs})")
        return row


def best(rows: list[dict], artifact: str) -> dict | None:
    """The fastest ok browser row on `artifact`, rows on a software GPU left out."""
    usable = [
        r
        for r in rows
        if r["runtime"] in ("browser", "litertjs")
        and r.get("status") == "ok"
        and r["artifact"] == artifact
        and not r.get("gpu_software")
        and not r["options"]
    ]
    return min(usable, key=lambda r: r["p50_ms"]) if usable else None


def limits(rows: list[dict]) -> dict[str, Any]:
    """What the figures say holds LiteRT.js back, each with its numbers."""

    def p50(options: dict[str, Any] | None = None, **match: Any) -> float | None:
        for row in rows:
            if row.get("status", "ok") != "ok" or row.get("options", {}) != (options or {}):
                continue
            if all(row.get(k) == v for k, v in match.items()):
                return float(row["p50_ms"])
        return None

    out: dict[str, Any] = {}
    native = p50(runtime="litert", artifact="tflite_float32", threads=1)
    for artifact in ("tflite_float32", "tflite_int8"):
        out[artifact] = {
            "wasm_p50_ms": p50(runtime="litertjs", artifact=artifact, backend="wasm"),
            "compat_build_no_relaxed_simd_p50_ms": p50(
                {"build": "compat"}, runtime="litertjs", artifact=artifact, backend="wasm"
            ),
            "threaded_build_p50_ms": p50(
                runtime="litertjs", artifact=artifact, backend="wasm-threaded"
            ),
            "threaded_build_1_thread_p50_ms": p50(
                {"threads": 1}, runtime="litertjs", artifact=artifact, backend="wasm-threaded"
            ),
            "node_same_wasm_p50_ms": p50(
                runtime="litertjs-node", artifact=artifact, backend="wasm"
            ),
            "native_litert_x1_p50_ms": p50(runtime="litert", artifact=artifact, threads=1),
        }
    profile = next((r["profile"] for r in rows if "profile" in r), None)
    if profile and native:
        out["page_profile_tflite_float32_ms"] = {
            k: (round(v, 4) if v is not None else None) for k, v in profile.items()
        }
        out["page_overhead_over_native_ms"] = round(profile["total_ms"] - native, 4)
        # The C++ run alone against native invoke: what the wasm kernels cost by themselves.
        if profile.get("compiled_run_ms"):
            out["wasm_compute_over_native"] = round(profile["compiled_run_ms"] / native, 2)
    # Wasm SIMD is 128 bits wide (relaxed SIMD adds fused multiply-add and the like);
    # native XNNPACK picks the widest vectors the CPU has.
    out["native_cpu_simd"] = cpu_simd()
    out["wasm_simd_bits"] = 128
    return out


def cpu_simd() -> str:
    """The widest x86 vector extension this CPU reports (or the machine's name)."""
    try:
        flags = next(
            line.split(":", 1)[1].split()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith(("flags", "Features"))
        )
    except (OSError, StopIteration):
        return "unknown"
    for flag, name in (("avx512f", "AVX-512 (512 bits)"), ("avx2", "AVX2 (256 bits)")):
        if flag in flags:
            return name
    return "asimd (128 bits)" if "asimd" in flags else "SSE (128 bits)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "artifacts", nargs="?", type=Path, help="artifacts folder (default: seed CNN)"
    )
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()

    from toolkit.core.quiet import silence_tensorflow

    silence_tensorflow()
    os.environ.setdefault("TFDF_DISABLE_WELCOME_MESSAGE", "1")
    from toolkit.runtimes import browser

    info = machine_info()
    with tempfile.TemporaryDirectory(prefix="cnnx-browser-bench-") as tmp:
        folder = args.artifacts or seed_artifacts(Path(tmp))
        bench = Bench(folder, args.runs, args.warmup)
        rows = [bench.litert(a, t) for a in ("tflite_float32", "tflite_int8") for t in (1, 2)]
        for backend in ("wasm", "webgl", "cpu", "webgpu"):
            rows.append(bench.in_process("browser", "tfjs_float32", backend))
        for artifact in ("tflite_float32", "tflite_int8"):
            for backend in ("wasm", "wasm-threaded", "webgpu"):
                rows.append(bench.in_process("litertjs", artifact, backend))
            rows.append(bench.in_process("litertjs", artifact, "wasm", build="compat"))
            rows.append(bench.in_process("litertjs", artifact, "wasm-threaded", threads=1))
            for backend in ("wasm", "wasm-threaded"):
                rows.append(bench.in_process("litertjs-node", artifact, backend))
        browser.shutdown()
        manifest = bench.manifest
        sizes = {k: e.size for k, e in manifest.artifacts.items() if k != "savedmodel"}

    native32, native8 = (
        next(
            r for r in rows if r["runtime"] == "litert" and r["artifact"] == a and r["threads"] == 1
        )
        for a in ("tflite_float32", "tflite_int8")
    )
    best32 = min(
        (b for b in (best(rows, "tflite_float32"), best(rows, "tfjs_float32")) if b),
        key=lambda r: r["p50_ms"],
        default=None,
    )
    best8 = best(rows, "tflite_int8")
    ratio32 = round(best32["p50_ms"] / native32["p50_ms"], 2) if best32 else None
    ratio8 = round(best8["p50_ms"] / native8["p50_ms"], 2) if best8 else None
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
        "best_browser_float32": best32 and {k: best32[k] for k in ("label", "artifact", "p50_ms")},
        "best_browser_int8": best8 and {k: best8[k] for k in ("label", "artifact", "p50_ms")},
        "browser_float32_over_native_float32_x1": ratio32,
        "browser_int8_over_native_int8_x1": ratio8,
        "goals": {
            f"best browser float32 p50 <= {GOAL_FLOAT32:g}x LiteRT float32 x1": ratio32 is not None
            and ratio32 <= GOAL_FLOAT32,
            f"best browser int8 p50 <= {GOAL_INT8:g}x LiteRT int8 x1": ratio8 is not None
            and ratio8 <= GOAL_INT8,
        },
        "limits": limits(rows),
    }
    write_result(args.out, result)
    print_table(result)
    return 0 if all(result["goals"].values()) else 1


def print_table(result: dict[str, Any]) -> None:
    print(f"{'row':<44}{'p50 ms':>9}{'p90 ms':>9}{'diff':>9}  notes")
    for row in result["results"]:
        name = f"{row.get('label') or row['runtime'] + '/' + row['backend']} {row['artifact']}"
        if row["runtime"] == "litert":
            name = f"litert x{row['threads']} {row['artifact']}"
        if row.get("options"):
            name += " (" + ", ".join(f"{k} {v}" for k, v in row["options"].items()) + ")"
        if row.get("status", "ok") != "ok":
            print(f"{name:<44}{row['status']}: {row['reason'][:100]}")
            continue
        diff = row.get("max_abs_vs_native")
        notes = []
        if "cross_origin_isolated" in row:
            notes.append("isolated" if row["cross_origin_isolated"] else "NOT isolated")
        if row.get("gpu_name"):
            soft = " (software)" if row.get("gpu_software") else ""
            notes.append(f"gpu {row['gpu_name']}{soft}")
        print(
            f"{name:<44}{row['p50_ms']:>9.3f}{row['p90_ms']:>9.3f}"
            f"{'' if diff is None else f'{diff:.1e}':>9}  {', '.join(notes)}"
        )
    for key in ("best_browser_float32", "best_browser_int8"):
        print(f"{key}: {result[key]}")
    print(
        f"browser/native float32 = {result['browser_float32_over_native_float32_x1']}x, "
        f"int8 = {result['browser_int8_over_native_int8_x1']}x"
    )
    for goal, met in result["goals"].items():
        print(f"goal {goal}: {'met' if met else 'NOT met'}")
    print(f"limits: {result['limits']}")


if __name__ == "__main__":
    raise SystemExit(main())
