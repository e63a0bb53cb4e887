"""Where a command may write: never over what it reads, and one writer at a time.

`refuse_overlap(out, reads)`: an output folder (export's artifacts, a bundle, bench's
report, a run) is replaced whole, so it must never be, contain or sit inside anything
the command reads: the source model or run, the artifacts folder, the data. `--force`
does not change that: it replaces another model's output, never the input. Paths are
compared after resolving symlinks, and folders by device and inode too, so a symlink,
a bind mount or `..` cannot disguise an overlap.

`output_lock(out)`: an advisory lock (flock) on a sibling file `.NAME.lock`. A second
writer of the same folder fails at once (exit 3, naming the holder's pid) or, with
`wait=True`, waits its turn. Without it two exports of different formats into one
folder could each read the old manifest and the later swap would drop the other's
artifact. The kernel drops the lock when its holder dies (even by SIGKILL), so a lock
left by a killed process is simply taken by the next writer; the lock file holds the
holder's pid for the message only.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path

from toolkit.core.atomic import fault_point, machine_error
from toolkit.errors import CnnxWarning, PathError

LOCK_SUFFIX = ".lock"


# --- never write over what is read -----------------------------------------------------


def refuse_overlap(
    out: Path,
    reads: Mapping[str, Path | str | None],
    *,
    flag: str = "--out",
    inside_ok: frozenset[str] = frozenset(),
) -> None:
    """PathError (exit 3) when `out` is, contains or sits inside any path of `reads`
    (a name such as 'source model' -> its path; None entries are skipped). Names in
    `inside_ok` may hold `out` (bench's report folder inside the artifacts folder)."""
    target = _resolved(out)
    for name, read in reads.items():
        if read is None:
            continue
        source = _resolved(read)
        if _same(target, source):
            relation = "is"
        elif _within(source, target):
            relation = "contains"
        elif _within(target, source) and name not in inside_ok and source != Path(source.anchor):
            # Everything sits inside the root: a read of "/" is refused by its reader
            # (the data walk says why), not here.
            relation = "sits inside"
        else:
            continue
        raise PathError(
            f"{flag} {out} {relation} the {name} being read ({read}); writing there would "
            "destroy it",
            f"choose an {flag} outside it (--force does not change this)",
        )


def _resolved(path: Path | str) -> Path:
    try:
        return Path(os.path.realpath(Path(path).expanduser()))
    except (OSError, ValueError):
        return Path(os.path.abspath(path))


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    return (info.st_dev, info.st_ino)


def _same(a: Path, b: Path) -> bool:
    if a == b:
        return True
    ident = _identity(a)
    return ident is not None and ident == _identity(b)


def _within(inner: Path, outer: Path) -> bool:
    """True when `inner` lies strictly below `outer` (by path, or by inode of a parent)."""
    if inner != outer and inner.is_relative_to(outer):
        return True
    ident = _identity(outer)
    if ident is None:
        return False
    return any(_identity(parent) == ident for parent in inner.parents)


# --- one writer at a time --------------------------------------------------------------


def lock_path(out: Path) -> Path:
    out = Path(out)
    return out.parent / f".{out.name}{LOCK_SUFFIX}"


@contextlib.contextmanager
def output_lock(out: Path, *, wait: bool = False) -> Iterator[None]:
    """Hold the advisory lock of output folder `out` for the duration of the block.

    The lock file is removed on release. A waiter that locked the file just removed
    (it opened it before the unlink) notices the inode changed and tries again.
    """
    path = lock_path(out)
    made = _make_parents(path.parent)
    try:
        with _locked(path, out, wait):
            yield
    except BaseException:
        for folder in made:  # a failed command leaves no empty folders behind
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def _make_parents(folder: Path) -> list[Path]:
    """Create `folder` and its missing parents; return those created, deepest first."""
    missing = []
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            break
        missing.append(candidate)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise PathError(
            f"cannot create {folder}: {error.strerror}", "choose another --out"
        ) from None
    return missing


@contextlib.contextmanager
def _locked(path: Path, out: Path, wait: bool) -> Iterator[None]:
    announced = False
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
        except OSError as error:
            raise PathError(f"cannot lock {out} ({path}): {error.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            if not wait:
                os.close(fd)
                raise PathError(
                    f"{out} is being written by another cnnx ({holder})",
                    "wait for it to finish, or pass --wait to wait for it",
                ) from None
            if not announced:
                warnings.warn(
                    CnnxWarning(f"waiting for {holder}, which is writing {out}"), stacklevel=2
                )
                announced = True
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except BaseException:
                os.close(fd)
                raise
        if _identity_of_fd(fd) == _identity(path):
            break
        os.close(fd)  # the previous holder removed this file: lock the new one
    try:
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError as error:  # a full disk refuses even the pid: exit 11 before any work
            raise machine_error(out, error) from None
        fault_point(f"locked:{out.name}")
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)


def _identity_of_fd(fd: int) -> tuple[int, int]:
    info = os.fstat(fd)
    return (info.st_dev, info.st_ino)


def _holder(fd: int) -> str:
    """'pid N' of the lock's holder (it writes its pid just after locking)."""
    for _ in range(20):
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        if text.isdigit():
            return f"pid {text}"
        time.sleep(0.01)
    return "a process that has not written its pid yet"
