"""DataSpec and Dataset: what a dataset is, and how one pool of images is split.

The loaders (shapes.py, cifar10.py, folder.py) import these from here, not from the
package, so the package can import its loaders without an import cycle.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.errors import DataError, UsageError

KINDS = ("shapes", "cifar10", "folder")

# Default size of the embedded set: large enough for the seed CNN to pass 90% test
# accuracy, small enough to generate in a few seconds and train in under two minutes.
DEFAULT_SHAPES_SIZE = 10_000


@dataclass(frozen=True)
class DataSpec:
    """How to rebuild a dataset: its kind, where it lives, and how it was split."""

    kind: str = "shapes"
    path: str | None = None  # the archive or folder for cifar10 / folder; None for shapes
    seed: int = 0
    size: int | None = DEFAULT_SHAPES_SIZE  # shapes: images drawn; others: cap on images used
    image_size: int = 32  # images are square; folders are resized to this
    channels: int | None = None  # folder: 1 or 3; None = grayscale only if every image is
    val_fraction: float = 0.1
    test_fraction: float = 0.1  # cifar10 keeps its own test split and ignores this

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UsageError(f"unknown dataset kind {self.kind!r}", f"use one of {KINDS}")
        if self.size is not None and self.size < 1:
            raise UsageError(f"dataset size must be at least 1, got {self.size}")
        if not 4 <= self.image_size <= 1024:
            raise UsageError(f"image size must be within 4..1024, got {self.image_size}")
        if self.channels not in (None, 1, 3):
            raise UsageError(f"channels must be 1 or 3, got {self.channels}")
        if not (0 <= self.val_fraction < 1 and 0 <= self.test_fraction < 1):
            raise UsageError("val and test fractions must be within [0, 1)")
        if self.val_fraction + self.test_fraction >= 1:
            raise UsageError("val and test fractions leave no training images")

    @property
    def name(self) -> str:
        """A short name for run folders: shapes, cifar10, or the folder's name."""
        if self.kind == "folder" and self.path:
            return Path(self.path).name or "folder"
        return self.kind

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataSpec:
        if not isinstance(data, dict):
            raise DataError(f"data spec must be a mapping, got {type(data).__name__}")
        known = set(cls.__dataclass_fields__)
        try:
            return cls(**{key: value for key, value in data.items() if key in known})
        except TypeError as error:
            raise DataError(f"data spec is malformed: {error}") from None


@dataclass(frozen=True)
class Dataset:
    """uint8 NHWC images (raw 0..255 pixels) and int64 labels, split three ways."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    spec: DataSpec
    details: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        h, w, c = self.x_train.shape[1:]
        return (int(h), int(w), int(c))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def summary(self) -> dict[str, Any]:
        return {
            "train": len(self.y_train),
            "val": len(self.y_val),
            "test": len(self.y_test),
            "input_shape": list(self.input_shape),
            "classes": list(self.class_names),
            **self.details,
        }


def split_indices(
    n: int, val_fraction: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A seeded shuffle cut into train/val/test index arrays."""
    order = np.random.default_rng(seed).permutation(n)
    n_test = round(n * test_fraction)
    n_val = round(n * val_fraction)
    return order[n_test + n_val :], order[n_test : n_test + n_val], order[:n_test]


def make_dataset(
    x: np.ndarray, y: np.ndarray, class_names: list[str], spec: DataSpec, **details: Any
) -> Dataset:
    """Split one pool of labelled images per the spec's fractions and seed."""
    train, val, test = split_indices(len(y), spec.val_fraction, spec.test_fraction, spec.seed)
    if len(train) == 0:
        raise DataError(f"dataset {spec.name!r} has too few images ({len(y)}) to split")
    return Dataset(
        x_train=x[train],
        y_train=y[train],
        x_val=x[val],
        y_val=y[val],
        x_test=x[test],
        y_test=y[test],
        class_names=class_names,
        spec=spec,
        details=dict(details),
    )
