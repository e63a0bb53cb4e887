"""Benchmark: the browser engines next to native LiteRT, same model, machine and run.

For one artifacts folder (default: the seed CNN, untrained, exported here to TFLite
float32 and int8 and TF.js float32; latency does not depend on the weights) it measures
batch-1 latency on the same preprocessed image, after warm-up:

- native LiteRT (ai-edge-litert, XNNPACK), float32 and int8, 1 and 2 threads, timed as
  `cnnx bench` times it (invoke() alone, pre_ms/post_ms apart);
- TF.js in the web demo page in headless Chromium: wasm (SIMD), webgl (SwiftShader),
  cpu, webgpu (a skipped row where Chromium has no adapter), and TF.js wasm in Node;
- LiteRT.js in the same page: wasm, threaded wasm, webgpu (its JSPI build), float32 and
  int8, and the same wasm builds in Node;
- what limits LiteRT.js (the `limits` record): its compat build (no relaxed SIMD) and its
  threaded build on 1 thread, the same wasm in Node (no browser), and where one page
  prediction's time goes (the awaited model.run, the tensor copies in and out, one
  await, the clock's step).

JavaScript rows are timed as `cnnx bench` times them, by the runtime's `self_timed`
(web_demo/timed_loop.js: the engine's run alone on a ready input, in blocks long enough
for the page's coarse clock, with pre_ms and post_ms apart). Beside each row of
LiteRT.js (every build) and TF.js wasm, in the page and in Node, a bare run loop
written apart from that code (BARE_PAGE_LOOP here, benchmarks/bare_loop.mjs in Node)
runs on the same engine, build and threads, the two alternating in ROUNDS paired rounds
of the same run (more, up to MAX_ROUNDS, for a row whose rounds spread, until the
median is known to +-INTERVAL_GOAL); `harness_vs_bare` gives each row's median, over the
rounds, of its p50 over the bare loop's p50 in the same round, with its 95% interval.
Each browser row says its engine, backend, build, threads, isolation and GPU (the
WebGPU adapter or WebGL renderer; a software one's figures, SwiftShader's here, are
marked so and never count as the best).
Every row also runs 32 images and records its largest difference from native LiteRT
on the same artifact. Goals, from one run: the best browser float32 p50 at most 1.5x
native LiteRT float32 on 1 thread, the best browser int8 p50 at most 3x native int8,
every JavaScript row's p50 within 5% of its bare loop.
Figures and the machine go to benchmarks/results/browser.json.

    .venv/bin/python benchmarks/browser_bench.py [ARTIFACTS_DIR] [--runs N] [--note TEXT]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
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


# A bare loop in the page, written apart from web_demo/timed_loop.js: the engine's own
# run on one ready input, back to back in blocks of `block` (the block the engine row
# used, so both take the same statistic), each block timed as a whole.
BARE_PAGE_LOOP = """async ([runs, block]) => {
  const e = window.cnnx.engine();
  let run, drop, done;
  if (e.name === 'litertjs') {
    const size = e.shape.reduce((a, b) => a * b, 1);
    const uint8 = e.io.inputs[0].dtype === 'uint8';
    const values = uint8 ? new Uint8Array(size).fill(128) : new Float32Array(size).fill(0.5);
    const x = new e.litert.Tensor(values, e.shape);
    // On WebGPU the run is over when its result is read.
    run = e.backend === 'webgpu'
      ? async () => { const ys = await e.model.run(x); await ys[0].data(); return ys; }
      : () => e.model.run(x);
    drop = (ys) => ys.forEach((y) => y.delete());
    done = () => x.delete();
  } else {
    const x = e.tf.fill([1, ...e.dims], 0.5);
    run = () => e.model.execute(x);
    drop = (y) => e.tf.dispose(y);
    done = () => x.dispose();
  }
  const awaits = e.name === 'litertjs';
  for (let i = 0; i < 50; i++) drop(awaits ? await run() : run());
  const samples = [];
  for (let n = 0; n < runs; n += block) {
    const ys = [];
    const start = performance.now();
    if (awaits) for (let k = 0; k < block; k++) ys.push(await run());
    else for (let k = 0; k < block; k++) ys.push(run());
    samples.push((performance.now() - start) / block);
    ys.forEach(drop);
  }
  done();
  return samples;
}"""
BARE_NODE_LOOP = ROOT / "benchmarks" / "bare_loop.mjs"
ROUNDS = 20  # engine row and bare loop alternate, so a burst of load falls on both
# More rounds where one row's ratios spread (two wasm threads on two cores lose a core to
# any other thread: single rounds differ by +-40%): rounds are added until the median's
# 95% bootstrap interval is INTERVAL_GOAL wide on either side, or MAX_ROUNDS are done.
MAX_ROUNDS = 100
INTERVAL_GOAL = 0.02
ROUND_SECONDS = 0.5  # runs per round: as many as fit (at most --runs, at least MIN_RUNS)
MIN_RUNS = 30
BARE_GOAL = 0.05  # every JavaScript row's p50 within 5% of its bare loop's


def stats(samples_ns: list[int], runs: int | None = None) -> dict[str, float]:
    ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
    return {
        "runs": runs if runs is not None else len(ms),
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
        """Native LiteRT, timed by cnnx bench's harness: invoke() alone, pre/post apart."""
        from toolkit.measure.timing import time_inference
        from toolkit.runtimes import load

        entry = self.manifest.artifact(artifact)
        with load("litert", self.manifest, entry, threads=threads) as model:
            self.native.setdefault(artifact, model.predict(self.images))
            samples, pre, post = time_inference(
                model, self.x, self.runs, self.warmup, time.perf_counter_ns
            )
        return (
            {
                "engine": "LiteRT (native)",
                "runtime": "litert",
                "artifact": artifact,
                "backend": "xnnpack",
                "threads": threads,
            }
            | stats(samples)
            | medians(pre, post)
        )

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
                        "node_flags",
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
            bare = not options and backend in BARE_BACKENDS[runtime]
            row |= self.timed(model, runtime, artifact, bare)
            if runtime == "litertjs" and backend == "wasm" and not options:
                row["profile"] = model.evaluate("profile", f"window.cnnx.profile({self.runs})")
        return row

    def timed(self, model: Any, runtime: str, artifact: str, bare: bool) -> dict[str, Any]:
        """The row's figures as `cnnx bench` takes them (the runtime's self_timed: the
        engine's run alone, pre and post apart) and, with `bare`, a bare run loop of the
        same engine in the same page or a node of its own, in ROUNDS paired rounds."""
        warm = model.self_timed(self.x, max(self.warmup, 10))
        one_run_s = float(np.median(warm.samples)) / 1e9
        runs = int(min(self.runs, max(MIN_RUNS, ROUND_SECONDS / max(one_run_s, 1e-9))))
        parts: list[Any] = []
        bare_rounds: list[list[float]] = []
        with contextlib.ExitStack() as stack:
            loop = stack.enter_context(self.bare_loop(model, runtime, artifact)) if bare else None
            while len(parts) < ROUNDS or (loop is not None and unsettled(parts, bare_rounds)):
                # The bare loop goes first in every other round (with the block the row
                # used last), so neither half of a pair always follows the other.
                odd = len(parts) % 2
                if loop is not None and odd:
                    bare_rounds.append(loop(runs, parts[-1].block))
                parts.append(model.self_timed(self.x, runs))
                if loop is not None and not odd:
                    bare_rounds.append(loop(runs, parts[-1].block))
        samples = [ns for part in parts for ns in part.samples]
        out = stats(samples, sum(p.runs for p in parts)) | {
            "block": max(p.block for p in parts),
            "timer_step_us": round(max(p.clock_step_ns for p in parts) / 1e3, 3),
        }
        out |= medians([n for p in parts for n in p.pre], [n for p in parts for n in p.post])
        if bare_rounds:
            out |= beside_bare([p.samples for p in parts], bare_rounds, runs)
        return out

    @contextlib.contextmanager
    def bare_loop(
        self, model: Any, runtime: str, artifact: str
    ) -> Iterator[Callable[[int, int], list[float]]]:
        """A bare loop on the row's engine: `loop(runs, block)` -> ms per run of each
        block. BARE_PAGE_LOOP in the row's page; in Node, benchmarks/bare_loop.mjs in a
        long-lived node of its own, idle between rounds as the runner is."""
        if runtime in ("browser", "litertjs"):

            def in_page(runs: int, block: int) -> list[float]:
                return model.evaluate("a bare loop", BARE_PAGE_LOOP, [runs, block], timeout=600)

            yield in_page
            return
        from toolkit.runtimes.litertjs_node import node_args
        from toolkit.runtimes.tfjs_node import node_binary, node_modules
        from toolkit.runtimes.tfjs_shared import checked_model_json

        entry = self.manifest.artifact(artifact)
        engine = "litertjs" if runtime == "litertjs-node" else "tfjs"
        path = (
            self.manifest.artifact_path(entry)
            if engine == "litertjs"
            else checked_model_json(self.manifest, entry, {})
        )
        node = node_binary()
        flags = node_args(node) if engine == "litertjs" else ()
        command = [node, *flags, str(BARE_NODE_LOOP), engine, str(path), model.info.backend,
                   str(model.info.threads or 1)]  # fmt: skip
        env = dict(os.environ, CNNX_NODE_MODULES=str(node_modules()))
        with subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # LiteRT.js's log lines
            text=True,
            env=env,
        ) as process:
            assert process.stdin is not None and process.stdout is not None
            stdin, stdout = process.stdin, process.stdout

            def answer() -> str:
                for line in stdout:
                    if line.startswith(("{", "ready")):
                        return line
                raise SystemExit(f"the bare loop in node exited ({process.wait()})")

            def in_node(runs: int, block: int) -> list[float]:
                stdin.write(f"{runs} {block}\n")
                stdin.flush()
                return [float(ms) for ms in json.loads(answer())["samples_ms"]]

            answer()  # "ready": loaded and warmed up
            try:
                yield in_node
            finally:
                stdin.close()
                process.wait(timeout=60)


# The backends whose rows get a bare loop beside them: LiteRT.js's every build (plain,
# threaded, JSPI on webgpu where it runs) and TF.js's wasm, in the page and in Node.
BARE_BACKENDS = {
    "litertjs": ("wasm", "wasm-threaded", "webgpu"),
    "browser": ("wasm",),
    "litertjs-node": ("wasm", "wasm-threaded"),
    "tfjs-node": ("wasm",),
}


def round_ratios(row_ns: list[list[int]], bare_ms: list[list[float]]) -> np.ndarray:
    """Each paired round's p50 of the row over the bare loop's p50 in the same round."""
    return np.array(
        [
            float(np.median(row)) / 1e6 / max(float(np.median(bare)), 1e-9)
            for row, bare in zip(row_ns, bare_ms, strict=True)
        ]
    )


def median_interval(ratios: np.ndarray) -> tuple[float, float]:
    """The 95% bootstrap interval of the median of `ratios` (seeded: the same rounds
    give the same interval)."""
    rng = np.random.default_rng(0)
    medians = np.median(rng.choice(ratios, (2000, len(ratios))), axis=1)
    low, high = np.percentile(medians, [2.5, 97.5])
    return float(low), float(high)


def unsettled(parts: list[Any], bare_ms: list[list[float]]) -> bool:
    """Another round is due: fewer than MAX_ROUNDS, and the median's interval is wider
    than INTERVAL_GOAL on either side of it."""
    if len(parts) >= MAX_ROUNDS:
        return False
    ratios = round_ratios([p.samples for p in parts], bare_ms)
    low, high = median_interval(ratios)
    middle = float(np.median(ratios))
    return max(middle - low, high - middle) > INTERVAL_GOAL


def beside_bare(row_ns: list[list[int]], bare_ms: list[list[float]], runs: int) -> dict:
    """The row against its bare loop, round by round: each round's p50 over the bare
    loop's p50 in the same round, and the median of those ratios with its 95% interval.
    A burst of load or a slow drift moves both halves of a round together, so it cancels
    in the ratio, where the difference of two pooled medians would keep it."""
    ratios = round_ratios(row_ns, bare_ms)
    low, high = median_interval(ratios)
    pooled = [ms for part in bare_ms for ms in part]
    return {
        "bare_p50_ms": round(float(np.percentile(pooled, 50)), 4),
        "bare_runs": runs * len(bare_ms),
        "rounds": len(ratios),
        "over_bare": round(float(np.median(ratios)) - 1, 4),
        "over_bare_interval": [round(low - 1, 4), round(high - 1, 4)],
        "over_bare_rounds": [round(float(ratios.min()) - 1, 4), round(float(ratios.max()) - 1, 4)],
    }


def medians(pre: list[int], post: list[int]) -> dict[str, float | None]:
    def median(values: list[int]) -> float | None:
        return round(float(np.median(values)) / 1e6, 5) if values else None

    return {"pre_ms": median(pre), "post_ms": median(post)}


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
    parser.add_argument("--note", default="", help="recorded as is (how loaded the machine was)")
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
        rows.append(bench.in_process("tfjs-node", "tfjs_float32", "wasm"))
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
    beside_bare = [
        {
            "label": r["label"],
            "artifact": r["artifact"],
            "wasm_build": r.get("wasm_build"),
            "threads": r["threads"],
            "p50_ms": r["p50_ms"],
            "bare_p50_ms": r["bare_p50_ms"],
            "over_bare": r["over_bare"],
            "over_bare_interval": r["over_bare_interval"],
            "rounds": r["rounds"],
            "over_bare_rounds": r["over_bare_rounds"],
        }
        for r in rows
        if "bare_p50_ms" in r
    ]
    worst = max((abs(b["over_bare"]) for b in beside_bare), default=None)
    result = {
        "benchmark": "browser_bench",
        "date": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "machine": info,
        "note": args.note,
        "model": {
            "artifacts": str(args.artifacts or "seed CNN (untrained), exported here"),
            "input": list(manifest.input.shape),
            "classes": len(manifest.labels),
            "bytes": sizes,
        },
        "runs": args.runs,
        "warmup": args.warmup,
        "results": rows,
        "harness_vs_bare": beside_bare,
        "harness_vs_bare_worst": worst,
        "best_browser_float32": best32 and {k: best32[k] for k in ("label", "artifact", "p50_ms")},
        "best_browser_int8": best8 and {k: best8[k] for k in ("label", "artifact", "p50_ms")},
        "browser_float32_over_native_float32_x1": ratio32,
        "browser_int8_over_native_int8_x1": ratio8,
        "goals": {
            f"best browser float32 p50 <= {GOAL_FLOAT32:g}x LiteRT float32 x1": ratio32 is not None
            and ratio32 <= GOAL_FLOAT32,
            f"best browser int8 p50 <= {GOAL_INT8:g}x LiteRT int8 x1": ratio8 is not None
            and ratio8 <= GOAL_INT8,
            f"every JavaScript row's p50 within {BARE_GOAL:.0%} of its bare loop": worst is not None
            and worst <= BARE_GOAL,
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
        handling = [f"{k} {row[k]:.4f}" for k in ("pre_ms", "post_ms") if row.get(k) is not None]
        notes = []
        if "cross_origin_isolated" in row:
            notes.append("isolated" if row["cross_origin_isolated"] else "NOT isolated")
        notes += handling
        if row.get("block", 1) > 1:
            notes.append(f"blocks of {row['block']}")
        if row.get("gpu_name"):
            soft = " (software)" if row.get("gpu_software") else ""
            notes.append(f"gpu {row['gpu_name']}{soft}")
        print(
            f"{name:<44}{row['p50_ms']:>9.3f}{row['p90_ms']:>9.3f}"
            f"{'' if diff is None else f'{diff:.1e}':>9}  {', '.join(notes)}"
        )
    print(f"{'beside a bare loop':<44}{'p50 ms':>9}{'bare ms':>9}{'diff':>9}  95% interval, rounds")
    for b in result["harness_vs_bare"]:
        name = f"{b['label']} {b['artifact']}"
        low, high = b["over_bare_interval"]
        first, last = b["over_bare_rounds"]
        print(
            f"{name:<44}{b['p50_ms']:>9.4f}{b['bare_p50_ms']:>9.4f}{b['over_bare']:>+9.1%}"
            f"  {low:+.1%} to {high:+.1%}, {b['rounds']} rounds ({first:+.1%} to {last:+.1%})"
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
