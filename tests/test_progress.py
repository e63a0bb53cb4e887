"""Progress on long steps: what the library reports, and what the CLI draws on a
terminal (forced with FORCE_COLOR, as Rich reads it) and leaves out elsewhere."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.cli import Done, cnnx
from toolkit.core.progress import Step

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
BAR = r"\s+[━╸╺ ]+\s+"  # a Rich progress bar between a task's name and its figures


def run_cli(*args: str, terminal: bool, process: bool = False) -> Done:
    # Rich reads FORCE_COLOR each time it asks whether it draws for a terminal, so this
    # process can be one; `process=True` where the bars must get past what only a real
    # process has (the converters' descriptors 1 and 2 pointed at a file).
    env = {"FORCE_COLOR": "1" if terminal else None, "TTY_COMPATIBLE": None}
    env.update(COLUMNS="120", TERM="xterm-256color", TF_CPP_MIN_LOG_LEVEL="3")
    return cnnx(*args, env=env, process=process)


def frames(output: str) -> list[str]:
    """The lines a terminal was sent, each redraw on its own line, escapes removed."""
    return [line.rstrip() for line in ANSI.sub("", output).replace("\r", "\n").splitlines()]


@pytest.fixture(scope="module")
def exported(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Step]]:
    """tiny_run exported to the SavedModel and int8 (the progress steps it reported), then
    float32 beside them for the Raspberry Pi bundle."""
    from toolkit.export.artifacts import ExportRequest, export

    steps: list[Step] = []
    out = tmp_path_factory.mktemp("progress") / "artifacts"
    request = ExportRequest(
        model=tiny_run, to="tflite", quantize="int8", calibration_samples=120, samples=5, out=out
    )
    export(request, progress=steps.append)
    export(ExportRequest(model=tiny_run, to="tflite", quantize="none", out=out))
    return out, steps


@pytest.mark.slow
def test_export_reports_each_artifact_and_each_calibration_image(
    exported: tuple[Path, list[Step]],
) -> None:
    _, steps = exported
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
    shown = run_cli(*args, "--out", str(tmp_path / "shown"), terminal=True, process=True)
    assert shown.returncode == 0, shown.stderr
    lines = frames(shown.stdout)
    # The export bar while the int8 model is made, then as it ends.
    assert any(re.match(rf"export{BAR}1/2 .* tflite_int8$", line) for line in lines), lines
    time = r"\d:\d\d:\d\d"
    assert any(re.match(rf"export{BAR}2/2 +{time} eta {time} manifest$", line) for line in lines)
    # The calibration bar's last run: the check on the first half of the 100 images.
    assert any(re.match(rf"calibration{BAR}50/50 .* tflite_int8$", line) for line in lines)
    assert "\x1b[?25l" in shown.stdout  # Rich hid the cursor: it was drawing live
    assert any(line.startswith("manifest: ") for line in lines)  # the usual summary after
    assert shown.stderr == ""

    quiet = run_cli(*args, "--out", str(tmp_path / "quiet"), terminal=False)
    assert quiet.returncode == 0, quiet.stderr
    assert "\x1b" not in quiet.stdout
    assert not any(
        re.match(rf"(export|calibration){BAR}\d", line) for line in quiet.stdout.splitlines()
    )
    assert " eta " not in quiet.stdout
    assert "tflite_int8" in quiet.stdout and "manifest: " in quiet.stdout


@pytest.mark.slow
def test_verify_and_bench_draw_a_bar_per_row_and_nothing_under_json(
    exported: tuple[Path, list[Step]], tmp_path: Path
) -> None:
    artifacts, _ = exported
    time = r"\d:\d\d:\d\d"
    # The tiny run's int8 model agrees on fewer than 98% of 40 images (low margins); its
    # parity is not what this test is about.
    loose = tmp_path / "loose.json"
    loose.write_text(json.dumps({"int8": {"min_agreement": 0.5, "max_accuracy_drop": 0.5}}))
    verify = ["verify", str(artifacts), "--artifacts", "savedmodel,tflite_int8"]
    verify += ["--runtimes", "tf,litert", "--limit", "40"]
    verify += ["--tolerances", str(loose)]
    shown = run_cli(*verify, terminal=True)
    assert shown.returncode == 0, shown.stderr
    lines = frames(shown.stdout)
    # savedmodel on tf and on litert is not a row: tf savedmodel, litert tflite_int8.
    # Each row is drawn as it starts (1 of 2 done), however fast it runs.
    assert any(re.match(rf"verify{BAR}1/2 .* tflite_int8 on litert$", s) for s in lines), lines
    assert any(re.match(rf"verify{BAR}2/2 +{time} eta {time} 2 rows$", line) for line in lines)
    quiet = run_cli(*verify, "--json", terminal=True)  # a terminal, but JSON was asked for
    assert quiet.returncode == 0, quiet.stderr
    assert [row["artifact"] for row in json.loads(quiet.stdout)["rows"]] == [
        "savedmodel",
        "tflite_int8",
    ]

    bench = ["bench", str(artifacts), "--artifacts", "tflite_int8", "--runtimes", "litert"]
    bench += ["--threads", "1,2", "--runs", "3"]
    bench += ["--warmup", "1", "--batch", "4", "--limit", "40", "--tolerances", str(loose)]
    shown = run_cli(*bench, "--out", str(tmp_path / "shown"), terminal=True)
    assert shown.returncode == 0, shown.stderr
    lines = frames(shown.stdout)
    assert any(re.match(rf"bench{BAR}0/2 .* tflite_int8 on litert x1$", line) for line in lines)
    assert any(re.match(rf"bench{BAR}1/2 .* tflite_int8 on litert x2$", line) for line in lines)
    assert any(re.match(rf"bench{BAR}2/2 +{time} eta {time} 2 rows$", line) for line in lines)
    quiet = run_cli(*bench, "--out", str(tmp_path / "quiet"), "--json", terminal=True)
    assert quiet.returncode == 0, quiet.stderr
    assert len(json.loads(quiet.stdout)["rows"]) == 2


@pytest.mark.slow
def test_package_draws_each_stage_of_the_bundle_on_a_terminal_only(
    exported: tuple[Path, list[Step]], tmp_path: Path
) -> None:
    artifacts, _ = exported
    shown = run_cli(
        "package", "--target", "rpi", str(artifacts), "--out", str(tmp_path / "a"), terminal=True
    )
    assert shown.returncode == 0, shown.stderr
    lines = frames(shown.stdout)
    for done, stage in enumerate(["models", "self-test", "README", "zip"]):
        assert any(re.match(rf"bundle{BAR}{done}/4 .* rpi: {stage}$", s) for s in lines), lines
    assert any(re.match(rf"bundle{BAR}4/4 .* rpi bundle written$", s) for s in lines)
    quiet = run_cli(
        "package", "--target", "rpi", str(artifacts), "--out", str(tmp_path / "b"), terminal=False
    )
    assert quiet.returncode == 0, quiet.stderr
    assert "\x1b" not in quiet.stdout and " eta " not in quiet.stdout
    assert "rpi bundle: " in quiet.stdout


def test_demo_gives_every_step_after_training_its_own_bars(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The demo's export, bench and package steps report into bars opened for that step
    and closed before the next one starts (the training step draws its own view)."""
    import contextlib

    from toolkit import demo
    from toolkit.cli import progress as cli_progress

    events: list[str] = []

    @contextlib.contextmanager
    def recording_bars(*, quiet: bool = False):  # type: ignore[no-untyped-def]
        events.append("open")
        yield lambda step: events.append(f"{step.task}:{step.label}")
        events.append("close")

    def reporting(name: str):  # type: ignore[no-untyped-def]
        def run(ctx: demo.DemoContext) -> dict[str, str]:
            ctx.progress(Step(task=name, label="working", done=0, total=1))
            return {}

        return demo.Step(name, name, run)

    monkeypatch.setattr(cli_progress, "progress_bars", recording_bars)
    steps = [reporting("export"), reporting("bench"), reporting("package")]
    monkeypatch.setattr(demo, "STEPS", steps)
    result = cnnx("demo", "--out", tmp_path / "work")
    assert result.returncode == 0, result.output
    assert events == [
        *("open", "export:working", "close"),
        *("open", "bench:working", "close"),
        *("open", "package:working", "close"),
    ]
