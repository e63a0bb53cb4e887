"""Junk files: truncated copies, random bytes, text wearing a model's extension."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
from pathlib import Path


def random_bytes(path: Path, size: int = 4096, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(random.Random(seed).randbytes(size))
    return path


def truncated_copy(source: Path, target: Path, fraction: float = 0.5) -> Path:
    """The first `fraction` of `source`'s bytes, as a download cut short would leave it."""
    data = Path(source).read_bytes()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data[: max(1, int(len(data) * fraction))])
    return target


def text_file(path: Path, text: str = "this is not a model\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def copy_tree(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, symlinks=True)
    return target


def snapshot(root: Path) -> dict[str, str]:
    """Every file and folder under root -> its sha256 (or 'dir', 'link', 'special'), for
    before/after."""
    root = Path(root)
    state: dict[str, str] = {}
    if not root.exists():
        return state
    for folder, dirs, names in os.walk(root):  # does not descend into symlinked folders
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        here = Path(folder)
        for name in dirs + names:
            path = here / name
            relative = path.relative_to(root).as_posix()
            if path.is_symlink():
                state[relative] = "link"
            elif path.is_dir():
                state[relative] = "dir"
            elif not path.is_file():  # a FIFO or socket: opening it would block the test
                state[relative] = "special"
            else:
                state[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state
