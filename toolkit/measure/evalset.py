"""Evaluation images: the one preprocessed batch every runtime sees, and its labels.

Where the images come from, first found wins:

1. `--data DIR`: class subfolders (by class name or index) or a flat folder of images;
2. the manifest's eval_data: the evaluation images `cnnx export --data` recorded, or the
   test split of the dataset a cnnx run was trained on;
3. the manifest's samples/;
4. nothing on record: generated pictures (toolkit/data/generated.py), for parity only.

Pictures of any size are brought to the model's input by the manifest's pixel rule
(toolkit/data/pixels.py) and run through its InputSpec once, so verify and bench compare
every runtime on exactly the same input. Without labels there is parity and no accuracy,
and the source says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.core.limits import check_eval_memory, check_input_shape
from toolkit.data.inputspec import fit
from toolkit.errors import DataError, PathError, UsageError
from toolkit.manifest import Manifest

GENERATED = "generated pictures"


@dataclass(frozen=True)
class EvalSet:
    """The images every runtime sees (preprocessed once) and their labels when known."""

    images: np.ndarray  # float32 NHWC, after the manifest's InputSpec
    labels: np.ndarray | None  # int64 indices into the manifest's labels
    class_names: list[str]
    source: str  # where the images came from, for the report
    # Generated pictures have no right answer: a flip within the artifact's own error is a
    # near-tie there (toolkit/parity.py), while on real images a flip stays a flip.
    generated: bool = False

    def __len__(self) -> int:
        return len(self.images)


def load_eval_set(
    manifest: Manifest, data: Path | None = None, limit: int | None = None
) -> EvalSet:
    """The images to compare runtimes on (see the module docstring for which)."""
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be at least 1, got {limit}")
    check_input_shape(tuple(manifest.input.shape), str(manifest.path))
    note = ""
    if data is not None:
        pixels, labels, source = _folder_images(manifest, Path(data))
    elif manifest.eval_data and manifest.eval_data.get("kind") == "images":
        pixels, labels, source = _recorded_images(manifest, manifest.eval_data)
    elif manifest.eval_data:
        pixels, labels, source = _eval_data_images(manifest)
    elif manifest.samples:
        pixels, labels, source = _sample_images(manifest)
    else:
        from toolkit.data.generated import generated_pixels

        pixels, labels = generated_pixels(*manifest.input.shape), None
        source = GENERATED
        note = " (none on record: parity only, no accuracy)"
    if limit is not None:
        pixels = pixels[:limit]
        labels = None if labels is None else labels[:limit]
    if len(pixels) == 0:
        raise DataError(f"no evaluation images in {source}")
    check_eval_memory(len(pixels), tuple(manifest.input.shape), len(manifest.labels))
    images = manifest.input.apply(fit(pixels, manifest.input, source))
    if labels is None and not note:
        note = " (unlabelled: parity only, no accuracy)"
    return EvalSet(
        images,
        None if labels is None else labels.astype(np.int64),
        list(manifest.labels),
        f"{source}, {len(images)} images{note}",
        generated=source == GENERATED,
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


def _folder_images(manifest: Manifest, folder: Path) -> tuple[np.ndarray, np.ndarray | None, str]:
    from toolkit.data.imagefolder import load_pixels, scan

    found = scan(folder, list(manifest.labels), "--data")
    pixels = load_pixels(found, list(found.files), manifest.input)
    labels = None if found.labels is None else np.asarray(found.labels, dtype=np.int64)
    return pixels, labels, f"folder {folder}"


def _recorded_images(
    manifest: Manifest, record: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray | None, str]:
    """The evaluation images `cnnx export --data` chose, reloaded from their folder."""
    from toolkit.data.imagefolder import ImageFolder, load_pixels

    try:
        root = Path(str(record["path"]))
        files = tuple(str(f) for f in record["files"])
        labels = record.get("labels")
        labels = None if labels is None else tuple(int(k) for k in labels)
    except (KeyError, TypeError, ValueError) as error:
        raise DataError(f"{manifest.path}: eval_data is malformed: {error!r}") from None
    if labels is not None and (
        len(labels) != len(files) or any(not 0 <= k < len(manifest.labels) for k in labels)
    ):
        raise DataError(f"{manifest.path}: eval_data labels do not fit its files and classes")
    missing = [f for f in files if not (root / f).is_file()]
    if missing:
        raise PathError(
            f"{len(missing)} of the {len(files)} evaluation images recorded in {manifest.path} "
            f"are gone ({root / missing[0]})",
            "pass --data DIR, or export again with --data",
        )
    folder = ImageFolder(root, files, labels, dict(record.get("classes") or {}))
    pixels = load_pixels(folder, list(files), manifest.input)
    array = None if labels is None else np.asarray(labels, dtype=np.int64)
    return pixels, array, f"evaluation images of {root}"


def _sample_images(manifest: Manifest) -> tuple[np.ndarray, np.ndarray, str]:
    from toolkit.data.images import load_image

    pixels, labels = [], []
    height, width, channels = manifest.input.shape
    for sample in manifest.samples:
        path = manifest.sample_path(sample, check=False)
        array = load_image(path, None, channels)  # regular file, pixel limit, any mode
        if array.shape[:2] != (height, width):
            raise DataError(
                f"sample image {path} is {array.shape[0]}x{array.shape[1]}, the model takes "
                f"{height}x{width}",
                "re-export to rewrite samples/, or pass --data DIR",
            )
        label = int(sample["label"])
        if not 0 <= label < len(manifest.labels):
            count = len(manifest.labels)
            raise DataError(f"sample {path.name} has label {label}; the model has {count} classes")
        pixels.append(array)
        labels.append(label)
    return np.stack(pixels), np.asarray(labels, dtype=np.int64), "samples/ of the manifest"
