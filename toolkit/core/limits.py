"""Limits on what cnnx reads and allocates, each failing with a clear typed error.

- Files: only regular files are opened. A FIFO would block forever, a device would
  stream without end; both are refused before opening (PathError, exit 3). Files cnnx
  opens itself are opened non-blocking and checked on the open descriptor, so a path
  swapped for a FIFO between the check and the open cannot hang it either.
- JSON: every JSON file goes through `read_json` (size and nesting limits; a parse
  that would recurse past Python's stack is an error, not a crash).
- Memory: `check_allocation` compares a planned allocation with the memory this
  machine has available and refuses (ResourceError, exit 11) with the size asked for.
  Every place that makes pictures at a model's input size checks the count it plans
  from the shape first (`check_pictures_memory`), and a model's input is checked as
  soon as it is known (`check_input_shape`): a 100000x100000x3 input is refused with
  the size one picture would take, never met as a MemoryError half way.
- Graphs and model configurations of absurd size are refused (ModelError, exit 4).
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import stat
from pathlib import Path
from typing import IO, Any

from toolkit.errors import CnnxError, PathError, ResourceError

MAX_JSON_BYTES = 64 << 20  # manifests, run records, model.json, Keras configs
MAX_JSON_DEPTH = 100  # real files nest 12 levels (an EfficientNet config)
MAX_GRAPH_NODES = 5_000_000  # nodes of a SavedModel or TF.js graph, functions included
MAX_LAYERS = 50_000  # layers in a Keras configuration (EfficientNetB7 has about 800)
MAX_TEXT_BYTES = 16 << 20  # labels and tolerances files


def file_kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def require_regular_file(path: Path, what: str) -> os.stat_result:
    """The stat of `path`, which must be a regular file (symlinks followed)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise PathError(f"{what} {path} does not exist") from None
    except (OSError, ValueError) as error:
        raise PathError(f"cannot read {what} {path}: {_strerror(error)}") from None
    if not stat.S_ISREG(info.st_mode):
        raise PathError(
            f"{what} {path} is {file_kind(info.st_mode)}, not a regular file",
            "give a regular file",
        )
    return info


def require_regular_tree(folder: Path, what: str, max_entries: int = 100_000) -> None:
    """Every file below `folder` (a SavedModel) is a regular file: TensorFlow would block
    on a FIFO among its variables, or read a device without end."""
    seen = 0
    for root, dirs, files in os.walk(folder):
        seen += len(dirs) + len(files)
        if seen > max_entries:
            raise PathError(f"{what} {folder} holds more than {max_entries:,} files")
        for name in files:
            require_regular_file(Path(root) / name, f"{what} file")


def open_regular(path: Path, what: str) -> IO[bytes]:
    """Open a regular file for reading without ever blocking on a FIFO or a device."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise PathError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise PathError(f"{what} {path} is a folder, not a regular file") from None
    except (OSError, ValueError) as error:
        raise PathError(f"cannot read {what} {path}: {_strerror(error)}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise PathError(
            f"{what} {path} is {file_kind(mode)}, not a regular file", "give a regular file"
        )
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
    return os.fdopen(fd, "rb")


def read_limited(path: Path, what: str, max_bytes: int, error: type[CnnxError]) -> bytes:
    """The bytes of a regular file, refusing one larger than max_bytes."""
    with open_regular(path, what) as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > max_bytes:
            raise error(
                f"{what} {path} is {_size(size)}, more than the limit of {_size(max_bytes)}"
            )
        try:
            data = handle.read(max_bytes + 1)
        except OSError as problem:
            raise PathError(f"cannot read {what} {path}: {_strerror(problem)}") from None
    if len(data) > max_bytes:
        raise error(f"{what} {path} is more than the limit of {_size(max_bytes)}")
    return data


def read_text(
    path: Path, what: str, error: type[CnnxError], max_bytes: int = MAX_TEXT_BYTES
) -> str:
    """A small UTF-8 text file (labels, tolerances), read under the same rules."""
    data = read_limited(path, what, max_bytes, error)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as problem:
        raise error(f"{what} {path} is not UTF-8 text: {problem}") from None


def read_json(
    path: Path,
    what: str,
    error: type[CnnxError],
    *,
    max_bytes: int = MAX_JSON_BYTES,
    max_depth: int = MAX_JSON_DEPTH,
) -> Any:
    """Parse a JSON file: a regular file, at most max_bytes, nested at most max_depth.

    Every failure is `error` (the caller's exit code) naming the file, except a missing
    or non-regular file (PathError).
    """
    data = read_limited(path, what, max_bytes, error)
    return parse_json(data, f"{what} {path}", error, max_depth=max_depth)


def parse_json(
    data: bytes | str, what: str, error: type[CnnxError], *, max_depth: int = MAX_JSON_DEPTH
) -> Any:
    """JSON text already in memory (a zip member, an HDF5 attribute), under the same rules."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        value = json.loads(text)
    except UnicodeDecodeError as problem:
        raise error(f"{what} is not UTF-8: {problem}") from None
    except json.JSONDecodeError as problem:
        raise error(f"{what} is not valid JSON: {problem}") from None
    except RecursionError:
        raise error(f"{what} is nested more than {max_depth} levels deep") from None
    depth = json_depth(value, max_depth)
    if depth > max_depth:
        raise error(f"{what} is nested more than {max_depth} levels deep")
    return value


def json_depth(value: Any, stop: int = MAX_JSON_DEPTH) -> int:
    """Nesting depth of a parsed JSON value, counted without recursion (stops past `stop`)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > stop:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def available_memory() -> int:
    import psutil

    return int(psutil.virtual_memory().available)


def check_allocation(nbytes: int, what: str, hint: str) -> None:
    """Refuse (exit 11) an allocation larger than the memory available right now."""
    available = available_memory()
    if nbytes > available:
        raise ResourceError(
            f"{what} needs {_size(nbytes)} of memory, more than the {_size(available)} available",
            hint,
        )


def pictures_bytes(count: int, shape: tuple[int, ...]) -> int:
    """Memory that `count` pictures of `shape` take on their way in: each kept as uint8
    pixels and as the float32 tensor, plus the int64 sums of the resize of one picture
    (toolkit/data/pixels.py), which exist for one picture at a time."""
    values = math.prod(map(int, shape))
    return count * values * (1 + 4) + values * 8


def check_pictures_memory(count: int, shape: tuple[int, ...], what: str, hint: str) -> None:
    """Refuse, from the shape alone and before any of it is allocated, to read `count`
    pictures of `shape` (H, W, C) when they would not fit in memory."""
    size = "x".join(str(int(side)) for side in shape)
    check_allocation(pictures_bytes(count, shape), f"{what} ({count:,} of {size})", hint)


def check_input_shape(shape: tuple[int, ...], where: str) -> None:
    """A model's input of `shape` must let one picture through on this machine: checked
    as soon as a model's input is known, before any picture is drawn or read."""
    size = "x".join(str(int(side)) for side in shape)
    check_allocation(
        pictures_bytes(1, shape),
        f"one picture at the {size} input of {where}",
        "cnnx reads pictures at the model's input size: give the model a smaller input",
    )


def check_eval_memory(images: int, shape: tuple[int, ...], classes: int) -> None:
    """Evaluating `images` inputs of `shape` on a `classes`-way model: the float32 inputs,
    and per runtime the outputs, the reference and their float64 copies in the metrics."""
    needed = images * (math.prod(map(int, shape)) * 4 + classes * (4 + 4 + 8 + 8))
    check_allocation(
        needed,
        f"evaluating {images:,} images on a {classes:,}-class model",
        "pass --limit N to evaluate fewer images",
    )


def check_batch_memory(batch: int, shape: tuple[int, ...], classes: int) -> None:
    """One throughput batch: its inputs (and their float32 copy) and its outputs."""
    check_allocation(
        batch * (math.prod(map(int, shape)) * 4 * 2 + classes * 4),
        f"--batch {batch:,} of {'x'.join(map(str, shape))} images",
        "use a smaller --batch",
    )


def _size(n: int) -> str:
    value = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} bytes"


def _strerror(error: BaseException) -> str:
    return getattr(error, "strerror", None) or str(error)
