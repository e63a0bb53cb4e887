"""A folder of the user's own images for a model that exists: labelled or not, any size.

- Labelled: one subfolder per class, named by the class (`cat/`), by its index in the
  model's output (`0/`, `1/`, ...), so class names that cannot be folder names
  ("T-shirt/top") still work, by its index and a separator (`5_Corn_healhy`, as
  Teachable Machine names them), or by its name with case, spaces and underscores
  ignored. An exact name is matched first; a folder that reads as two classes is refused.
- Flat: images directly in the folder, no labels: they give parity, never accuracy.

A picture is any file Pillow recognises by content (JPEG under `.jfif`, WebP, BMP, TIFF,
PGM/PPM, ...); the files left out are counted by why, for the output and the manifest.

Images of any size and mode are brought to the model's input by the pixel rule of the
input spec (toolkit/data/pixels.py), the same the web page and the bundles use.
`calibration_images(folder, spec)` is the one call that turns a folder into int8
calibration data; `split` divides a labelled folder into disjoint calibration and
evaluation images, and says what it did when the folder is too small for that.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.core.limits import check_pictures_memory
from toolkit.core.walk import (
    Pictures,
    check_walkable,
    describe_left_out,
    picture_files,
)
from toolkit.data.images import IMAGE_SUFFIXES, is_picture, load_image
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
    left_out: dict[str, int] = field(default_factory=dict)  # files not read: why -> count

    @property
    def labelled(self) -> bool:
        return self.labels is not None

    def __len__(self) -> int:
        return len(self.files)

    def describe(self, labels: list[str]) -> str:
        """What was read: the folder -> class mapping, and the files left out and why."""
        said = [f"{len(self)} pictures"]
        if self.classes:
            mapping = ", ".join(
                f"{name} -> {labels[k]!r} ({k})" if name != labels[k] else name
                for name, k in self.classes.items()
            )
            said.append(f"class folders: {mapping}")
        left = describe_left_out(self.left_out)
        return "; ".join([*said, left] if left else said)


def _pictures(folder: Path, option: str, *, recursive: bool = True) -> Pictures:
    """The pictures of `folder` (and below, when `recursive`), each a regular file,
    recognised by content; the walk stays inside (toolkit/core/walk.py)."""
    return picture_files(folder, IMAGE_SUFFIXES, option, is_picture, recursive=recursive)


def class_folders(root: Path, option: str = "--data") -> dict[str, list[Path]]:
    """{subfolder name: its images} for the non-hidden subfolders holding images."""
    found = _class_pictures(root, option)
    return {name: pictures.files for name, pictures in found.items() if pictures.files}


def _class_pictures(root: Path, option: str) -> dict[str, Pictures]:
    """The pictures of each non-hidden subfolder, those without any included."""
    if not root.exists():
        raise PathError(f"{option} {root} does not exist")
    if not root.is_dir():
        raise PathError(f"{option} {root} is not a folder", "name a folder of images")
    check_walkable(root, option)  # not /, not /proc
    subfolders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    for sub in subfolders:
        check_walkable(sub, f"{option} class folder", inside=root)
    return {sub.name: _pictures(sub, option) for sub in subfolders}


def scan(root: Path, labels: list[str] | None, option: str = "--data") -> ImageFolder:
    """The images of `root` and, for class subfolders, their label indices in `labels`
    (None: the subfolders numbered in sorted order, when only their balance matters)."""
    root = Path(root)
    subfolders = _class_pictures(root, option)
    own = _pictures(root, option, recursive=False)
    left_out: Counter[str] = Counter(own.left_out)
    for pictures in subfolders.values():
        left_out.update(pictures.left_out)
    classes = {name: pictures for name, pictures in subfolders.items() if pictures.files}
    loose = own.files
    if not classes:
        if not loose:
            left = describe_left_out(dict(left_out))
            raise DataError(
                f"{option} {root} holds no pictures{f' ({left})' if left else ''}",
                "give class subfolders of images, or a folder of images",
            )
        return ImageFolder(root, tuple(p.name for p in loose), None, {}, dict(left_out))
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
    for name, pictures in classes.items():
        for path in pictures.files:
            files.append(path.relative_to(root).as_posix())
            indices.append(mapping[name])
    return ImageFolder(root, tuple(files), tuple(indices), mapping, dict(sorted(left_out.items())))


# A folder named by a class index and a separator, as Teachable Machine names them:
# "5_Corn_healhy" (whatever follows the separator, typos included).
_INDEX_PREFIX = re.compile(r"(\d+)[ _.\-]+\S")


def label_index(name: str, labels: list[str], root: Path, option: str = "--data") -> int:
    """A class subfolder's label: its name among the labels; else its class index 0..K-1,
    alone or followed by a separator (`5_Corn_healhy`), or its name with spaces,
    underscores and case ignored (`apple_scab` for "Apple Scab"). A folder that reads as
    two different classes is refused, naming both."""
    if name in labels:
        return labels.index(name)
    candidates: dict[int, str] = {}
    prefix = _INDEX_PREFIX.match(name)
    for index in (name if name.isdigit() else None, prefix.group(1) if prefix else None):
        if index is not None and int(index) < len(labels):
            candidates.setdefault(int(index), f"class index {int(index)}")
    key = _loose(name)
    for k, label in enumerate(labels):
        if _loose(label) == key:
            candidates.setdefault(k, f"class name {label!r}")
    if len(candidates) > 1:
        (first, why), (second, other) = list(candidates.items())[:2]
        raise DataError(
            f"{option} {root}: subfolder {name!r} reads as two classes: {labels[first]!r} "
            f"({why}) and {labels[second]!r} ({other})",
            "rename the folder to the exact class name",
        )
    if candidates:
        return next(iter(candidates))
    shown = ", ".join(labels[:6]) + (", ..." if len(labels) > 6 else "")
    raise DataError(
        f"{option} {root}: subfolder {name!r} is neither one of the model's classes "
        f"({shown}) nor a class index 0..{len(labels) - 1}",
        "name class folders by class or by index (`3` or `3_name`), or pass --labels with "
        "the class names",
    )


def _loose(name: str) -> str:
    """A class name with case, spaces and underscores ignored."""
    return re.sub(r"[\s_]+", "", name).casefold()


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
    check_pictures_memory(
        len(files),
        spec.shape,
        f"reading images from {folder.root}",
        "use fewer images (--limit, --calibration-samples) or a model with a smaller input",
    )
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
        "left_out": found.left_out,
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
        "left_out": folder.left_out,
    }
    if folder.labels is not None:
        record["labels"] = [folder.labels[index[f]] for f in files]
        record["classes"] = dict(folder.classes)
        record["class_names"] = list(labels)
    return record
