"""The images an export uses: int8 calibration, the evaluation set on record, samples.

Where they come from, for a model with a source of data:

- `--data DIR`: class subfolders (by class name or index) or a flat folder of images of
  any size. It calibrates full int8 and is recorded as the evaluation data of the
  artifacts folder, so `cnnx verify` and `cnnx bench` need no flags afterwards. Labelled
  or not, calibration and evaluation images are kept apart as far as the folder allows
  (toolkit/data/imagefolder.py `split`); the manifest records the split.
- `--calibration-data DIR` and `--eval-data DIR`: separate folders for each role (with
  `--data`, the one role not given a folder of its own takes all of `--data`).
- A cnnx run: the dataset it was trained on (training split calibrates, test evaluates).

Without any, full int8 cannot be made; `--to all` then skips it and says which flag
makes it, and verify falls back to generated pictures (parity only).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from toolkit.core.walk import describe_left_out
from toolkit.data.imagefolder import (
    MAX_EVALUATION_IMAGES,
    ImageFolder,
    balanced_indices,
    calibration_images,
    evaluation_record,
    folder_labels,
    load_pixels,
    scan,
    split,
)
from toolkit.errors import UsageError
from toolkit.manifest import sha256_file

if TYPE_CHECKING:
    from toolkit.data import Dataset
    from toolkit.sources import Source

MIN_CALIBRATION_SAMPLES = 100  # fewer draws a warning: int8 ranges get noisy
CHECK_IMAGES = 1000  # images measuring float fallback and calibration
SAMPLES_DIR = "samples"
SAMPLES_INDEX = "samples/samples.json"


@dataclass(frozen=True)
class DataRequest:
    """The data flags of `cnnx export`."""

    data: Path | None = None
    calibration_data: Path | None = None
    eval_data: Path | None = None
    calibration_samples: int = 300
    labels_file: Path | tuple[str, ...] | None = None  # a file, or the names (toolkit.api)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.data is not None and self.calibration_data and self.eval_data:
            raise UsageError(
                "--data is not used when --calibration-data and --eval-data are both given",
                "drop one of the three",
            )


@dataclass
class ExportData:
    """What the export found: calibration images, the eval_data record, samples to write."""

    labels: list[str]
    calibration: np.ndarray | None = None  # float32, preprocessed
    calibration_record: dict[str, Any] = field(default_factory=dict)
    eval_data: dict[str, Any] | None = None  # the manifest's eval_data
    # float32 images and labels measuring float fallback and calibration, and their name
    evaluation: tuple[np.ndarray, np.ndarray | None] | None = None
    check_on: str = "evaluation"  # as in "on 60 evaluation images"
    samples: tuple[np.ndarray, np.ndarray, list[dict[str, Any]]] | None = None  # uint8, y, origin
    notes: list[str] = field(default_factory=list)

    @property
    def calibration_hint(self) -> str:
        return "pass --data DIR (your images, any size) or --calibration-data DIR"


def folder_class_labels(source: Source, request: DataRequest) -> tuple[list[str], str]:
    """The labels to use: the source's, or the class folder names of the data when the
    model names none (sorted, as keras' image_dataset_from_directory numbers them)."""
    labels = list(source.labels)
    default = [f"class_{i}" for i in range(len(labels))]
    if request.labels_file is not None or source.origin.get("format") == "run":
        return labels, ""
    if labels != default:
        return labels, ""
    for folder in (request.data, request.eval_data):
        if folder is not None and Path(folder).is_dir():
            names = folder_labels(Path(folder), len(labels))
            if names is not None:
                return names, f"labels: the class folder names of {folder}, sorted"
    return labels, ""


def gather(source: Source, request: DataRequest, *, calibrate: bool, samples: int) -> ExportData:
    """Calibration images (when `calibrate`), the evaluation record and the samples."""
    spec = source.input_spec
    labels, note = folder_class_labels(source, request)
    found = ExportData(labels=labels, notes=[note] if note else [])
    evaluation: ImageFolder | None = None
    eval_files: tuple[str, ...] = ()
    split_record: dict[str, Any] = {}
    if request.data is not None:
        folder = scan(Path(request.data), labels, "--data")
        found.notes.append(f"--data {request.data}: {folder.describe(labels)}")
        if request.eval_data is not None:  # --data calibrates, --eval-data evaluates
            if calibrate:
                found.calibration, found.calibration_record = calibration_images(
                    folder.root, spec, request.calibration_samples, request.seed, "--data"
                )
        else:
            share = request.calibration_samples if calibrate and not request.calibration_data else 0
            parts = split(folder, share, request.seed)
            evaluation, eval_files, split_record = folder, parts.evaluation, parts.record
            said = f"{len(folder)} images: {len(parts.evaluation)} evaluate"
            if parts.calibration:
                said += f", {len(parts.calibration)} others calibrate int8"
            found.notes.append(f"--data {request.data}: {parts.record.get('note', said)}")
            if share:
                calibration = load_pixels(folder, list(parts.calibration), spec)
                found.calibration = spec.apply(calibration)
                found.calibration_record = {
                    "from": "data",
                    "folder": str(folder.root.resolve()),
                    "count": len(parts.calibration),
                    "seed": request.seed,
                    "files": list(parts.calibration),
                    "split": parts.record,
                }
    if request.calibration_data is not None and calibrate:
        found.calibration, found.calibration_record = calibration_images(
            Path(request.calibration_data), spec, request.calibration_samples, request.seed
        )
        left = describe_left_out(found.calibration_record["left_out"])
        if left:
            found.notes.append(f"--calibration-data {request.calibration_data}: {left}")
    if request.eval_data is not None:
        evaluation = scan(Path(request.eval_data), labels, "--eval-data")
        found.notes.append(f"--eval-data {request.eval_data}: {evaluation.describe(labels)}")
        keep = balanced_indices(
            np.asarray(evaluation.labels or [0] * len(evaluation)), MAX_EVALUATION_IMAGES
        )
        eval_files = tuple(evaluation.files[i] for i in keep)
        split_record = {"images": len(evaluation), "evaluation": len(eval_files)}
    if evaluation is not None:
        found.eval_data = evaluation_record(evaluation, eval_files, labels, split_record)
        if not evaluation.labelled:
            found.notes.append(
                f"{evaluation.root} has no class subfolders: verify and bench will give "
                "parity with the SavedModel and no accuracy"
            )
        _evaluation_arrays(found, evaluation, eval_files, source, samples)
    elif source.eval_data:
        _dataset_arrays(found, source, request, calibrate, samples)
    return found


def _evaluation_arrays(
    found: ExportData, folder: ImageFolder, files: tuple[str, ...], source: Source, samples: int
) -> None:
    """Samples (labelled folders only) and fallback-check images from the evaluation files."""
    spec = source.input_spec
    if folder.labels is None:
        return
    index = {name: i for i, name in enumerate(folder.files)}
    labels = np.asarray([folder.labels[index[f]] for f in files], dtype=np.int64)
    picked = _round_robin(labels, samples)
    pixels = load_pixels(folder, [files[i] for i in picked], spec)
    origin = [{"split": "evaluation", "source_file": files[i]} for i in picked]
    found.samples = (pixels, labels[picked], origin)
    check = list(range(min(len(files), CHECK_IMAGES)))
    check_pixels = load_pixels(folder, [files[i] for i in check], spec)
    found.evaluation = (spec.apply(check_pixels), labels[check])


def _dataset_arrays(
    found: ExportData, source: Source, request: DataRequest, calibrate: bool, samples: int
) -> None:
    """A cnnx run's dataset: training images calibrate, the validation split measures
    float fallback and calibration, the test split evaluates."""
    from toolkit.data import DataSpec, load_dataset
    from toolkit.data.inputspec import fit

    spec = source.input_spec
    dataset: Dataset = load_dataset(DataSpec.from_dict(dict(source.eval_data or {})))
    found.eval_data = source.eval_data
    if calibrate and found.calibration is None:
        indices = balanced_indices(dataset.y_train, request.calibration_samples, request.seed)
        labels = dataset.y_train[indices]
        found.calibration = spec.apply(fit(dataset.x_train[indices], spec, "the training split"))
        found.calibration_record = {
            "from": "dataset",
            "data": dataset.spec.to_dict(),
            "split": "train",
            "count": len(indices),
            "seed": request.seed,
            "indices": [int(i) for i in indices],
            "class_counts": {
                dataset.class_names[k]: int(np.sum(labels == k))
                for k in range(len(dataset.class_names))
            },
        }
    test = fit(dataset.x_test, spec, "the test split")
    picked = _round_robin(dataset.y_test, samples)
    origin = [{"split": "test", "split_index": int(i)} for i in picked]
    found.samples = (test[picked], dataset.y_test[picked], origin)
    # Choices (which layers stay in float) are made on the validation split, so the test
    # split verify uses never chose anything.
    validation = fit(dataset.x_val[:CHECK_IMAGES], spec, "the validation split")
    found.evaluation = (spec.apply(validation), dataset.y_val[:CHECK_IMAGES])
    found.check_on = "validation split"


def run_dataset(source: Source) -> Dataset | None:
    """The dataset a cnnx run was trained on; None for any other source."""
    if not source.eval_data or source.eval_data.get("kind") == "images":
        return None
    from toolkit.data import DataSpec, load_dataset

    return load_dataset(DataSpec.from_dict(dict(source.eval_data)))


def _round_robin(labels: np.ndarray, count: int) -> np.ndarray:
    """Up to `count` indices taking each class in turn, first images first."""
    by_class = {int(k): list(np.flatnonzero(labels == k)) for k in np.unique(labels)}
    order: list[int] = []
    while len(order) < min(count, len(labels)):
        for k in sorted(by_class):
            if by_class[k] and len(order) < count:
                order.append(int(by_class[k].pop(0)))
    return np.asarray(order, dtype=np.int64)


def calibration_warnings(found: ExportData) -> list[str]:
    count = 0 if found.calibration is None else len(found.calibration)
    if count >= MIN_CALIBRATION_SAMPLES:
        return []
    return [
        f"only {count} calibration images (fewer than {MIN_CALIBRATION_SAMPLES}); "
        "int8 ranges may be off"
    ]


def write_samples(
    root: Path,
    pixels: np.ndarray,
    labels: np.ndarray,
    origin: list[dict[str, Any]],
    names: list[str],
) -> list[dict[str, Any]]:
    """PNGs of model-size pictures plus samples/samples.json; the manifest's sample list."""
    from PIL import Image

    folder = root / SAMPLES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    for n, (picture, label, where) in enumerate(zip(pixels, labels, origin, strict=True)):
        name = names[int(label)] if int(label) < len(names) else str(int(label))
        file = f"{n:03d}_{_slug(name)}.png"
        image = Image.fromarray(picture[..., 0] if picture.shape[-1] == 1 else picture)
        image.save(folder / file, format="PNG")
        # `file` is relative to samples/ (what the page and the bundles read); the split's
        # own index is `split_index`, never `index`, which readers take as a label.
        records.append({"file": file, "label": int(label), "label_name": name, **where})
    (root / SAMPLES_INDEX).write_text(json.dumps(records, indent=2) + "\n", encoding="utf-8")
    listed = []
    for record in records:
        path = folder / record["file"]
        relative = f"{SAMPLES_DIR}/{record['file']}"
        listed.append(
            {**record, "path": relative, "sha256": sha256_file(path), "size": path.stat().st_size}
        )
    return listed


def _slug(text: str) -> str:
    cleaned = "".join(c if c.isalnum() else "_" for c in text.lower()).strip("_")
    return cleaned[:32] or "class"
