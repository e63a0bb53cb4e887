"""The GPU accelerator's own answer on a .tflite: `cnnx info`, the manifest, the Android bundle.

LiteRT's GPU accelerator (toolkit/runtimes/litert_gpu.py) compiles the file: whether it
takes every op, the ops it leaves on the CPU with its reasons, and the largest
difference of its outputs from LiteRT's CPU interpreter on a few seeded inputs. Where no
GPU adapter exists (no Vulkan device at all), the static reading of
toolkit/graph/gpu_readiness.py answers instead, and says so in its notes.

`cnnx export --gpu-answer` records the answer in each new TFLite entry of the manifest
(`details.gpu`, through `manifest_details`, the export's inspector). The accelerator is
native code over a Vulkan driver: a driver fault would take the export with it, and a
driver can hang, so the export asks it in a child process (`python -m
toolkit.measure.gpu_answer FILE...`) under a time limit. A file the child did not answer
for gets the static reading and the reason. `cnnx info` and the Android bundle read a
recorded answer rather than ask again.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.errors import ArtifactError, shorten
from toolkit.graph.gpu_readiness import ACCELERATOR, GpuReadiness, check_gpu_readiness

if TYPE_CHECKING:
    from toolkit.manifest import ArtifactEntry

# How long the child may take per file: a child asking about one seed-CNN file on
# SwiftShader took 1.1-1.3 s, about the four of `--to tflite` 3.2 s, on a loaded 2-core
# machine (benchmarks/gpu_answer_bench.py); a large model takes longer.
SECONDS_PER_FILE = 120.0
# The child's answer lines, apart from what the accelerator itself prints.
_PREFIX = "cnnx-gpu-answer "


def gpu_readiness(path: Path) -> GpuReadiness:
    """The accelerator's answer for a .tflite file, asked in this process; the static
    reading where no GPU adapter exists here (with the reason in `notes`)."""
    from toolkit.runtimes import RuntimeSkipped
    from toolkit.runtimes.litert_gpu import DEFAULT_PRECISION, GpuProgram, cpu_parity

    static = check_gpu_readiness(path)
    try:
        program = GpuProgram(path, DEFAULT_PRECISION)
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
            precision=DEFAULT_PRECISION,
        )
    finally:
        program.close()


def gpu_summary(path: Path) -> str:
    """The one line `cnnx info` shows for a .tflite it has no recorded answer for."""
    return gpu_readiness(path).summary()


def ask_in_child(
    paths: list[Path], seconds_per_file: float = SECONDS_PER_FILE
) -> list[GpuReadiness]:
    """Each file's answer, asked in one child process with `seconds_per_file` per file; a
    file it did not answer for (it crashed, hung or could not start) gets the static
    reading with the reason in `notes`."""
    if not paths:
        return []
    argv = [sys.executable, "-m", "toolkit.measure.gpu_answer", *map(str, paths)]
    answers: dict[str, GpuReadiness] = {}
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=seconds_per_file * len(paths),
            stdin=subprocess.DEVNULL,
            check=False,
        )
        out, why = done.stdout, _exit_reason(done.returncode, done.stderr)
    except subprocess.TimeoutExpired as expired:
        out = _text(expired.stdout)
        why = f"did not answer within {seconds_per_file * len(paths):g} s"
    except OSError as error:
        out, why = "", f"could not start: {error.strerror or error}"
    for line in out.splitlines():
        if line.startswith(_PREFIX):
            answer = GpuReadiness.from_dict(json.loads(line[len(_PREFIX) :]))
            answers[answer.path] = answer
    unanswered = f"static only: LiteRT's GPU accelerator {why}"
    return [answers.get(str(path)) or _static(path, unanswered) for path in paths]


def _exit_reason(code: int, stderr: str) -> str:
    if code < 0:
        return f"crashed (signal {-code})"
    last = [line for line in stderr.splitlines() if line.strip()]
    return f"stopped (exit {code}: {shorten(last[-1]) if last else 'no message'})"


def _text(output: bytes | str | None) -> str:
    return output.decode("utf-8", "replace") if isinstance(output, bytes) else output or ""


def _static(path: Path, note: str) -> GpuReadiness:
    static = check_gpu_readiness(path)
    return replace(static, notes=[*static.notes, note])


def manifest_details(entries: dict[str, ArtifactEntry], root: Path) -> dict[str, dict[str, Any]]:
    """The export's inspector (`cnnx export --gpu-answer`): `{id: {"gpu": answer}}` for
    each TFLite entry among the new `entries`, their files under `root`."""
    tflite = {key: entry for key, entry in entries.items() if entry.format == "tflite"}
    answers = ask_in_child([root / entry.path for entry in tflite.values()])
    return {
        key: {"gpu": replace(answer, path=entry.path).to_dict()}
        for (key, entry), answer in zip(tflite.items(), answers, strict=True)
    }


def recorded(entry: ArtifactEntry) -> GpuReadiness | None:
    """The answer the export recorded for this entry, if it asked (`--gpu-answer`)."""
    data = entry.details.get("gpu")
    return GpuReadiness.from_dict(data) if isinstance(data, dict) else None


def main() -> None:
    """`python -m toolkit.measure.gpu_answer FILE...`: one answer line per file, each
    printed as soon as it is known."""
    for name in sys.argv[1:]:
        answer = gpu_readiness(Path(name)).to_dict()
        print(_PREFIX + json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
