"""One writer at a time: the advisory lock on an output folder, with real processes.

A second writer of the same folder fails at once naming the holder's pid, or waits
with --wait; a lock left by a killed writer is taken over; two exports of different
formats into one folder both land, never one swapping the other's artifact away. No
test depends on timing: each waits for a state (a lock held, a line printed) before
acting on it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.cli import spawn
from tests.corpus import files
from tests.corpus.artifacts import fake_tfjs_artifacts
from tests.corpus.hostile import LockHolder
from toolkit.core.writelock import lock_path

pytestmark = pytest.mark.slow


def finish(process: subprocess.Popen[str], timeout: float = 300) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def test_a_second_writer_fails_at_once_naming_the_holder(tmp_path: Path) -> None:
    fake_tfjs_artifacts(tmp_path / "artifacts")
    holder = LockHolder(tmp_path / "web")
    try:
        before = files.snapshot(tmp_path)
        started = time.monotonic()
        code, _, err = finish(
            spawn("package", "--target", "web", "artifacts", "--out", "web", cwd=tmp_path)
        )
        assert code == 3, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and f"pid {holder.pid}" in lines[0], err
        assert "--wait" in lines[0]
        assert time.monotonic() - started < 60  # failed fast, did not wait for the holder
        assert files.snapshot(tmp_path) == before
    finally:
        holder.close()


def test_wait_waits_for_the_holder_then_writes(tmp_path: Path) -> None:
    fake_tfjs_artifacts(tmp_path / "artifacts")
    holder = LockHolder(tmp_path / "web")
    waiter = spawn(
        "package", "--target", "web", "artifacts", "--out", "web", "--wait", cwd=tmp_path
    )
    try:
        assert waiter.stderr is not None
        line = waiter.stderr.readline()  # printed once it found the lock taken
        assert f"waiting for pid {holder.pid}" in line, line
        assert waiter.poll() is None, "it must still be waiting"
        assert not (tmp_path / "web").exists()
    finally:
        holder.close()
    code, _, err = finish(waiter)
    assert code == 0, err
    assert (tmp_path / "web" / "index.html").is_file()
    assert not lock_path(tmp_path / "web").exists()  # released and removed


def test_a_lock_left_by_a_killed_writer_is_taken_over(tmp_path: Path) -> None:
    fake_tfjs_artifacts(tmp_path / "artifacts")
    killed = spawn(
        "package",
        "--target",
        "web",
        "artifacts",
        "--out",
        "web",
        cwd=tmp_path,
        env={"CNNX_FAULT_AFTER": "locked:web"},
    )
    code, _, _ = finish(killed)
    assert code == -9  # SIGKILL while holding the lock
    stale = lock_path(tmp_path / "web")
    assert stale.read_text().strip() == str(killed.pid)  # the dead writer's pid is left
    code, _, err = finish(
        spawn("package", "--target", "web", "artifacts", "--out", "web", cwd=tmp_path)
    )
    assert code == 0, err  # no --wait needed: the kernel dropped the dead writer's lock
    assert (tmp_path / "web" / "index.html").is_file()
    assert not stale.exists()


def _export(model: Path, out: Path, *formats: str) -> list[str]:
    return ["export", "--model", str(model), "--out", str(out), "--samples", "0", *formats]


def test_two_exports_of_different_formats_into_one_folder_both_land(
    corpus_models: Path, tmp_path: Path
) -> None:
    """The first export is paused at its worst moment, its new folder complete and not
    yet in place; without the lock the second would read the same old manifest and one
    swap would drop the other's artifact. With it, the second waits its turn."""
    out = tmp_path / "artifacts"
    first = spawn(
        *_export(corpus_models / "good.keras", out, "--to", "tflite", "-q", "none"),
        cwd=tmp_path,
        env={"CNNX_FAULT_AFTER": "staged:artifacts", "CNNX_FAULT_SIGNAL": "STOP"},
    )
    try:
        wait_until_stopped(first.pid)
        second = spawn(
            *_export(corpus_models / "good.keras", out, "--to", "tfjs", "-q", "none", "--wait"),
            cwd=tmp_path,
        )
        assert second.stderr is not None
        line = second.stderr.readline()
        assert f"waiting for pid {first.pid}" in line, line
    finally:
        os.kill(first.pid, signal.SIGCONT)
    first_code, _, first_err = finish(first)
    second_code, _, second_err = finish(second)
    assert first_code == 0, first_err
    assert second_code == 0, second_err
    manifest = json.loads((out / "manifest.json").read_text())
    assert {"savedmodel", "tflite_float32", "tfjs_float32"} <= set(manifest["artifacts"])
    for entry in manifest["artifacts"].values():
        for record in entry["files"]:
            assert (out / record["path"]).is_file(), record["path"]


def wait_until_stopped(pid: int, timeout: float = 300) -> None:
    """Until the process is in state T (stopped by the fault hook's SIGSTOP)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "T":
            return
        if state == "Z":
            raise AssertionError(f"process {pid} ended before its fault step")
        time.sleep(0.05)
    raise AssertionError(f"process {pid} never reached its fault step")


def test_without_wait_a_concurrent_export_never_loses_the_others_artifact(
    corpus_models: Path, tmp_path: Path
) -> None:
    out = tmp_path / "artifacts"
    jobs = {
        "tflite_float32": spawn(
            *_export(corpus_models / "good.keras", out, "--to", "tflite", "-q", "none"),
            cwd=tmp_path,
        ),
        "tfjs_float32": spawn(
            *_export(corpus_models / "good.keras", out, "--to", "tfjs", "-q", "none"), cwd=tmp_path
        ),
    }
    results = {artifact: finish(process) for artifact, process in jobs.items()}
    manifest = json.loads((out / "manifest.json").read_text())
    for artifact, (code, _, err) in results.items():
        assert code in (0, 3), err
        if code == 3:
            assert "being written by another cnnx" in err
        else:  # every export that said it succeeded is in the final folder
            assert artifact in manifest["artifacts"], (artifact, sorted(manifest["artifacts"]))
    assert any(code == 0 for code, _, _ in results.values())
