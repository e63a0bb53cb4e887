"""toolkit/core/atomic.py: folder replacement with no gap, leftovers swept, errors typed."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from toolkit.core import atomic
from toolkit.errors import PathError, ResourceError


def _fill(folder: Path, version: int) -> None:
    for i in range(5):
        (folder / f"f{i}.txt").write_text(f"{version}\n")


def test_replacing_a_folder_never_leaves_it_missing_or_mixed(tmp_path: Path) -> None:
    final = tmp_path / "artifacts"
    with atomic.staged_dir(final) as tmp:
        _fill(tmp, 0)
    seen: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        # A reader that opens the folder once sees one version throughout; by path,
        # it could straddle two swaps, which no rename scheme can prevent.
        while not stop.is_set():
            try:
                fd = os.open(final, os.O_RDONLY | os.O_DIRECTORY)
            except FileNotFoundError:
                seen.append("missing")
                continue
            try:
                try:
                    names = sorted(os.listdir(fd))
                    texts = set()
                    for name in names:
                        handle = os.open(name, os.O_RDONLY, dir_fd=fd)
                        texts.add(os.read(handle, 100))
                        os.close(handle)
                except FileNotFoundError:
                    names, texts = [], set()
                complete = names == [f"f{i}.txt" for i in range(5)] and len(texts) == 1
                # A folder opened just before a swap is the old version, which the writer
                # then deletes under the reader: not what the path shows, so not a fault.
                try:
                    replaced = os.fstat(fd).st_ino != os.stat(final).st_ino
                except FileNotFoundError:
                    seen.append("missing")
                    continue
            finally:
                os.close(fd)
            if not complete and not replaced:
                seen.append(f"mixed {names} {texts}")

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for version in range(1, 150):
            with atomic.staged_dir(final) as tmp:
                _fill(tmp, version)
    finally:
        stop.set()
        thread.join()
    assert atomic._RENAMEAT2 is not None, "renameat2 should be available on this Linux"
    assert seen == [], seen[:5]
    assert (final / "f0.txt").read_text() == "149\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artifacts"]


def test_the_two_rename_fallback_still_replaces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(atomic, "_RENAMEAT2", None)
    final = tmp_path / "out"
    for version in (1, 2):
        with atomic.staged_dir(final) as tmp:
            _fill(tmp, version)
    assert (final / "f3.txt").read_text() == "2\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_an_exchange_the_filesystem_refuses_falls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_: object) -> int:
        import ctypes

        ctypes.set_errno(errno.EINVAL)
        return -1

    monkeypatch.setattr(atomic, "_RENAMEAT2", refuse)
    final = tmp_path / "out"
    for version in (1, 2):
        with atomic.staged_dir(final) as tmp:
            _fill(tmp, version)
    assert (final / "f0.txt").read_text() == "2\n"


def test_a_failure_inside_leaves_the_old_folder_and_no_temp(tmp_path: Path) -> None:
    final = tmp_path / "out"
    with atomic.staged_dir(final) as tmp:
        _fill(tmp, 1)
    with pytest.raises(RuntimeError), atomic.staged_dir(final) as tmp:
        _fill(tmp, 2)
        raise RuntimeError("converter failed")
    assert (final / "f0.txt").read_text() == "1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize(
    ("maker", "write", "kind"),
    [
        ("mkdir", lambda out: atomic.private_dir(out, "src").__enter__(), "src"),
        ("open", lambda out: atomic.write_text_atomic(out, "new"), "tmp"),
    ],
    ids=["scratch-folder", "file"],
)
def test_an_interrupt_just_after_a_temporary_is_made_still_removes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, maker: str, write: Any, kind: str
) -> None:
    """A signal's handler runs at whichever line comes next, here the one right after
    the system call that made the temporary; it must already be known to the clean-up."""
    from toolkit.core.signals import Terminated

    real = getattr(os, maker)

    def make_then_signal(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        if not os.path.basename(args[0]).startswith(".out."):
            return result  # another file (the writability probe)
        if isinstance(result, int):
            os.close(result)
        raise Terminated

    monkeypatch.setattr(os, maker, make_then_signal)
    with pytest.raises(Terminated):
        write(tmp_path / "out")
    monkeypatch.undo()
    names = [p.name for p in tmp_path.iterdir()]
    assert len(names) == 1 and names[0].startswith(f".out.{kind}-"), names
    atomic.remove_private_paths()  # what the CLI does on its way out after an interrupt
    assert list(tmp_path.iterdir()) == []


def test_leftovers_of_dead_writers_are_swept_and_live_ones_kept(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(dead.stdout)
    (tmp_path / f".out.tmp-{dead_pid}-abc").mkdir()
    (tmp_path / f".out.old-{dead_pid}-def").mkdir()
    (tmp_path / f".manifest.json.tmp-{dead_pid}-x").write_text("half")
    live = tmp_path / f".out.tmp-{os.getppid()}-zzz"
    live.mkdir()
    with atomic.staged_dir(tmp_path / "out") as tmp:
        _fill(tmp, 1)
    atomic.write_text_atomic(tmp_path / "manifest.json", "{}")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["out", "manifest.json", live.name])


def test_fault_point_kills_only_at_the_named_step(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from toolkit.core import atomic;"
        f"atomic.write_text_atomic(Path({str(tmp_path)!r}) / 'a.json', 'new')"
    )
    (tmp_path / "a.json").write_text("old")
    env = {**os.environ, "CNNX_FAULT_AFTER": "written:a.*"}
    done = subprocess.run([sys.executable, "-c", code], env=env, check=False)
    assert done.returncode == -9
    assert (tmp_path / "a.json").read_text() == "old"
    env["CNNX_FAULT_AFTER"] = "written:b.json"
    done = subprocess.run([sys.executable, "-c", code], env=env, check=False)
    assert done.returncode == 0
    assert (tmp_path / "a.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_disk_full_is_a_resource_error_whoever_reports_it(tmp_path: Path) -> None:
    nospace = OSError(errno.ENOSPC, "No space left on device")
    assert isinstance(atomic.machine_error(tmp_path, nospace), ResourceError)
    gathered = shutil.Error([("a", "b", "[Errno 28] No space left on device: 'a'")])
    assert isinstance(atomic.machine_error(tmp_path, gathered), ResourceError)
    assert isinstance(atomic.machine_error(tmp_path, OSError(errno.EACCES, "denied")), PathError)

    class ResourceExhaustedError(Exception):  # what TensorFlow's writers raise
        pass

    final = tmp_path / "out"
    with pytest.raises(ResourceError), atomic.staged_dir(final):
        raise ResourceExhaustedError("saved_model.pb; No space left on device")
    assert not final.exists() and list(tmp_path.iterdir()) == []


def test_out_that_is_a_file_is_a_path_error(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(PathError), atomic.staged_dir(tmp_path / "afile" / "out"):
        pass


# A signal seen by the C-level handler (the wakeup pipe written) while Python's handler
# has not run yet, as when TensorFlow holds the main thread in C++; and a handler's
# exception swallowed by a layer in between. Either way the folder must not be swapped.
_PENDING_SIGNAL = """
import os, signal, sys
from pathlib import Path
from toolkit.core import atomic, signals

signals.install()
final = Path(sys.argv[1])
how = sys.argv[2]
try:
    with atomic.staged_dir(final) as tmp:
        (tmp / "f.txt").write_text("new")
        if how == "pending":
            write_end = signal.set_wakeup_fd(-1)
            signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
            os.write(write_end, bytes([signal.SIGTERM]))  # what the C-level handler writes
        else:
            try:
                os.kill(os.getpid(), signal.SIGINT)
                sum(range(1000))  # the handler raises here...
            except BaseException:
                pass  # ...and something in between swallows it
except (KeyboardInterrupt, signals.Terminated) as interrupt:
    print(type(interrupt).__name__)
"""


@pytest.mark.parametrize(
    ("how", "raised"), [("pending", "Terminated"), ("swallowed", "KeyboardInterrupt")]
)
def test_an_interrupt_not_yet_raised_still_stops_the_swap(
    tmp_path: Path, how: str, raised: str
) -> None:
    final = tmp_path / "out"
    final.mkdir()
    (final / "f.txt").write_text("old")
    done = subprocess.run(
        [sys.executable, "-c", _PENDING_SIGNAL, str(final), how],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.stdout.strip() == raised, done.stderr
    assert (final / "f.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
