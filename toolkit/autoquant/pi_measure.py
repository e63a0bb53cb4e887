"""Run TFLite candidates on the emulated Raspberry Pi: outputs and latency, in one guest run.

`--quantize auto --target rpi` needs each candidate's answers and speed on the Pi's own
LiteRT (the aarch64 wheel, whose int8 kernels round differently from x86's), so the
candidates are run under qemu (toolkit/autoquant/emulation.py) by the small program GUEST: it
loads each model with 1 thread, quantizes the images with the input tensor's own scale
and zero point, runs them one by one, dequantizes the outputs, then times single-image
invokes. One guest process serves every candidate: starting Python and LiteRT under
emulation costs seconds. Emulated latency is not a Pi's latency; it ranks candidates the
way an in-order Cortex-A72 would only roughly, and the docs say so.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from toolkit.errors import RuntimeUnavailable, shorten

GUEST = r"""
import json, sys, time
import numpy as np
from ai_edge_litert.interpreter import Interpreter

images = np.load(sys.argv[1])
plan = json.loads(open(sys.argv[2]).read())
result = {}
for name, path in plan["models"].items():
    it = Interpreter(model_path=path, num_threads=1)
    it.allocate_tensors()
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    def feed(x):
        if np.dtype(i["dtype"]).kind in "iu":
            s, z = i["quantization"]
            info = np.iinfo(i["dtype"])
            x = np.clip(np.round(x / s) + z, info.min, info.max)
        it.set_tensor(i["index"], x.astype(i["dtype"]))
    outputs = []
    for x in images:
        feed(x[None])
        it.invoke()
        y = it.get_tensor(o["index"]).astype(np.float32)
        if np.dtype(o["dtype"]).kind in "iu":
            s, z = o["quantization"]
            y = (y - z) * s
        outputs.append(y.reshape(-1))
    np.save(plan["out"] + name + ".npy", np.stack(outputs))
    feed(images[:1])
    for _ in range(plan["warmup"]):
        it.invoke()
    times = []
    for _ in range(plan["runs"]):
        t = time.perf_counter_ns()
        it.invoke()
        times.append(time.perf_counter_ns() - t)
    result[name] = float(np.median(times)) / 1e6
print(json.dumps(result))
"""


def run_on_emulated_pi(
    models: dict[str, Path], images: np.ndarray, runs: int, warmup: int, timeout: float = 1800
) -> dict[str, tuple[np.ndarray, float]]:
    """name -> (outputs float32 [N, K], p50 ms of invoke) for each .tflite in `models`."""
    from toolkit.autoquant.emulation import find_emulator

    emulator = find_emulator()
    with tempfile.TemporaryDirectory(prefix="cnnx-pi-") as folder:
        work = Path(folder)
        (work / "guest.py").write_text(GUEST, encoding="utf-8")
        np.save(work / "images.npy", np.asarray(images, dtype=np.float32))
        plan = {
            "models": {name: str(path) for name, path in models.items()},
            "out": str(work) + "/",
            "runs": runs,
            "warmup": warmup,
        }
        (work / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
        done = emulator.run_python(
            [str(work / "guest.py"), str(work / "images.npy"), str(work / "plan.json")],
            timeout=timeout,
        )
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeUnavailable(
                f"the emulated Pi could not run the candidates: {shorten(last)}"
            )
        try:
            latency = json.loads(done.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise RuntimeUnavailable("the emulated Pi gave no result line") from None
        return {name: (np.load(work / f"{name}.npy"), float(latency[name])) for name in models}
