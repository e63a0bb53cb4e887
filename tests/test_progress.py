"""Progress on long steps: what the library reports, and what the CLI draws on a
terminal (forced with FORCE_COLOR, as Rich reads it) and leaves out elsewhere."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from toolkit.progress import Step

CLI = [sys.executable, "-m", "toolkit"]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_cli(*args: str, terminal: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    env.update(COLUMNS="120", TERM="xterm-256color", TF_CPP_MIN_LOG_LEVEL="3")
    if terminal:
        env["FORCE_COLOR"] = "1"
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, env=env, timeout=600, check=False
    )


def frames(output: str) -> list[str]:
    """The lines a terminal was sent, each redraw on its own line, escapes removed."""
    return [line.rstrip() for line in ANSI.sub("", output).replace("\r", "\n").splitlines()]


@pytest.mark.slow
def test_export_reports_each_artifact_and_each_calibration_image(
    tiny_run: Path, tmp_path: Path
) -> None:
    from toolkit.exporting import ExportRequest, export

    steps: list[Step] = []
    request = ExportRequest(
        model=tiny_run,
        to="tflite",
        quantize="int8",
        calibration_samples=120,
        samples=0,
        out=tmp_path / "artifacts",
    )
    export(request, steps.append)
    exported = [(s.label, s.done, s.total) for s in steps if s.task == "export"]
    assert exported == [
        ("loading the model", 0, 2),
        ("savedmodel", 0, 2),
        ("tflite_int8", 1, 2),
        ("manifest", 2, 2),
    ]
    calibrated = [s for s in steps if s.task == "calibration"]
    assert {s.label for s in calibrated} == {"tflite_int8"}
    # One report per image read, then one at the end; each converter run that calibrates
    # starts over (the int8 model on 120 images, then its check on the first half).
    runs: list[list[tuple[int, int]]] = []
    for step in calibrated:
        if step.done == 0:
            runs.append([])
        runs[-1].append((step.done, step.total))
    assert runs[0] == [(done, 120) for done in range(121)]
    assert all(run == [(done, run[0][1]) for done in range(run[0][1] + 1)] for run in runs)
    assert {s.task for s in steps} == {"export", "calibration"}


@pytest.mark.slow
def test_export_draws_progress_bars_on_a_terminal_only(tiny_run: Path, tmp_path: Path) -> None:
    args = ["export", "--model", str(tiny_run), "--to", "tflite", "--quantize", "int8"]
    args += ["--calibration-samples", "100", "--samples", "0"]
    shown = run_cli(*args, "--out", str(tmp_path / "shown"), terminal=True)
    assert shown.returncode == 0, shown.stderr
    lines = frames(shown.stdout)
    bar = r"\s+[━╸╺ ]+\s+"
    # The export bar while the int8 model is made, then as it ends.
    assert any(re.match(rf"export{bar}1/2 .* tflite_int8$", line) for line in lines), lines
    time = r"\d:\d\d:\d\d"
    assert any(re.match(rf"export{bar}2/2 +{time} eta {time} manifest$", line) for line in lines)
    # The calibration bar's last run: the check on the first half of the 100 images.
    assert any(re.match(rf"calibration{bar}50/50 .* tflite_int8$", line) for line in lines)
    assert "\x1b[?25l" in shown.stdout  # Rich hid the cursor: it was drawing live
    assert any(line.startswith("manifest: ") for line in lines)  # the usual summary after
    assert shown.stderr == ""

    quiet = run_cli(*args, "--out", str(tmp_path / "quiet"), terminal=False)
    assert quiet.returncode == 0, quiet.stderr
    assert "\x1b" not in quiet.stdout
    assert not any(
        re.match(rf"(export|calibration){bar}\d", line) for line in quiet.stdout.splitlines()
    )
    assert " eta " not in quiet.stdout
    assert "tflite_int8" in quiet.stdout and "manifest: " in quiet.stdout
