"""Datasets: what cnnx trains and evaluates on.

A DataSpec names a dataset so it can be rebuilt bit for bit later (it travels in
run.json and in the manifest's `eval_data`); `load_dataset(spec)` turns it into uint8
NHWC arrays with int64 labels, split into train/val/test, with the class names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from toolkit.data.dataset import (
    DEFAULT_SHAPES_SIZE,
    KINDS,
    Dataset,
    DataSpec,
    make_dataset,
    split_indices,
)


def parse_data_arg(value: str, *, data_path: Path | None = None, **options: Any) -> DataSpec:
    """The CLI's --data: `shapes`, `cifar10`, or a folder of class subfolders."""
    if value in ("shapes", "cifar10"):
        path = str(data_path) if data_path is not None else None
        if value == "shapes":
            return DataSpec(kind="shapes", **options)
        options.setdefault("size", None)
        return DataSpec(kind="cifar10", path=path, **options)
    folder = Path(value)
    if not folder.exists():
        from toolkit.errors import PathError

        raise PathError(
            f"--data {value!r} is neither 'shapes', 'cifar10' nor an existing folder",
            "name a folder of class subfolders",
        )
    options.setdefault("size", None)
    return DataSpec(kind="folder", path=str(folder.resolve()), **options)


def load_dataset(spec: DataSpec) -> Dataset:
    """Build the dataset a spec names (deterministic for a given spec)."""
    if spec.kind == "shapes":
        from toolkit.data.shapes import load_shapes

        return load_shapes(spec)
    if spec.kind == "cifar10":
        from toolkit.data.cifar10 import load_cifar10

        return load_cifar10(spec)
    from toolkit.data.folder import load_folder

    return load_folder(spec)


__all__ = [
    "DEFAULT_SHAPES_SIZE",
    "KINDS",
    "DataSpec",
    "Dataset",
    "load_dataset",
    "make_dataset",
    "parse_data_arg",
    "split_indices",
]
