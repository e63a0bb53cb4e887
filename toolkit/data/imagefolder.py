"""A folder of the user's own images for a model that exists: labelled or not, any size.

- Labelled: one subfolder per class, named by the class (`cat/`) or by its index in the
  model's output (`0/`, `1/`, ...), so class names that cannot be folder names
  ("T-shirt/top") still work. A name is matched first, then an index.
- Flat: images directly in the folder, no labels: they give parity, never accuracy.

Images of any size and mode are brought to the model's input by the pixel rule of the
input spec (toolkit/data/pixels.py), the same the web page and the bundles use.
`calibration_images(folder, spec)` is the one call that turns a folder into int8
calibration data; `split` divides a labelled folder into disjoint calibration and
evaluation images, and says what it did when the folder is too small for that.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.core.limits import file_kind
from toolkit.core.walk import check_walkable, image_files
from toolkit.data.images import IMAGE_SUFFIXES, load_image
from toolkit.data.inputspec import InputSpec
from toolkit.errors import DataError, PathError

MAX_EVALUATION_IMAGES = 1000  # evaluation images recorded for verify and bench


@dataclass(frozen=True)
class ImageFolder:
    """The images of a folder (paths relative to root, sorted) and their labels if any."""

    root: Path
    files: tuple[str, ...]
    labels: tuple[int, ...] | None  # index into the model's labels, per file
    classes: dict[str, int]  # subfolder name -> label index ({} for a flat folder)

    @property
    def labelled(self) -> bool:
        return self.labels is not None

    def __len__(self) -> int:
        return len(self.files)


def _images_in(folder: Path, recursive: bool, option: str = "--data") -> list[Path]:
    """Image files of `folder` (and below, when `recursive`), each a regular file: the walk
    stays inside (no symlinked folder, no kernel file system; toolkit/core/walk.py)."""
    if recursive:
        return image_files(folder, IMAGE_SUFFIXES, option)
    found = []
    for path in folder.iterdir():
        if path.suffix.lower() not in IMAGE_SUFFIXES or path.name.startswith("."):
            continue
        try:
            mode = os.stat(path).st_mode
        except OSError:
            continue  # a dangling symlink is not an image
        if stat.S_ISDIR(mode):
            continue
        if not stat.S_ISREG(mode):
            raise PathError(f"{path} is {file_kind(mode)}, not an image file", "remove it")
        found.append(path)
    return sorted(found)


def class_folders(root: Path, option: str = "--data") -> dict[str, list[Path]]:
    """{subfolder name: its images} for the non-hidden subfolders holding images."""
    if not root.exists():
        raise PathError(f"{option} {root} does not exist")
    if not root.is_dir():
        raise PathError(f"{option} {root} is not a folder", "name a folder of images")
    check_walkable(root, option)  # not /, not /proc
    subfolders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    for sub in subfolders:
        check_walkable(sub, f"{option} class folder", inside=root)
    found = {sub.name: _images_in(sub, recursive=True, option=option) for sub in subfolders}
    return {name: files for name, files in found.items() if files}


def scan(root: Path, labels: list[str] | None, option: str = "--data") -> ImageFolder:
    """The images of `root` and, for class subfolders, their label indices in `labels`
    (None: the subfolders numbered in sorted order, when only their balance matters)."""
    root = Path(root)
    classes = class_folders(root, option)
    loose = _images_in(root, recursive=False)
    if not classes:
        if not loose:
            raise DataError(
                f"{option} {root} holds no images ({', '.join(IMAGE_SUFFIXES)})",
                "give class subfolders of images, or a folder of images",
            )
        return ImageFolder(root, tuple(p.name for p in loose), None, {})
    if loose:
        raise DataError(
            f"{option} {root} mixes class subfolders with {len(loose)} loose images "
            f"({loose[0].name}, ...)",
            "put every image in its class's subfolder, or use a folder without subfolders",
        )
    if labels is None:
        mapping = {name: k for k, name in enumerate(classes)}
    else:
        mapping = {name: label_index(name, labels, root, option) for name in classes}
    files, indices = [], []
    for name, paths in classes.items():
        for path in paths:
            files.append(path.relative_to(root).as_posix())
            indices.append(mapping[name])
    return ImageFolder(root, tuple(files), tuple(indices), mapping)


def label_index(name: str, labels: list[str], root: Path, option: str = "--data") -> int:
    """A class subfolder's label: its name among the labels, else its index 0..K-1."""
    if name in labels:
        return labels.index(name)
    if name.isdigit() and int(name) < len(labels):
        return int(name)
    shown = ", ".join(labels[:6]) + (", ..." if len(labels) > 6 else "")
    raise DataError(
        f"{option} {root}: subfolder {name!r} is neither one of the model's classes "
        f"({shown}) nor a class index 0..{len(labels) - 1}",
        "name class folders by class or by index, or pass --labels with the class names",
    )


def folder_labels(root: Path, classes: int) -> list[str] | None:
    """Class names from the subfolder names, when there is one subfolder per class.

    Sorted, as keras' image_dataset_from_directory numbers them. None when the folder is
    flat, the counts differ, or the subfolders are class indices (they name no class).
    """
    names = list(class_folders(Path(root)))
    if len(names) != classes or all(name.isdigit() for name in names):
        return None
    return sorted(names)


def load_pixels(folder: ImageFolder, files: list[str], spec: InputSpec) -> np.ndarray:
    """uint8 [N, H, W, C]: each file brought to the model's input by the pixel rule."""
    size = (spec.height, spec.width)
    pixels = np.empty((len(files), *spec.shape), dtype=np.uint8)
    for i, name in enumerate(files):
        pixels[i] = load_image(
            folder.root / name, size, spec.channels, resize=spec.resize, crop=spec.crop
        )
    return pixels


def balanced_indices(labels: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """Up to `count` indices, as even across classes as the data allows (seeded), sorted."""
    rng = np.random.default_rng(seed)
    classes = sorted(int(k) for k in np.unique(labels))
    pools = {k: list(rng.permutation(np.flatnonzero(labels == k))) for k in classes}
    chosen: list[int] = []
    while len(chosen) < count and any(pools.values()):
        for k in classes:
            if pools[k] and len(chosen) < count:
                chosen.append(int(pools[k].pop()))
    return np.asarray(sorted(chosen), dtype=np.int64)


@dataclass(frozen=True)
class Split:
    """Which files calibrate int8 and which evaluate, and what happened, for the record."""

    calibration: tuple[str, ...]
    evaluation: tuple[str, ...]
    record: dict[str, Any]


def split(folder: ImageFolder, calibration_count: int, seed: int = 0) -> Split:
    """Disjoint calibration and evaluation images, as far as the folder allows.

    Up to `calibration_count` images calibrate, at most half of the folder so that as
    many are left to evaluate, taken evenly across classes when labelled; the rest
    evaluate (at most MAX_EVALUATION_IMAGES, also evenly). A folder of one image is used
    for both, and the record says so.
    """
    n = len(folder)
    labels = np.asarray(folder.labels if folder.labels is not None else [0] * n)
    record: dict[str, Any] = {"images": n, "seed": seed, "asked_calibration": calibration_count}
    if n == 1:
        record.update(
            calibration=1,
            evaluation=1,
            disjoint=False,
            note="the folder holds one image: it both calibrates and evaluates",
        )
        return Split(folder.files, folder.files, record)
    wanted = min(calibration_count, n // 2)
    chosen = set(balanced_indices(labels, wanted, seed).tolist())
    rest = np.array([i for i in range(n) if i not in chosen], dtype=np.int64)
    if len(rest) > MAX_EVALUATION_IMAGES:
        rest = rest[balanced_indices(labels[rest], MAX_EVALUATION_IMAGES, seed + 1)]
    calibration = tuple(folder.files[i] for i in sorted(chosen))
    evaluation = tuple(folder.files[int(i)] for i in rest)
    record.update(calibration=len(calibration), evaluation=len(evaluation), disjoint=True)
    if wanted < calibration_count:
        record["note"] = (
            f"{n} images: {len(calibration)} calibrate and {len(evaluation)} evaluate "
            f"(fewer than the {calibration_count} calibration images asked, so that the "
            "evaluation images stay apart)"
        )
    return Split(calibration, evaluation, record)


def calibration_images(
    folder: Path, spec: InputSpec, count: int, seed: int = 0, option: str = "--calibration-data"
) -> tuple[np.ndarray, dict[str, Any]]:
    """Up to `count` images of a folder (any size, labelled or not) as preprocessed float32
    calibration data, and the record of which ones (the manifest keeps it)."""
    found = scan(Path(folder), None, option)
    picked = balanced_indices(np.asarray(found.labels or [0] * len(found)), count, seed)
    files = [found.files[i] for i in picked]
    record = {
        "from": "folder",
        "folder": str(Path(folder).resolve()),
        "count": len(files),
        "seed": seed,
        "files": files,
        "resize": spec.resize,
        "crop": spec.crop,
    }
    return spec.apply(load_pixels(found, files, spec)), record


def evaluation_record(
    folder: ImageFolder, files: tuple[str, ...], labels: list[str], split_record: dict[str, Any]
) -> dict[str, Any]:
    """The manifest's eval_data for images of a folder: enough for verify to reload them."""
    index = {name: i for i, name in enumerate(folder.files)}
    record: dict[str, Any] = {
        "kind": "images",
        "path": str(folder.root.resolve()),
        "labelled": folder.labelled,
        "files": list(files),
        "split": split_record,
    }
    if folder.labels is not None:
        record["labels"] = [folder.labels[index[f]] for f in files]
        record["classes"] = dict(folder.classes)
        record["class_names"] = list(labels)
    return record
