"""Memory of one artifact in one runtime, the same whichever row ran before it.

In-process runtimes (RuntimeSpec.memory == "worker": TensorFlow, LiteRT) are measured
in a fresh Python worker per row: it imports the runtime, resets the kernel's peak-RSS
mark (`/proc/self/clear_refs`, Linux), reads its resident memory, loads the artifact,
runs what bench runs (warm-up and timed batch-1 inferences, one throughput batch), and
reports its peak resident memory minus the memory before the load. Measured in the
bench's own process, the figure depended on which row had run first (the allocator
reuses freed pages). Runtimes with a process per model ("adapter": TF.js in Node)
report that process's peak; "none" (the browser, whose Chromium every page shares)
reports nothing.

    python -m toolkit.bench.memory '{"artifacts": DIR, "artifact": ID, "runtime": NAME, ...}'
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from toolkit.errors import RuntimeUnavailable, shorten
from toolkit.manifest import ArtifactEntry, Manifest
from toolkit.runtimes import RUNTIMES, LoadedModel, MemoryReading

WORKER_TIMEOUT = 300.0  # seconds: importing TensorFlow on a busy machine is slow
WORKER_SOURCE = (
    "peak RSS added by load and inference, in a fresh process per row "
    "(VmHWM after a reset, minus VmRSS before the load)"
)


def read_memory(
    model: LoadedModel,
    manifest: Manifest,
    entry: ArtifactEntry,
    runtime: str,
    options: dict[str, Any],
    *,
    runs: int,
    batch: int,
) -> MemoryReading | None:
    """The row's memory as its runtime's RuntimeSpec says to read it (None: not read)."""
    how = RUNTIMES[runtime].memory
    if how == "adapter":
        return model.memory()
    if how != "worker":
        return None
    request = {
        "artifacts": str(manifest.root),
        "artifact": entry.id,
        "runtime": runtime,
        "options": {k: v for k, v in options.items() if k != "timeout"},
        "runs": runs,
        "batch": batch,
    }
    return measure_in_worker(request)


def measure_in_worker(request: dict[str, Any]) -> MemoryReading:
    """Run the worker on `request`; RuntimeUnavailable if it does not answer."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "toolkit.bench.memory", json.dumps(request)],
            capture_output=True,
            text=True,
            timeout=WORKER_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RuntimeUnavailable(f"the memory worker took over {WORKER_TIMEOUT:g} s") from None
    lines = done.stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1])
        return MemoryReading(int(answer["bytes"]), str(answer["source"]))
    except (IndexError, ValueError, KeyError, TypeError):
        said = shorten(" ".join((done.stderr or done.stdout).split()), 200)
        raise RuntimeUnavailable(
            f"the memory worker failed (exit {done.returncode}): {said or 'no output'}"
        ) from None


def _status_kib(field: str) -> int:
    text = Path("/proc/self/status").read_text(encoding="ascii")
    found = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    if found is None:
        raise OSError(f"/proc/self/status has no {field}")
    return int(found.group(1))


def _worker(request: dict[str, Any]) -> dict[str, Any]:
    import importlib

    import numpy as np

    from toolkit.core.quiet import silence_tensorflow
    from toolkit.manifest import load_manifest
    from toolkit.runtimes import load

    silence_tensorflow()
    spec = RUNTIMES[request["runtime"]]
    for module in (*spec.imports, spec.module):
        importlib.import_module(module)
    manifest = load_manifest(Path(request["artifacts"]))
    entry = manifest.artifact(request["artifact"])
    x1 = np.zeros((1, *manifest.input.shape), np.float32)
    xb = np.zeros((int(request["batch"]), *manifest.input.shape), np.float32)
    with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
        handle.write("5")  # reset the peak-RSS mark to the current RSS
    before = _status_kib("VmRSS")
    with load(request["runtime"], manifest, entry, check=False, **request["options"]) as model:
        for _ in range(int(request["runs"]) + 1):
            model.predict(x1)
        model.predict(xb)
        peak = _status_kib("VmHWM")
    return {"bytes": max(0, peak - before) * 1024, "source": WORKER_SOURCE}


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    print(json.dumps(_worker(json.loads(sys.argv[1]))))
