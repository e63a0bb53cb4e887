"""Write files and folders so that a reader never sees half of them.

Everything is built in a temporary sibling (same filesystem, so rename is atomic) and
renamed into place; an interrupted write leaves the old content untouched. Replacing an
existing folder swaps the two names in one step (Linux `renameat2(RENAME_EXCHANGE)`), so
there is no moment when the final folder is absent; where the kernel or filesystem
cannot exchange, it falls back to two renames.

`fault_point(step)` is the one test hook: with `CNNX_FAULT_AFTER=<step>` in the
environment the process kills itself with SIGKILL (or sends itself the signal named by
`CNNX_FAULT_SIGNAL`: INT, TERM, STOP) when it reaches that step, which is how the fault tests
interrupt a writer at an exact point. Steps are named
`staged:<folder name>` (content complete, not yet in place), `swapped:<folder name>`
(new content in place, old copy not yet removed) and `written:<file name>` (a file's
temporary copy complete, not yet renamed).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fnmatch
import glob
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from toolkit.core import signals
from toolkit.errors import PathError, ResourceError, shorten

FAULT_ENV = "CNNX_FAULT_AFTER"
FAULT_SIGNAL_ENV = "CNNX_FAULT_SIGNAL"
_FAULT_SIGNALS = {
    "KILL": signal.SIGKILL,
    "TERM": signal.SIGTERM,
    "INT": signal.SIGINT,
    "STOP": signal.SIGSTOP,  # paused there until a SIGCONT: a writer held mid-transaction
}

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
# Errors that mean "this kernel or filesystem cannot exchange", not "the rename failed".
_NO_EXCHANGE = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP}


def fault_point(step: str) -> None:
    """Die here, as a SIGKILL would, when CNNX_FAULT_AFTER names this step (a glob).

    With CNNX_FAULT_SIGNAL=INT or TERM the process sends itself that signal instead:
    its handler (toolkit/core/signals.py) raises at the next line, as a Ctrl+C or a `kill`
    arriving at exactly this step would. STOP pauses it there until a SIGCONT.
    """
    wanted = os.environ.get(FAULT_ENV)
    if wanted and fnmatch.fnmatchcase(step, wanted):
        sys.stdout.flush()
        sys.stderr.flush()
        name = os.environ.get(FAULT_SIGNAL_ENV, "KILL").upper()
        os.kill(os.getpid(), _FAULT_SIGNALS.get(name, signal.SIGKILL))


def machine_error(path: Path, error: OSError) -> Exception:
    """The typed error for an OSError met while writing `path` (disk full -> exit 11)."""
    if isinstance(error, shutil.Error):
        # copytree gathers its failures as text: (src, dst, "[Errno 28] No space ...").
        text = str(error.args[0] if error.args else error)
        if f"[Errno {errno.ENOSPC}]" in text or f"[Errno {errno.EDQUOT}]" in text:
            return ResourceError(f"no space left on device while writing {path}", "free disk space")
        return PathError(f"cannot write {path}: {shorten(text)}")
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return ResourceError(f"no space left on device while writing {path}", "free disk space")
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return PathError(f"cannot write to {path}: {error.strerror}", "choose another --out")
    return PathError(f"cannot write {path}: {error.strerror or error}")


# This process's own temporary files and folders (staging, scratch) while they exist. After
# SIGINT or SIGTERM the CLI removes whatever is left here before it exits, even where the
# interrupt landed somewhere no `finally` could see it (a C++ call, a finalizer).
_PRIVATE: set[Path] = set()


@contextlib.contextmanager
def private_dir(final: Path, kind: str) -> Iterator[Path]:
    """A new folder `.NAME.KIND-PID-…` beside `final`, removed on leaving the block (its
    pid lets the next writer sweep it if this process is killed first)."""
    tmp = _new_private_path(final, kind, folder=True)
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        _PRIVATE.discard(tmp)


def _new_private_path(final: Path, kind: str, *, folder: bool) -> Path:
    """Create the empty folder or file `.NAME.KIND-PID-…` beside `final`, registered
    before it exists.

    A signal can land between any two lines; registering the name first means there is
    no moment when the path exists and `remove_private_paths` does not know it.
    """
    prefix = f".{final.name}.{kind}-{os.getpid()}-"
    while True:
        path = final.parent / (prefix + secrets.token_hex(4))
        _PRIVATE.add(path)
        try:
            if folder:
                os.mkdir(path, 0o700)
            else:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            _PRIVATE.discard(path)
            continue
        except OSError:  # nothing was made (an interrupt, by contrast, keeps the name)
            _PRIVATE.discard(path)
            raise
        return path


def remove_private_paths() -> None:
    """Remove this process's temporary files and folders (once, on the way out)."""
    for path in list(_PRIVATE):
        _remove(path)
        _PRIVATE.discard(path)


def ensure_writable_dir(path: Path) -> None:
    """Create `path` if needed and prove it is writable, with a clear error if not."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise PathError(f"{path} is a file, not a folder", "choose another --out")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = _new_private_path(path / "cnnx", "probe", folder=False)
        _remove(probe)
        _PRIVATE.discard(probe)
    except OSError as error:
        raise machine_error(path, error) from None


@contextlib.contextmanager
def staged_dir(final: Path, *, replace: bool = True) -> Iterator[Path]:
    """Yield a fresh temporary folder beside `final`; on success swap it into `final`.

    With replace=False an existing `final` is an error (never silently merged).
    On any exception the temporary folder is removed and `final` is left as it was.
    """
    final = Path(final)
    if final.exists() and not replace:
        raise PathError(f"{final} already exists", "remove it or choose another --out")
    ensure_writable_dir(final.parent)
    sweep_stale(final)
    with private_dir(final, "tmp") as tmp:
        try:
            yield tmp
            fault_point(f"staged:{final.name}")
            signals.raise_if_interrupted()  # a signal still pending must stop the swap
            if not replace and os.path.lexists(final):  # made by someone else meanwhile
                raise PathError(f"{final} already exists", "remove it or choose another --out")
            replace_dir(tmp, final)  # tmp now holds the old content, removed on leaving
        except OSError as error:
            raise machine_error(final, error) from None
        except Exception as error:
            if disk_full(error) and not isinstance(error, ResourceError):
                # TensorFlow's C++ writers raise their own types, not OSError, on ENOSPC.
                raise ResourceError(
                    f"no space left on device while writing {final}", "free disk space"
                ) from None
            raise


_DISK_FULL = (
    "No space left on device",
    "Disk quota exceeded",
    f"[Errno {errno.ENOSPC}]",
    f"[Errno {errno.EDQUOT}]",
)


def disk_full(error: BaseException) -> bool:
    """True when an error of any library says the disk (or quota) is full."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(error)
    return any(sign in text for sign in _DISK_FULL)


def replace_dir(new: Path, final: Path) -> None:
    """Put the folder `new` at `final`, atomically replacing whatever is there.

    `new` must be on the same filesystem as `final` (a sibling). Afterwards `new` no
    longer exists.
    """
    new, final = Path(new), Path(final)
    if not os.path.lexists(final):
        os.rename(new, final)
        fault_point(f"swapped:{final.name}")
        return
    if _exchange(new, final):
        # `new` now holds the previous content; readers of `final` saw old, then new.
        fault_point(f"swapped:{final.name}")
        _remove(new)
        return
    # Fallback: move the old one aside first (a rename cannot replace a non-empty
    # folder); a reader in between finds `final` missing, never half-written.
    old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-{os.getpid()}-", dir=final.parent))
    old.rmdir()  # only the unique name is wanted
    os.replace(final, old)
    os.replace(new, final)
    fault_point(f"swapped:{final.name}")
    _remove(old)


def sweep_stale(final: Path) -> None:
    """Remove temporary siblings of `final` left by a writer that was killed.

    Their names (`.NAME.tmp-PID-…`, `.NAME.old-PID-…`, the scratch `.NAME.src-PID-…`)
    carry the writer's pid; one whose process is gone is garbage.
    """
    final = Path(final)
    for kind in ("tmp", "old", "src"):
        for leftover in final.parent.glob(f".{glob.escape(final.name)}.{kind}-*-*"):
            pid_text = leftover.name[len(final.name) + len(kind) + 3 :].split("-", 1)[0]
            if pid_text.isdigit() and not _alive(int(pid_text)):
                _remove(leftover)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def _renameat2() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        function = libc.renameat2  # glibc >= 2.28
    except (OSError, AttributeError):
        return None
    function.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    function.restype = ctypes.c_int
    return function


_RENAMEAT2 = _renameat2()


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step. False when the system cannot (then nothing changed)."""
    if _RENAMEAT2 is None:
        return False
    result = _RENAMEAT2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in _NO_EXCHANGE:
        return False
    raise OSError(code, os.strerror(code), str(b))


@contextlib.contextmanager
def replacing_file(path: Path) -> Iterator[str]:
    """Yield a temporary sibling's name; once written, one rename makes it `path`.

    The rename needs no space: a file written in full inside this block and another
    block nested in it (a bundle folder and its zip) are put in place by renames only,
    so a full disk fails before either is.
    """
    path = Path(path)
    ensure_writable_dir(path.parent)
    sweep_stale(path)
    tmp = _new_private_path(path, "tmp", folder=False)
    try:
        yield str(tmp)
        fault_point(f"written:{path.name}")
        signals.raise_if_interrupted()
        os.replace(tmp, path)
    except OSError as error:
        _remove(tmp)
        raise machine_error(path, error) from None
    except BaseException:
        _remove(tmp)
        raise
    finally:
        _PRIVATE.discard(tmp)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write a file through a temporary sibling and one rename."""
    with replacing_file(path) as tmp_name, open(tmp_name, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")
