"""The machine a measurement ran on, and what it can do at best.

`machine_info()` is the record every report and benchmark carries: CPU, cores, RAM,
OS, Python and library versions, the load average and the date. It reads package
versions from their metadata, so it never imports TensorFlow.

`machine_peak()` is this machine's float32 compute peak, the yardstick of a row's
"% of peak": a calibrated BLAS matrix product (numpy float32 `a @ b`, grown until one
product takes 20 ms, then the best of about half a second of repeats), run in a fresh
Python process on one thread and on every usable core. It is measured once and cached
in CNNX_CACHE_DIR (default ~/.cache/cnnx) under the CPU model, the core count and the
numpy version; delete `machine_peak.json` there to measure it again, on a quiet
machine: a busy one gives a low peak.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from toolkit.core.provenance import now_iso, package_version

PEAK_FILE = "machine_peak.json"
PEAK_SECONDS = 0.5  # of repeats per thread setting, after calibration
PEAK_TIMEOUT = 120.0
ONE_THREAD_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def cache_dir() -> Path:
    given = os.environ.get("CNNX_CACHE_DIR")
    if given:
        return Path(given)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cnnx"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_bytes() -> int | None:
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except (ImportError, OSError):
        return None


def _node_version() -> str | None:
    node = os.environ.get("CNNX_NODE") or shutil.which("node")
    if not node:
        return None
    try:
        done = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine_info() -> dict[str, Any]:
    """CPU model, cores, RAM, OS, Python and library versions, load and date (UTC)."""
    try:
        affinity: int | None = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": affinity,
        "ram_bytes": _ram_bytes(),
        "os": f"{platform.system()} {platform.release()}",
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cnnx": package_version("cnnx"),
        "tensorflow": package_version("tensorflow"),
        "keras": package_version("keras"),
        "tensorflowjs": package_version("tensorflowjs"),
        "ai_edge_litert": package_version("ai-edge-litert"),
        "numpy": package_version("numpy"),
        "node": _node_version(),
        "load_average": load_average(),
        "date": now_iso(),
    }


# --- the compute peak -----------------------------------------------------------------


def _peak_key() -> dict[str, Any]:
    return {"cpu": _cpu_model(), "cores_usable": usable_cores(), "numpy": package_version("numpy")}


def machine_peak(*, measure: bool = True) -> dict[str, Any] | None:
    """The cached peak of this machine, measured first when there is none (and
    `measure`). None when it cannot be measured; a measurement never raises."""
    path = cache_dir() / PEAK_FILE
    key = _peak_key()
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(cached, dict) and cached.get("key") == key:
            return dict(cached["peak"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if not measure:
        return None
    peak = _measure_peak()
    if peak is None:
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{PEAK_FILE}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"key": key, "peak": peak}, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # an unwritable cache only means measuring again next time
    return peak


def _measure_peak() -> dict[str, Any] | None:
    one = _kernel_in_fresh_process(ONE_THREAD_ENV)
    every = _kernel_in_fresh_process({})
    if one is None or every is None:
        return None
    return {
        "gflops_1_thread": one["gflops"],
        "gflops_all_threads": max(every["gflops"], one["gflops"]),
        "threads_all": usable_cores(),
        "kernel": f"numpy float32 matmul {one['n']}x{one['n']} (BLAS sgemm), best of "
        f"{one['repeats']} in a fresh process",
        "measured": now_iso(),
        "load_average": load_average(),
    }


def _kernel_in_fresh_process(env: dict[str, str]) -> dict[str, Any] | None:
    try:
        done = subprocess.run(
            [sys.executable, "-m", "toolkit.bench.machine", "--peak-kernel"],
            capture_output=True,
            text=True,
            timeout=PEAK_TIMEOUT,
            env={**os.environ, **env},
            check=False,
        )
        result = json.loads(done.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
        return None
    return result if isinstance(result, dict) and result.get("gflops", 0) > 0 else None


def peak_kernel(seconds: float = PEAK_SECONDS) -> dict[str, Any]:
    """GFLOP/s of the best float32 n x n matrix product (2 n^3 FLOPs) on this process's
    BLAS threads; n doubles until one product takes 20 ms (or n reaches 2048)."""
    import numpy as np

    rng = np.random.default_rng(0)
    n = 128
    while True:
        a = rng.random((n, n), dtype=np.float32)
        b = rng.random((n, n), dtype=np.float32)
        a @ b  # warm: thread pool, caches
        start = time.perf_counter()
        a @ b
        once = time.perf_counter() - start
        if once >= 0.02 or n >= 2048:
            break
        n *= 2
    repeats = max(5, int(seconds / max(once, 1e-6)))
    best = once
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return {"gflops": round(2 * n**3 / best / 1e9, 2), "n": n, "repeats": repeats}


def peak_for(peak: dict[str, Any], threads: int | None) -> float:
    """The peak GFLOP/s of `threads` threads (None: every usable core)."""
    one, every = float(peak["gflops_1_thread"]), float(peak["gflops_all_threads"])
    if threads is None:
        return every
    return min(one * max(threads, 1), every)


if __name__ == "__main__" and sys.argv[1:] == ["--peak-kernel"]:
    print(json.dumps(peak_kernel()))
