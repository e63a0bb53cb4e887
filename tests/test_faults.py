"""Faults: writers killed at any point, a full disk, runtimes that crash or hang.

Kills use the real CLI in a subprocess: either at a named step (CNNX_FAULT_AFTER, the
hook in toolkit/core/atomic.py, which SIGKILLs the process there) or with a SIGKILL while
the converters write. After every kill the artifacts folder must be exactly
the old one or exactly the new one, its manifest valid and every file matching its hash;
the next run must succeed and sweep what the killed one left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli import Done, cnnx, spawn
from tests.corpus import files
from toolkit.manifest import load_manifest

pytestmark = pytest.mark.slow


def reexport(run: Path, quantize: str, out: Path) -> tuple[str, ...]:
    """`cnnx export` of one TFLite precision of `run` into the artifacts folder `out`."""
    return ("export", "--model", str(run), "--to", "tflite", "--quantize", quantize,
            "--samples", "0", "--out", str(out))  # fmt: skip


def assert_consistent(folder: Path) -> set[str]:
    """The manifest loads, every file it names matches its hash, nothing else is there."""
    manifest = load_manifest(folder)
    named = {"manifest.json"}
    for entry in manifest.artifacts.values():
        manifest.check_files(entry)
        named.update(record["path"] for record in entry.files)
    on_disk = {p for p, kind in files.snapshot(folder).items() if kind not in ("dir", "link")}
    stray = {p for p in on_disk - named if not p.startswith("samples/")}
    assert not stray, f"files no manifest entry names: {sorted(stray)[:10]}"
    return set(manifest.artifacts)


def leftovers(parent: Path, name: str) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}."))


# --- export killed at named steps ---------------------------------------------------------


# The two states a SIGKILL at a step can leave: the staging folder complete beside the old
# one (everything written before, manifest.json included, is inside it) and the new folder
# in place with the old copy not yet removed; the next run sweeps either.
@pytest.mark.parametrize("step", ["staged:artifacts", "swapped:artifacts"])
def test_export_killed_at_a_step_keeps_a_whole_folder_and_the_next_run_succeeds(
    step: str, artifacts: Path, tiny_run: Path, tmp_path: Path
) -> None:
    out = files.copy_tree(artifacts, tmp_path / "artifacts")
    before = files.snapshot(out)
    old_float16 = load_manifest(out).artifacts["tflite_float16"].files
    args = reexport(tiny_run, "float16", out)
    killed = cnnx(*args, env={"CNNX_FAULT_AFTER": step}, process=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr

    ids = assert_consistent(out)
    assert {"tflite_float32", "tflite_float16", "tflite_dynamic", "tflite_int8"} <= ids
    if step == "swapped:artifacts":
        # The new folder is in place; only the removal of the old copy was cut short.
        assert load_manifest(out).artifacts["tflite_float16"].files is not None
        assert leftovers(tmp_path, "artifacts"), "the old copy should still be beside it"
    else:
        assert files.snapshot(out) == before, "the previous artifacts changed"
        assert load_manifest(out).artifacts["tflite_float16"].files == old_float16

    again = cnnx(*args)
    assert again.returncode == 0, again.stderr
    assert_consistent(out)
    assert leftovers(tmp_path, "artifacts") == [], "a killed export's temp folder survived"


def test_export_sigkilled_while_converting_leaves_the_folder_as_it_was(
    artifacts: Path, tiny_run: Path, tmp_path: Path
) -> None:
    # Killed while the converters write into the staging folder (after the first of the
    # four precisions): the folder is exactly what it was. (A kill at a moment chosen by
    # the clock mostly landed in TensorFlow's import, before anything was written.)
    out = files.copy_tree(artifacts, tmp_path / "artifacts")
    args = reexport(tiny_run, "dynamic", out)
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    before = files.snapshot(out)
    every_precision = [arg for arg in args if arg not in ("--quantize", "dynamic")]
    process = spawn(*every_precision, **quiet)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if list(tmp_path.glob(".artifacts.tmp-*/tflite/*.tflite")):
            break
        time.sleep(0.05)
    assert process.poll() is None, "the export finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert_consistent(out)
    assert files.snapshot(out) == before, "a kill before the swap changed the artifacts"
    done = cnnx(*args)
    assert done.returncode == 0, done.stderr
    assert_consistent(out)
    assert leftovers(tmp_path, "artifacts") == []


# --- package killed -------------------------------------------------------------------------


@pytest.mark.parametrize("step", ["staged:rpi", "written:rpi.zip"])
def test_package_killed_keeps_the_previous_bundle(
    step: str, artifacts: Path, tmp_path: Path
) -> None:
    out = tmp_path / "bundles" / "rpi"
    first = cnnx("package", "--target", "rpi", str(artifacts), "--out", str(out))
    assert first.returncode == 0, first.stderr
    before = files.snapshot(out.parent)
    killed = cnnx(
        "package",
        "--target",
        "rpi",
        str(artifacts),
        "--out",
        str(out),
        "--force",
        env={"CNNX_FAULT_AFTER": step},
        process=True,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    after = files.snapshot(out.parent)
    visible = {k: v for k, v in after.items() if not k.startswith(".")}
    if step == "staged:rpi":
        assert visible == before, "the previous bundle changed"
    else:
        # The new folder is complete and in place; the old zip is still whole.
        assert visible.keys() == before.keys()
        assert visible["rpi.zip"] == before["rpi.zip"]
    again = cnnx("package", "--target", "rpi", str(artifacts), "--out", str(out), "--force")
    assert again.returncode == 0, again.stderr
    assert not [k for k in files.snapshot(out.parent) if k.startswith(".")], "leftovers"


# --- a full disk -----------------------------------------------------------------------------


@contextlib.contextmanager
def small_disk(where: Path, size: str) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.mark.parametrize("size", ["8k", "40k", "96k"])
def test_full_disk_during_export_is_exit_11_and_leaves_nothing(
    size: str, corpus_models: Path, tmp_path: Path
) -> None:
    # Three sizes: the disk fills in a copy, in TensorFlow's SavedModel writer, or later.
    with small_disk(tmp_path / "disk", size) as disk:
        done = cnnx(
            "export",
            "--model",
            str(corpus_models / "good.keras"),
            "--to",
            "tflite",
            "--quantize",
            "none",
            "--samples",
            "0",
            "--out",
            str(disk / "artifacts"),
        )
        assert done.returncode == 11, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "no space left on device" in lines[0], done.stderr
        assert "Traceback" not in done.stderr
        assert list(disk.iterdir()) == [], "a failed export left files on the full disk"


def test_full_disk_during_re_export_keeps_the_previous_artifacts(
    artifacts: Path, tiny_run: Path, tmp_path: Path
) -> None:
    with small_disk(tmp_path / "measure", "64m") as roomy:
        files.copy_tree(artifacts, roomy / "artifacts")
        used = _used_kib(roomy)  # in the disk's own blocks: many small files round up
    # Room for the old artifacts, not for a second copy of the SavedModel beside them.
    with small_disk(tmp_path / "disk", f"{used + 48}k") as disk:
        out = files.copy_tree(artifacts, disk / "artifacts")
        before = files.snapshot(out)
        done = cnnx(*reexport(tiny_run, "float16", out))
        assert done.returncode == 11, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert files.snapshot(out) == before
        assert sorted(p.name for p in disk.iterdir()) == ["artifacts"]


def fill(disk: Path) -> None:
    """Take every free block of `disk` (a tmpfs) with one file."""
    with open(disk / "filler", "wb", buffering=0) as handle, contextlib.suppress(OSError):
        while True:
            handle.write(b"\0" * 4096)


def assert_refused_for_space(done: Done) -> None:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 11, done.stderr
    assert len(lines) == 1 and "no space left on device" in lines[0], done.stderr
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr


def test_bench_on_a_full_disk_is_exit_11_and_writes_no_report(
    artifacts: Path, tmp_path: Path
) -> None:
    with small_disk(tmp_path / "disk", "64k") as disk:
        fill(disk)
        before = files.snapshot(disk)
        done = cnnx(
            "bench", str(artifacts), "--runtimes", "litert", "--artifacts", "tflite_float32",
            "--runs", "3", "--out", str(disk / "report"),
        )  # fmt: skip
        assert_refused_for_space(done)
        assert files.snapshot(disk) == before, "a failed bench left files on the full disk"


def _used_kib(folder: Path) -> int:
    info = os.statvfs(folder)
    return (info.f_blocks - info.f_bfree) * info.f_frsize // 1024


@pytest.mark.parametrize("where", ["full from the start", "full at the zip"])
def test_rpi_package_on_a_full_disk_is_exit_11_and_writes_nothing(
    where: str, artifacts: Path, tmp_path: Path
) -> None:
    args = ["package", "--target", "rpi", str(artifacts), "--out"]
    size = "64k"
    if where == "full at the zip":
        # Room for the bundle's folder and half its zip: the disk fills while the zip is
        # written, after every other file of the bundle.
        with small_disk(tmp_path / "measure", "4m") as roomy:
            done = cnnx(*args, str(roomy / "rpi"))
            assert done.returncode == 0, done.stderr
            zipped = (roomy / "rpi.zip").stat().st_size // 1024
            size = f"{_used_kib(roomy) - zipped // 2}k"
    with small_disk(tmp_path / "disk", size) as disk:
        if where == "full from the start":
            fill(disk)
        before = files.snapshot(disk)
        done = cnnx(*args, str(disk / "rpi"))
        assert_refused_for_space(done)
        assert files.snapshot(disk) == before, "a failed package left files on the full disk"


# --- runtimes that crash or hang ---------------------------------------------------------


def _fake_node(folder: Path, body: str) -> Path:
    script = folder / "node"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(0o755)
    return script


@pytest.mark.parametrize(
    "behaviour, body",
    [
        ("crashes", "echo 'Segmentation fault' >&2; kill -SEGV $$"),
        ("hangs", "exec sleep 600"),  # `node --version` (the report's machine record) too
        # Answers `--version` as node does, so that only the runner talks nonsense.
        (
            "talks nonsense",
            "[ \"$1\" = --version ] && exec echo v20.0.0\necho '{not json'; exec sleep 600",
        ),
    ],
)
def test_a_node_runtime_that_fails_is_its_rows_failure_and_the_bench_goes_on(
    behaviour: str, body: str, artifacts: Path, tmp_path: Path
) -> None:
    node = _fake_node(tmp_path, body)
    start = time.perf_counter()
    done = cnnx(
        "bench",
        str(artifacts),
        "--runtimes",
        "litert,tfjs-node",
        "--artifacts",
        "tflite_float32,tfjs_float32",
        "--runs",
        "3",
        "--warmup",
        "1",
        "--limit",
        "8",
        "--no-plots",
        "--timeout",
        "2",  # the fake node never answers: any limit ends its rows
        "--backends",
        "wasm",
        "--out",
        str(tmp_path / "report"),
        env={"CNNX_NODE": str(node)},
    )
    elapsed = time.perf_counter() - start
    assert "Traceback" not in done.stderr
    assert done.returncode != 0, "a failed runtime row must fail the bench"
    assert elapsed < 90, f"the bench waited {elapsed:.0f}s on a {behaviour} node"
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    rows = report["rows"]
    by_runtime: dict[str, list[dict[str, object]]] = {}
    for row in rows:
        by_runtime.setdefault(str(row["runtime"]), []).append(row)
    assert all(row["status"] == "ok" for row in by_runtime["litert"]), by_runtime["litert"]
    node_rows = by_runtime["tfjs-node"]
    assert node_rows and all(row["status"] == "failed" for row in node_rows), node_rows
    assert all(row.get("reason") for row in node_rows)
