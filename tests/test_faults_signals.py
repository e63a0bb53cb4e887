"""SIGINT and SIGTERM at named steps and mid-work: exit 130/143 with one line, no
traceback (TensorFlow's teardown included), the folder as it was (or complete), and
no staging, scratch or lock left behind; a SIGKILL's scratch is swept by the next run.

Named steps use the fault hook (CNNX_FAULT_AFTER with CNNX_FAULT_SIGNAL): the process
signals itself exactly there. The mid-work case waits for a state (the scratch folder
exists, so TensorFlow is converting) before sending the signal: nothing depends on how
fast a loaded machine is.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.cli import Done, cnnx, spawn
from tests.corpus import files
from toolkit.manifest import load_manifest

CODES = {"INT": 130, "TERM": 143}
WORDS = {"INT": "interrupted (SIGINT)", "TERM": "terminated (SIGTERM)"}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def base(corpus_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An artifacts folder holding the SavedModel and TFLite float32 of the tiny model."""
    out = tmp_path_factory.mktemp("signals-base") / "artifacts"
    done = cnnx(*export_args(corpus_models, "tflite", out))
    assert done.returncode == 0, done.stderr
    return out


def export_args(corpus_models: Path, to: str, out: Path) -> tuple[str, ...]:
    """`cnnx export` of the corpus's tiny SavedModel to `to`, unquantized, no samples."""
    model = str(corpus_models / "good_savedmodel")
    return (
        "export",
        "--model",
        model,
        "--to",
        to,
        "-q",
        "none",
        "--samples",
        "0",
        "--out",
        str(out),
    )


def run(*args: str, env: dict[str, str] | None = None) -> Done:
    """A real `cnnx` process, for the signal it gets and the exit code it ends with."""
    return cnnx(*args, env=env, process=True)


def leftovers(folder: Path) -> list[str]:
    """Hidden siblings a writer makes beside its output: staging, scratch, lock."""
    return sorted(p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}."))


def assert_one_interrupt_line(stderr: str, name: str) -> None:
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("cnnx: error: " + WORDS[name]), stderr


# Step -> the signal sent there, and whether the new artifacts are in place when it lands.
# Each step leaves something different to clean up; SIGINT and SIGTERM unwind it the same
# way (toolkit/core/signals.py raises KeyboardInterrupt or Terminated through the same
# `with` blocks), so each step is taken once and each signal at two of them.
STEPS = {
    "locked:artifacts": ("INT", False),  # the lock just taken, nothing read yet
    "staged:saved_model": ("TERM", False),  # the converted source in the scratch folder
    "staged:artifacts": ("INT", False),  # the new folder complete beside the old one
    "swapped:artifacts": ("TERM", True),  # the new folder in place, the old one not yet removed
}


def test_signals_at_named_steps_keep_a_whole_folder_and_leave_nothing(
    corpus_models: Path, base: Path, tmp_path: Path
) -> None:
    def one(step: str) -> tuple[Done, Path]:
        name, _ = STEPS[step]
        out = files.copy_tree(base, tmp_path / step.replace(":", "-") / "artifacts")
        done = run(
            *export_args(corpus_models, "tfjs", out),
            env={"CNNX_FAULT_AFTER": step, "CNNX_FAULT_SIGNAL": name},
        )
        return done, out

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip(STEPS, pool.map(one, STEPS), strict=True))
    for step, (done, out) in results.items():
        name, swapped = STEPS[step]
        assert done.returncode == CODES[name], (step, done.stderr)
        assert_one_interrupt_line(done.stderr, name)
        manifest = load_manifest(out)
        expected = {"savedmodel", "tflite_float32"} | ({"tfjs_float32"} if swapped else set())
        assert set(manifest.artifacts) == expected, (step, set(manifest.artifacts))
        for entry in manifest.artifacts.values():
            manifest.check_files(entry)
        assert leftovers(out) == [], step


def test_a_signal_mid_conversion_exits_cleanly(
    corpus_models: Path, base: Path, tmp_path: Path
) -> None:
    # SIGINT only: SIGTERM takes the same handler and wakeup pipe, and both signals are
    # told apart at the named steps above.
    out = files.copy_tree(base, tmp_path / "artifacts")
    before = files.snapshot(out)
    process = spawn(
        "export",
        "--model",
        corpus_models / "good.keras",
        "--to",
        "all",
        "--samples",
        "0",
        "--calibration-samples",
        "10",
        "--out",
        out,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if any(".src-" in n for n in leftovers(out)):  # TensorFlow is converting now
            break
        time.sleep(0.02)
    assert process.poll() is None, "the export ended before the signal"
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=300)
    assert process.returncode == CODES["INT"], err
    assert_one_interrupt_line(err, "INT")
    assert files.snapshot(out) == before  # the previous artifacts, untouched
    assert leftovers(out) == []


def test_a_killed_exports_scratch_is_swept_by_the_next_one(
    corpus_models: Path, base: Path, tmp_path: Path
) -> None:
    out = files.copy_tree(base, tmp_path / "artifacts")
    args = export_args(corpus_models, "tfjs", out)
    killed = run(*args, env={"CNNX_FAULT_AFTER": "staged:saved_model"})
    assert killed.returncode == -signal.SIGKILL
    assert any(".src-" in n for n in leftovers(out)), leftovers(out)  # SIGKILL cleans nothing
    done = cnnx(*args)
    assert done.returncode == 0, done.stderr
    assert leftovers(out) == []
    assert "tfjs_float32" in load_manifest(out).artifacts


def test_sigterm_during_bench_leaves_the_report_folder_as_it_was(
    base: Path, tmp_path: Path
) -> None:
    from tests.corpus import images

    out = files.copy_tree(base, tmp_path / "artifacts")
    data = images.class_folder(tmp_path / "images", classes=3, per_class=2)
    done = run(
        "bench",
        str(out),
        "--runtimes",
        "litert",  # which runtime made the report is not the point: the fastest to start
        "--data",
        str(data),
        "--runs",
        "2",
        "--warmup",
        "0",
        "--no-plots",
        env={"CNNX_FAULT_AFTER": "written:report.json", "CNNX_FAULT_SIGNAL": "TERM"},
    )
    assert done.returncode == 143, done.stderr
    assert_one_interrupt_line(done.stderr, "TERM")
    assert not (out / "report").exists()
    assert leftovers(out / "report") == []


# --- children end with cnnx ----------------------------------------------------------------


def _tree(pid: int) -> list[Any]:
    import psutil

    with contextlib.suppress(psutil.Error):
        return [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    return []


def _running(process: Any) -> bool:
    import psutil

    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


# The two kinds of child: TF.js's Node runner, and the fresh Python worker that measures
# an in-process runtime's memory (toolkit/bench/memory.py); one row each.
@pytest.mark.parametrize(
    ("child", "runtime", "artifact"),
    [
        ("node_runner.mjs", "tfjs-node", "tfjs_float32"),
        ("toolkit.bench.memory", "litert", "tflite_float32"),
    ],
)
def test_sigint_during_bench_ends_every_child_with_cnnx(
    child: str, runtime: str, artifact: str, artifacts: Path, tmp_path: Path
) -> None:
    # The signal goes to cnnx alone (`kill -INT PID`), as soon as the child is seen: a
    # state, not a delay. Every process seen in cnnx's tree must be gone when it exits.
    process = spawn(
        "bench", artifacts, "--runtimes", runtime, "--artifacts", artifact, "--runs", "2",
        "--warmup", "0", "--no-plots", "--out", tmp_path / "report",
        stdout=subprocess.DEVNULL,
        start_new_session=True,  # its own group, so that the test can clean up after a failure
    )  # fmt: skip
    seen: dict[int, Any] = {}
    try:
        deadline = time.monotonic() + 300
        sent = False
        while process.poll() is None and time.monotonic() < deadline:
            for member in _tree(process.pid)[1:]:
                with contextlib.suppress(Exception):
                    seen.setdefault(member.pid, member)
                    if not sent and child in " ".join(member.cmdline()):
                        os.kill(process.pid, signal.SIGINT)
                        sent = True
            time.sleep(0.01)
        assert sent, f"no {child} was seen before bench ended"
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 130, stderr
        assert_one_interrupt_line(stderr, "INT")
        survivors = [f"{p.pid} {' '.join(p.cmdline())[:80]}" for p in seen.values() if _running(p)]
        assert not survivors, f"children alive after cnnx exited: {survivors}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        for member in seen.values():
            with contextlib.suppress(Exception):
                member.kill()
        process.wait(timeout=30)
