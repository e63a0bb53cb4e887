"""Class names: the defaults, and a labels file in the model's output order."""

from __future__ import annotations

from pathlib import Path

from toolkit.errors import DataError, PathError


def default_labels(count: int) -> list[str]:
    return [f"class_{i}" for i in range(count)]


def read_labels(path: Path, expected: int | None) -> list[str]:
    """One class name per line, in the model's output order."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PathError(f"labels file {path} does not exist") from None
    except (UnicodeDecodeError, IsADirectoryError) as error:
        raise DataError(f"labels file {path} is not UTF-8 text: {error}") from None
    labels = [line.strip() for line in text.splitlines() if line.strip()]
    if expected is not None and len(labels) != expected:
        raise DataError(
            f"labels file {path} has {len(labels)} names but the model has {expected} classes"
        )
    return labels
