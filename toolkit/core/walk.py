"""Walking an image folder without walking the machine.

`--data /`, or a class folder that is a symlink to `/`, would walk the whole file
system, into /proc (endless, and files that block when read) and /sys. Folders are
walked here without following symlinked sub-folders, never into a kernel file system
(proc, sysfs, devtmpfs, ...), and never past MAX_ENTRIES entries; a folder that is the
root itself, a kernel file system or a loop back to its own parent is refused. Files
with an image suffix must be regular files (a FIFO among the images would block the
loader), and names that are not UTF-8 are shown, not crashed on.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
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


def image_files(folder: Path, suffixes: tuple[str, ...], what: str) -> list[Path]:
    """Every file under `folder` whose suffix is in `suffixes` (hidden ones skipped),
    sorted; each must be a regular file."""
    check_walkable(folder, what)
    found: list[Path] = []
    for path in _walk(Path(folder), what):
        if path.suffix.lower() not in suffixes or path.name.startswith("."):
            continue
        try:
            mode = os.stat(path).st_mode
        except OSError:
            continue  # a dangling symlink is not an image
        if not stat.S_ISREG(mode):
            raise PathError(
                f"{path} is {file_kind(mode)}, not an image file", "remove it from the folder"
            )
        found.append(path)
    return sorted(found)


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
