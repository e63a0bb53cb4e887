"""Write files and folders so that a reader never sees half of them.

Everything is built in a temporary sibling (same filesystem, so rename is atomic) and
renamed into place; an interrupted write leaves the old content untouched.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from toolkit.errors import PathError, ResourceError


def _machine_error(path: Path, error: OSError) -> Exception:
    if error.errno == errno.ENOSPC:
        return ResourceError(f"no space left on device while writing {path}", "free disk space")
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return PathError(f"cannot write to {path}: {error.strerror}", "choose another --out")
    return PathError(f"cannot write {path}: {error.strerror or error}")


def ensure_writable_dir(path: Path) -> None:
    """Create `path` if needed and prove it is writable, with a clear error if not."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".cnnx-probe-"):
            pass
    except OSError as error:
        raise _machine_error(path, error) from None


@contextlib.contextmanager
def staged_dir(final: Path, *, replace: bool = True) -> Iterator[Path]:
    """Yield a fresh temporary folder beside `final`; on success rename it to `final`.

    With replace=False an existing `final` is an error (never silently merged).
    On any exception the temporary folder is removed and `final` is left as it was.
    """
    final = Path(final)
    if final.exists() and not replace:
        raise PathError(f"{final} already exists", "remove it or choose another --out")
    ensure_writable_dir(final.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
        _swap_into_place(tmp, final)
    except OSError as error:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _machine_error(final, error) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _swap_into_place(tmp: Path, final: Path) -> None:
    if final.is_dir() and not final.is_symlink():
        # Move the old one aside first: a rename cannot replace a non-empty folder.
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    path = Path(path)
    ensure_writable_dir(path.parent)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise _machine_error(path, error) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")
