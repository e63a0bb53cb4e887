"""Walking an image folder without walking the machine.

`--data /`, or a class folder that is a symlink to `/`, would walk the whole file
system, into /proc (endless, and files that block when read) and /sys. Folders are
walked here without following symlinked sub-folders, never into a kernel file system
(proc, sysfs, devtmpfs, ...), and never past MAX_ENTRIES entries; a folder that is the
root itself, a kernel file system or a loop back to its own parent is refused. Files
with an image suffix must be regular files (a FIFO among the images would block the
loader); other files are pictures when their content says so, read only when they are
regular files; every file left out is counted by why. Names that are not UTF-8 are
shown, not crashed on.
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from toolkit.core.limits import file_kind
from toolkit.errors import DataError, PathError

MAX_ENTRIES = 2_000_000  # directory entries seen in one walk
# File systems that are views of the kernel, never folders of images.
PSEUDO_FILESYSTEMS = frozenset(
    {
        "proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "securityfs", "debugfs",
        "tracefs", "bpf", "pstore", "mqueue", "hugetlbfs", "configfs", "fusectl",
        "binfmt_misc", "autofs", "efivarfs", "rpc_pipefs", "nsfs",
    }
)  # fmt: skip


def display_name(name: str) -> str:
    """A file or folder name as text: bytes that are not UTF-8 become U+FFFD."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def check_walkable(folder: Path, what: str, *, inside: Path | None = None) -> Path:
    """The resolved folder, refused (DataError) if walking it would walk the machine:
    the root, a kernel file system, or (with `inside`) an ancestor of that folder."""
    resolved = Path(os.path.realpath(folder))
    if resolved == Path(resolved.anchor):
        raise DataError(
            f"{what} {folder} is the file-system root ({resolved})",
            "name a folder of class subfolders of images",
        )
    if _on_pseudo_filesystem(resolved):
        raise DataError(f"{what} {folder} is a kernel file system ({resolved}), not images")
    if inside is not None:
        parent = Path(os.path.realpath(inside))
        if parent == resolved or parent.is_relative_to(resolved):
            raise DataError(
                f"{what} {folder} leads back to {resolved}, which holds the data folder itself",
                "make each class folder a real folder (or a link to images elsewhere)",
            )
    return resolved


@dataclass(frozen=True)
class Pictures:
    """The picture files of a folder, sorted, and the files left out: why -> how many."""

    files: list[Path]
    left_out: dict[str, int] = field(default_factory=dict)


def picture_files(
    folder: Path,
    suffixes: tuple[str, ...],
    what: str,
    is_picture: Callable[[Path], bool],
    *,
    recursive: bool = True,
) -> Pictures:
    """Every file under `folder` (only its own files unless `recursive`) that is a
    picture: a regular file named with one of `suffixes` (one that then does not decode is
    an error, not a silent loss), or any other regular file `is_picture` recognises by its
    content (a `.jfif`, a file without a suffix). Every other file is left out and counted
    by why: its suffix when it is not a picture, hidden, a dangling link, a FIFO..."""
    check_walkable(folder, what)
    left_out: Counter[str] = Counter()
    found: list[Path] = []
    paths = _walk(Path(folder), what) if recursive else _own_files(Path(folder))
    for path in paths:
        if path.name.startswith("."):
            left_out["hidden"] += 1
            continue
        try:
            mode = os.stat(path).st_mode
        except OSError:
            left_out["a dangling link"] += 1
            continue
        known = path.suffix.lower() in suffixes
        if not stat.S_ISREG(mode):
            if known:  # a FIFO named like an image would block the loader: say so
                raise PathError(
                    f"{path} is {file_kind(mode)}, not an image file", "remove it from the folder"
                )
            left_out[file_kind(mode)] += 1
        elif known or is_picture(path):
            found.append(path)
        else:
            left_out[f"{path.suffix.lower() or 'no suffix'} (not an image)"] += 1
    return Pictures(sorted(found), dict(sorted(left_out.items())))


def describe_left_out(left_out: dict[str, int]) -> str:
    """'left out 3 files: 2 .txt (not an image), 1 hidden' ('' when none were)."""
    total = sum(left_out.values())
    if not total:
        return ""
    reasons = ", ".join(f"{count} {why}" for why, count in left_out.items())
    return f"left out {total} file{'s' if total != 1 else ''}: {reasons}"


def _own_files(folder: Path) -> Iterator[Path]:
    """The entries of `folder` that are not folders (a link to one counts as a folder)."""
    return (path for path in sorted(folder.iterdir()) if not path.is_dir())


def _walk(folder: Path, what: str) -> Iterator[Path]:
    seen = 0
    for root, dirs, files in os.walk(folder, followlinks=False):
        here = Path(root)
        seen += len(dirs) + len(files)
        if seen > MAX_ENTRIES:
            raise DataError(
                f"{what} {folder} holds more than {MAX_ENTRIES:,} entries",
                "name a smaller folder of class subfolders",
            )
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not _pseudo(here / d))
        for name in files:
            yield here / name


def _pseudo(path: Path) -> bool:
    return os.path.ismount(path) and _on_pseudo_filesystem(path)


def _on_pseudo_filesystem(path: Path) -> bool:
    """True when `path` lies on a kernel file system (read from /proc/self/mounts)."""
    best, kind = "", ""
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="replace") as mounts:
            for line in mounts:
                parts = line.split()
                if len(parts) < 3:
                    continue
                point = parts[1].replace("\\040", " ")
                text = str(path)
                inside = text == point or text.startswith(point.rstrip("/") + "/")
                if inside and len(point) >= len(best):
                    best, kind = point, parts[2]
    except OSError:
        return str(path).startswith(("/proc", "/sys", "/dev"))
    return kind in PSEUDO_FILESYSTEMS
