"""The GPU accelerator's own answer on a .tflite: `cnnx info`'s "GPU delegate" line.

LiteRT's GPU accelerator (toolkit/runtimes/litert_gpu.py) compiles the file: whether it
takes every op, the ops it leaves on the CPU with its reasons, and the largest
difference of its outputs from LiteRT's CPU interpreter on a few seeded inputs. Where no
GPU adapter exists (no Vulkan device at all), the static reading of
toolkit/graph/gpu_readiness.py answers instead, and says so in its notes.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from toolkit.errors import ArtifactError
from toolkit.graph.gpu_readiness import ACCELERATOR, GpuReadiness, check_gpu_readiness
from toolkit.runtimes import RuntimeSkipped
from toolkit.runtimes.litert_gpu import GpuProgram, cpu_parity


def gpu_readiness(path: Path) -> GpuReadiness:
    """The accelerator's answer for a .tflite file; the static reading where no GPU
    adapter exists here (with the reason in `notes`)."""
    static = check_gpu_readiness(path)
    try:
        program = GpuProgram(path)
    except RuntimeSkipped as error:
        return replace(static, notes=[*static.notes, f"static only: {error.one_line()}"])
    except ArtifactError as error:
        return replace(
            static, ready=False, problems=[error.one_line()], method=ACCELERATOR, notes=[]
        )
    try:
        acceleration = program.acceleration
        problems = (
            []
            if acceleration.fully_accelerated
            else [
                f"{acceleration.cpu_op_count} of "
                f"{acceleration.cpu_op_count + (acceleration.gpu_op_count or 0)} ops left on "
                "the CPU: " + ", ".join(acceleration.cpu_op_names)
            ]
        )
        return replace(
            static,
            ready=acceleration.fully_accelerated,
            problems=problems,
            method=ACCELERATOR,
            adapter=acceleration.adapter.to_dict() if acceleration.adapter else None,
            cpu_ops=list(acceleration.cpu_ops),
            max_abs_vs_cpu=cpu_parity(program, path),
        )
    finally:
        program.close()


def gpu_summary(path: Path) -> str:
    """The one line `cnnx info` shows for a .tflite."""
    return gpu_readiness(path).summary()
