"""Zip a bundle folder so that unpacking it can never write outside its own folder.

Every member name is checked before anything is written: no absolute path, no `..`,
no backslash or drive letter (they mean something else on Windows), and no symlink
(unzip tools follow them). Members are stored under one top folder, sorted, with fixed
timestamps, so the same bundle gives the same zip bytes.
"""

from __future__ import annotations

import io
import os
import stat
import zipfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from toolkit.core.atomic import write_bytes_atomic
from toolkit.errors import PathError

# 1980-01-01, the earliest time a zip can hold: reproducible bytes, no clock in them.
FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def safe_member_name(name: str) -> str:
    """The name as stored in the zip, or PathError if unpacking it could escape."""
    if not name or "\\" in name or "\x00" in name:
        raise PathError(f"refusing zip member {name!r}: empty, backslash or NUL in the name")
    path = PurePosixPath(name)
    if path.is_absolute() or (len(name) > 1 and name[1] == ":"):
        raise PathError(f"refusing zip member {name!r}: absolute path")
    if any(part in ("..", "") for part in name.split("/")) or ".." in path.parts:
        raise PathError(f"refusing zip member {name!r}: '..' or an empty part would escape")
    return path.as_posix()


def bundle_members(folder: Path) -> list[tuple[Path, str]]:
    """(file, member name) for every file below `folder`; symlinks and specials refused."""
    folder = Path(folder)
    members: list[tuple[Path, str]] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        here = Path(dirpath)
        for name in sorted(dirnames) + sorted(filenames):
            path = here / name
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                raise PathError(
                    f"refusing to zip the symlink {path}",
                    "a bundle holds regular files only; copy the target in instead",
                )
            if stat.S_ISREG(mode):
                members.append((path, path.relative_to(folder).as_posix()))
            elif not stat.S_ISDIR(mode):
                raise PathError(f"refusing to zip {path}: not a regular file")
    return sorted(members, key=lambda item: item[1])


def write_zip(members: Iterable[tuple[Path, str]], target: Path, *, top: str = "") -> Path:
    """Write (file, member name) pairs to `target` atomically, each name checked first.

    With `top`, every member is stored under that folder name.
    """
    write_bytes_atomic(Path(target), zip_bytes(members, top=top))
    return Path(target)


def zip_bytes(members: Iterable[tuple[Path, str]], *, top: str = "") -> bytes:
    """The zip of (file, member name) pairs, in memory, each name checked first."""
    checked: list[tuple[Path, str]] = []
    prefix = f"{safe_member_name(top)}/" if top else ""
    for source, name in members:
        if Path(source).is_symlink():
            raise PathError(f"refusing to zip the symlink {source}")
        checked.append((Path(source), safe_member_name(prefix + safe_member_name(name))))
    names = [name for _, name in checked]
    if len(set(names)) != len(names):
        raise PathError("refusing to zip: a member name appears twice")

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for source, name in checked:
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            executable = source.stat().st_mode & 0o111
            info.external_attr = ((0o755 if executable else 0o644) | stat.S_IFREG) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, source.read_bytes())
    return buffer.getvalue()
