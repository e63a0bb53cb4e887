"""An image folder: one subfolder per class, any image size (resized), gray or RGB.

Class names are the subfolder names in sorted order. A picture is any file Pillow
recognises by its content (a `.jfif` JPEG too); other files are left out and counted by
why (the run records them); a file with an image extension that does not decode is an
error naming the file (silently dropping it would change the dataset without a word).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from toolkit.core.limits import check_allocation
from toolkit.core.walk import check_walkable, describe_left_out, display_name, picture_files
from toolkit.data.dataset import Dataset, DataSpec, make_dataset
from toolkit.data.images import IMAGE_SUFFIXES, is_grayscale, is_picture, load_image
from toolkit.errors import DataError, PathError


def list_classes(root: Path) -> dict[str, list[Path]]:
    """{class name: sorted image paths} for every non-hidden subfolder."""
    return _class_pictures(root)[0]


def _class_pictures(root: Path) -> tuple[dict[str, list[Path]], dict[str, int]]:
    """{class name: sorted picture paths}, and the files left out: why -> how many."""
    if not root.exists():
        raise PathError(f"data folder {root} does not exist")
    if not root.is_dir():
        raise PathError(f"data path {root} is not a folder", "give a folder of class subfolders")
    check_walkable(root, "data folder")  # not /, not /proc (toolkit/core/walk.py)
    classes: dict[str, list[Path]] = {}
    left_out: Counter[str] = Counter()
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        check_walkable(sub, "class folder", inside=root)
        pictures = picture_files(sub, IMAGE_SUFFIXES, "class folder", is_picture)
        files = pictures.files
        left_out.update(pictures.left_out)
        name = display_name(sub.name)  # a folder name that is not UTF-8 still makes a label
        if files and name in classes:
            raise DataError(f"class folders {sub} and another both read as {name!r}")
        if files:
            classes[name] = files
    if not classes:
        left = describe_left_out(dict(left_out))
        raise DataError(
            f"data folder {root} has no class subfolders with images{f' ({left})' if left else ''}",
            "put each class's images in its own subfolder",
        )
    if len(classes) < 2:
        only = next(iter(classes))
        raise DataError(
            f"data folder {root} has a single class ({only!r})",
            "a classifier needs at least two class subfolders",
        )
    return classes, dict(sorted(left_out.items()))


def load_folder(spec: DataSpec) -> Dataset:
    if spec.path is None:
        raise DataError("a folder dataset needs a path")
    root = Path(spec.path)
    classes, left_out = _class_pictures(root)
    items = [(path, label) for label, paths in enumerate(classes.values()) for path in paths]
    if spec.size is not None and len(items) > spec.size:
        # A seeded subset, so --size caps a large folder reproducibly.
        keep = np.sort(np.random.default_rng(spec.seed).permutation(len(items))[: spec.size])
        items = [items[i] for i in keep]
    channels = spec.channels
    if channels is None:
        channels = 1 if all(is_grayscale(path) for path, _ in items) else 3
    size = (spec.image_size, spec.image_size)
    check_allocation(
        2 * len(items) * spec.image_size**2 * channels,
        f"{len(items):,} images of {spec.image_size}x{spec.image_size}x{channels}",
        "pass --size to use fewer images, or a smaller --image-size",
    )
    x = np.empty((len(items), *size, channels), dtype=np.uint8)
    for i, (path, _) in enumerate(items):
        x[i] = load_image(path, size, channels)
    y = np.array([label for _, label in items], dtype=np.int64)
    return make_dataset(
        x, y, list(classes), spec, channels=channels, source=str(root), left_out=left_out
    )
