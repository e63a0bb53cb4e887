"""Class names in the model's output order: the defaults, or a labels file.

A labels file is read by its content as much as its name:

- text (`.txt`, anything else): one name per line, or `index name` lines numbered 0, 1,
  ... in order, as Teachable Machine writes them ("0 Apple Scab");
- CSV (`.csv`): one row per class, `index,name` or just `name`, an optional header row
  (`index,label`, `id,name`, ...);
- JSON (`.json`): a list of names; `{"0": "cat", ...}` (index to name);
  `{"cat": 0, ...}` (name to index, as Keras' `class_indices`); or an object holding one
  of those under `labels`, `classes` or `class_names`.

Names may contain anything but a line break: "T-shirt/top" is a fine class name (its
image folder can be named by its index, `0`).
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from toolkit.core.limits import parse_json, read_text
from toolkit.errors import DataError

MAX_LABELS_BYTES = 10 << 20  # a labels file larger than this is not a labels file


def default_labels(count: int) -> list[str]:
    return [f"class_{i}" for i in range(count)]


def read_labels(path: Path | Sequence[str], expected: int | None) -> list[str]:
    """The class names a labels file lists, in output order; `expected` checks the count.

    `path` may also be the names themselves (a list given in Python, toolkit.api): they
    are checked as a file's are.
    """
    if not isinstance(path, str | os.PathLike):
        names = list(path)
        if not all(isinstance(name, str) for name in names):
            raise DataError(f"labels must be strings, got {names[:5]!r}")
        if any(not name.strip() or "\n" in name or "\r" in name for name in names):
            raise DataError(f"the list of labels holds a blank name or a line break: {names[:5]!r}")
        return _checked([name.strip() for name in names], expected, "the list of labels")
    path = Path(path)
    # A regular file (a FIFO would block), under the size limit, UTF-8 (a BOM is dropped).
    text = read_text(path, "labels file", DataError, MAX_LABELS_BYTES).removeprefix("\ufeff")
    suffix = path.suffix.lower()
    if suffix == ".json" or (suffix != ".csv" and text.lstrip()[:1] in ("[", "{")):
        labels = _json_labels(text, path)
    elif suffix == ".csv":
        labels = _csv_labels(text, path)
    else:
        labels = _numbered([line.strip() for line in text.splitlines() if line.strip()])
    return _checked(labels, expected, f"labels file {path}")


def _numbered(lines: list[str]) -> list[str]:
    """Names without their line numbers when every line starts with its own index and a
    space ("0 Apple Scab", "1 Apple healthy", ...: Teachable Machine's labels.txt)."""
    names = [re.match(rf"{i}\s+(\S.*)$", line) for i, line in enumerate(lines)]
    if len(lines) > 1 and all(names):
        return [found.group(1) for found in names if found]
    return lines


def _checked(labels: list[str], expected: int | None, where: str) -> list[str]:
    if not labels:
        raise DataError(f"{where} lists no class names")
    duplicates = sorted({name for name in labels if labels.count(name) > 1})
    if duplicates:
        raise DataError(f"{where} names {', '.join(map(repr, duplicates[:3]))} twice")
    if expected is not None and len(labels) != expected:
        raise DataError(f"{where} has {len(labels)} names but the model has {expected} classes")
    return labels


def _json_labels(text: str, path: Path) -> list[str]:
    data = parse_json(text, f"labels file {path}", DataError)
    if isinstance(data, dict):
        for key in ("labels", "classes", "class_names"):
            if key in data:
                data = data[key]
                break
    if isinstance(data, list) and all(isinstance(n, str | int | float) for n in data):
        return [str(n).strip() for n in data]
    if isinstance(data, dict) and data:
        keys, values = list(data), list(data.values())
        if all(_is_index(k) for k in keys) and all(isinstance(v, str) for v in values):
            return _by_index({int(k): str(v) for k, v in data.items()}, path)
        if all(_is_index(v) for v in values):  # Keras class_indices: name -> index
            return _by_index({int(v): str(k) for k, v in data.items()}, path)
    raise DataError(
        f"labels file {path} is JSON but not a list of names or an index/name mapping",
        'e.g. ["cat", "dog"], {"0": "cat", "1": "dog"} or {"cat": 0, "dog": 1}',
    )


def _csv_labels(text: str, path: Path) -> list[str]:
    rows = [[cell.strip() for cell in row] for row in csv.reader(io.StringIO(text))]
    rows = [row for row in rows if any(row)]
    if rows and len(rows[0]) >= 2 and not _is_index(rows[0][0]):
        rows = rows[1:]  # a header: "index,label", "id,name", ...
    elif rows and len(rows[0]) == 1 and rows[0][0].lower() in ("label", "labels", "name", "class"):
        rows = rows[1:]
    if rows and all(len(row) >= 2 for row in rows):
        if not all(_is_index(row[0]) for row in rows):
            raise DataError(
                f"labels file {path}: CSV rows must be 'index,name' or 'name'",
                f"first row seen: {','.join(rows[0])!r}",
            )
        return _by_index({int(row[0]): row[1] for row in rows}, path)
    return [row[0] for row in rows]


def _by_index(names: dict[int, str], path: Path) -> list[str]:
    if sorted(names) != list(range(len(names))):
        raise DataError(
            f"labels file {path} numbers its classes {_ranges(sorted(names))}",
            f"number them 0..{len(names) - 1}, each once",
        )
    return [names[i] for i in range(len(names))]


def _is_index(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= 0
    return isinstance(value, str) and value.strip().isdigit()


def _ranges(values: list[int]) -> str:
    shown = ", ".join(str(v) for v in values[:8])
    return shown + (", ..." if len(values) > 8 else "")
