"""Evaluation images: the one preprocessed batch every runtime sees, and its labels.

The images come from the manifest's eval_data (a dataset's test split), a labelled
folder given with --data, or the manifest's samples/; they are mapped to the model's
class names and run through the manifest's InputSpec once, so verify and bench compare
every runtime on exactly the same input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from toolkit.errors import DataError, PathError, UsageError
from toolkit.manifest import Manifest


@dataclass(frozen=True)
class EvalSet:
    """The images every runtime sees (preprocessed once) and their labels when known."""

    images: np.ndarray  # float32 NHWC, after the manifest's InputSpec
    labels: np.ndarray | None  # int64 indices into the manifest's labels
    class_names: list[str]
    source: str  # where the images came from, for the report

    def __len__(self) -> int:
        return len(self.images)


def load_eval_set(
    manifest: Manifest, data: Path | None = None, limit: int | None = None
) -> EvalSet:
    """The test split named by the manifest's eval_data, or a labelled folder (`data`)."""
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be at least 1, got {limit}")
    if data is not None:
        pixels, labels, source = _folder_images(manifest, Path(data))
    elif manifest.eval_data:
        pixels, labels, source = _eval_data_images(manifest)
    elif manifest.samples:
        pixels, labels, source = _sample_images(manifest)
    else:
        raise DataError(
            f"{manifest.path} names no eval_data and no samples",
            "pass --data DIR (a folder of class subfolders)",
        )
    if limit is not None:
        pixels, labels = pixels[:limit], labels[:limit]
    expected = manifest.input.shape
    if len(pixels) == 0:
        raise DataError(f"no evaluation images in {source}")
    if tuple(pixels.shape[1:]) != expected:
        raise DataError(
            f"evaluation images from {source} are {list(pixels.shape[1:])}, "
            f"the model takes {list(expected)}",
            "pass --data with images of the model's size",
        )
    images = manifest.input.apply(pixels)
    return EvalSet(
        images, labels.astype(np.int64), list(manifest.labels), f"{source}, {len(images)} images"
    )


def _map_labels(names: list[str], labels: np.ndarray, manifest: Manifest, where: str) -> np.ndarray:
    """Dataset label indices -> manifest label indices, by class name when names differ."""
    if list(names) == list(manifest.labels):
        return labels
    unknown = [n for n in names if n not in manifest.labels]
    if unknown:
        raise DataError(
            f"{where} has classes the model does not know: {', '.join(unknown[:5])}",
            f"the model's classes are {', '.join(manifest.labels[:10])}",
        )
    table = np.array([manifest.labels.index(n) for n in names], dtype=np.int64)
    return table[labels]


def _eval_data_images(manifest: Manifest) -> tuple[np.ndarray, np.ndarray, str]:
    from toolkit.data import DataSpec, load_dataset

    spec = DataSpec.from_dict(dict(manifest.eval_data or {}))
    dataset = load_dataset(spec)
    labels = _map_labels(dataset.class_names, dataset.y_test, manifest, f"eval data {spec.name}")
    return dataset.x_test, labels, f"{spec.name} test split"


def _folder_images(manifest: Manifest, folder: Path) -> tuple[np.ndarray, np.ndarray, str]:
    from toolkit.data import DataSpec, load_dataset

    if not folder.is_dir():
        raise PathError(f"--data {folder} is not a folder", "name a folder of class subfolders")
    height, width, channels = manifest.input.shape
    if height != width:
        raise DataError(f"--data folders are resized to squares; the model takes {height}x{width}")
    spec = DataSpec(
        kind="folder",
        path=str(folder.resolve()),
        size=None,
        image_size=height,
        channels=channels,
        val_fraction=0.0,
        test_fraction=0.0,  # every image of the folder is evaluated
    )
    dataset = load_dataset(spec)
    pixels = np.concatenate([dataset.x_train, dataset.x_val, dataset.x_test])
    raw = np.concatenate([dataset.y_train, dataset.y_val, dataset.y_test])
    labels = _map_labels(dataset.class_names, raw, manifest, f"--data {folder}")
    return pixels, labels, f"folder {folder}"


def _sample_images(manifest: Manifest) -> tuple[np.ndarray, np.ndarray, str]:
    from PIL import Image

    pixels, labels = [], []
    mode = "L" if manifest.input.channels == 1 else "RGB"
    for sample in manifest.samples:
        relative = sample.get("path") or f"samples/{sample['file']}"
        path = manifest.root / relative
        try:
            with Image.open(path) as image:
                array = np.asarray(image.convert(mode), dtype=np.uint8)
        except (OSError, ValueError) as error:
            raise DataError(f"sample image {path} cannot be read: {error}") from None
        pixels.append(array.reshape(*array.shape[:2], manifest.input.channels))
        labels.append(int(sample["label"]))
    return np.stack(pixels), np.asarray(labels, dtype=np.int64), "samples/ of the manifest"
