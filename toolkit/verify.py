"""Parity: every artifact against the SavedModel, on the same preprocessed images.

The reference is the SavedModel run in TensorFlow on the CPU. For each artifact and
each runtime that runs it, verify measures top-1 agreement, max and mean absolute
error, mean per-row cosine similarity and, when labels are known, top-1/top-5 accuracy
and the accuracy lost against the reference. Each metric is checked against the
artifact's tolerance; every failure is collected (none stops the others) so the whole
table can be printed before `VerifyReport.raise_for_failures()` raises.

The reference is checked too, because a wrong input spec on record or mislabelled
evaluation images make every artifact agree with a wrong answer: its accuracy must be
clearly above chance, no pair of classes may look swapped, and it must match the test
accuracy recorded at training when the manifest carries one.

Tolerances (fractions: 0.995 is 99.5%, a drop of 0.01 is one percentage point) are
resolved per artifact, later wins: the defaults by precision below, the manifest
entry's `tolerance`, a tolerances file (by precision, then by artifact id), the
command-line flags (for all, then `PRECISION=VALUE` or `ID=VALUE`). docs/verify.md
has the details.
"""

from __future__ import annotations

import json
import math
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.errors import (
    ArtifactError,
    CnnxError,
    DataError,
    PathError,
    RuntimeUnavailable,
    UsageError,
    VerificationFailed,
)
from toolkit.manifest import ArtifactEntry, Manifest
from toolkit.runtimes import RUNTIMES, LoadedModel, RuntimeSkipped, load, runtimes_for

REFERENCE_ID = "savedmodel"
REFERENCE_RUNTIME = "tf"
VERIFY_RUNTIMES = ("tf", "litert", "tfjs-node")  # the browser is opt-in: it is slow to start
TOP_K = 5
# A pair of classes counts as swapped when relabelling them would turn more than half of
# their images from wrong into right for the reference.
SWAP_GAIN = 0.5
MIN_CLASS_IMAGES = 5  # classes with fewer images are too noisy for the swap check


# --- tolerances -----------------------------------------------------------------------


@dataclass(frozen=True)
class Tolerance:
    """Limits for one artifact; None leaves a metric unchecked."""

    min_agreement: float | None = None  # top-1 agreement with the reference, 0..1
    max_abs: float | None = None  # largest |artifact - reference| over all outputs
    max_mean_abs: float | None = None
    min_cosine: float | None = None  # mean over rows
    max_accuracy_drop: float | None = None  # reference accuracy - artifact accuracy, 0..1

    def merged(self, overrides: Mapping[str, Any], where: str) -> Tolerance:
        known = {f.name for f in fields(self)}
        values: dict[str, float | None] = {}
        for key, value in overrides.items():
            if key not in known:
                raise UsageError(
                    f"unknown tolerance {key!r} in {where}", f"known: {', '.join(sorted(known))}"
                )
            values[key] = None if value is None else parse_fraction(value, f"{key} in {where}", key)
        return replace(self, **values)

    def to_dict(self) -> dict[str, float | None]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# DESIGN.md: float32 to 1e-4 and 100% agreement; float16 and quantized TF.js weights
# 99.5%; dynamic range 99%; full int8 98% and at most one point of accuracy lost.
DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    "float32": Tolerance(min_agreement=1.0, max_abs=1e-4),
    "float16": Tolerance(min_agreement=0.995),
    "uint16": Tolerance(min_agreement=0.995),
    "uint8": Tolerance(min_agreement=0.995),
    "dynamic": Tolerance(min_agreement=0.99),
    "int8": Tolerance(min_agreement=0.98, max_accuracy_drop=0.01),
}
FALLBACK_TOLERANCE = Tolerance(min_agreement=0.98)


def parse_fraction(value: Any, where: str, key: str = "") -> float:
    """A number, or text like '0.995', '99.5%' or '1pp' (percent and points become fractions)."""
    if isinstance(value, bool):
        raise UsageError(f"{where} must be a number, got {value!r}")
    if isinstance(value, int | float):
        number = float(value)
    else:
        text = str(value).strip().lower()
        scale = 1.0
        for suffix in ("pp", "%"):
            if text.endswith(suffix):
                text, scale = text[: -len(suffix)].strip(), 0.01
        try:
            number = float(text) * scale
        except ValueError:
            raise UsageError(
                f"{where} must be a number, got {value!r}", "e.g. 0.995, 99.5% or 1pp"
            ) from None
    if not math.isfinite(number) or number < 0:
        raise UsageError(f"{where} must be a finite number >= 0, got {value!r}")
    if key in ("min_agreement", "min_cosine", "max_accuracy_drop") and number > 1:
        raise UsageError(
            f"{where} is a fraction of 1, got {value!r}", f"write {number / 100:g} or {number:g}%"
        )
    return number


@dataclass(frozen=True)
class ToleranceOverrides:
    """User overrides: for every artifact, by precision, by artifact id (later wins)."""

    every: dict[str, Any] = field(default_factory=dict)
    by_precision: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_artifact: dict[str, dict[str, Any]] = field(default_factory=dict)


def tolerance_for(entry: ArtifactEntry, *layers: ToleranceOverrides) -> Tolerance:
    """The tolerance of one artifact: defaults, manifest entry, then each override layer."""
    tolerance = DEFAULT_TOLERANCES.get(entry.precision, FALLBACK_TOLERANCE)
    if entry.format == "savedmodel":
        tolerance = Tolerance(min_agreement=1.0, max_abs=1e-5)  # the reference against itself
    tolerance = tolerance.merged(entry.tolerance, f"the manifest entry {entry.id!r}")
    for layer in layers:
        tolerance = tolerance.merged(layer.every, "the overrides")
        tolerance = tolerance.merged(layer.by_precision.get(entry.precision, {}), entry.precision)
        tolerance = tolerance.merged(layer.by_artifact.get(entry.id, {}), entry.id)
    return tolerance


def parse_flag_values(
    key: str, values: Iterable[str], known_ids: Iterable[str] = ()
) -> ToleranceOverrides:
    """`--min-agreement 0.99 --min-agreement int8=0.97 --min-agreement tflite_int8=96%`."""
    ids = set(known_ids)
    every: dict[str, Any] = {}
    by_precision: dict[str, dict[str, Any]] = {}
    by_artifact: dict[str, dict[str, Any]] = {}
    flag = "--" + key.replace("_", "-")
    for raw in values:
        name, sep, value = str(raw).partition("=")
        if not sep:
            every[key] = parse_fraction(name, flag, key)
            continue
        name = name.strip()
        number = parse_fraction(value, f"{flag} {name}", key)
        if name in DEFAULT_TOLERANCES:
            by_precision.setdefault(name, {})[key] = number
        elif name in ids or "_" in name or name == REFERENCE_ID:
            by_artifact.setdefault(name, {})[key] = number
        else:
            raise UsageError(
                f"{flag} {raw!r}: {name!r} is neither a precision nor an artifact id",
                f"precisions: {', '.join(DEFAULT_TOLERANCES)}",
            )
    return ToleranceOverrides(every, by_precision, by_artifact)


def load_tolerances(path: Path) -> ToleranceOverrides:
    """A TOML or JSON file: top-level keys are tolerance names (for all), precisions or
    artifact ids, the latter two mapping to tables of tolerance names."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PathError(f"tolerances file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read tolerances file {path}: {error}") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as error:
        kind = "JSON" if path.suffix.lower() == ".json" else "TOML"
        raise UsageError(f"tolerances file {path} is not valid {kind}: {error}") from None
    if not isinstance(data, dict):
        raise UsageError(f"tolerances file {path} must hold a table, got {type(data).__name__}")
    known = {f.name for f in fields(Tolerance)}
    overrides = ToleranceOverrides()
    for key, value in data.items():
        where = f"{path} [{key}]"
        if key in known:
            overrides.every[key] = parse_fraction(value, where, key)
        elif isinstance(value, dict):
            table = Tolerance().merged(value, where).to_dict()  # validates names and values
            table = {k: v for k, v in table.items() if k in value}
            target = overrides.by_precision if key in DEFAULT_TOLERANCES else overrides.by_artifact
            target[key] = table
        else:
            raise UsageError(
                f"tolerances file {path}: {key!r} is neither a tolerance name nor a table",
                f"tolerance names: {', '.join(sorted(known))}",
            )
    return overrides


# --- evaluation images ----------------------------------------------------------------


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


# --- metrics --------------------------------------------------------------------------


@dataclass(frozen=True)
class Metrics:
    """How one artifact's outputs compare with the reference's on the same images."""

    images: int
    agreement: float
    max_abs: float
    mean_abs: float
    cosine: float
    accuracy: float | None = None  # top-1, when labels are known
    top5: float | None = None
    accuracy_drop: float | None = None  # reference accuracy - this accuracy
    per_class_accuracy: tuple[float | None, ...] | None = None  # None for a class without images

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.per_class_accuracy is not None:
            data["per_class_accuracy"] = list(self.per_class_accuracy)
        return data


def topk_accuracy(probs: np.ndarray, labels: np.ndarray, k: int) -> float:
    k = min(k, probs.shape[1])
    top = np.argpartition(-probs, k - 1, axis=1)[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=1)))


def per_class_accuracy(
    predicted: np.ndarray, labels: np.ndarray, classes: int
) -> tuple[float | None, ...]:
    result: list[float | None] = []
    for c in range(classes):
        mask = labels == c
        result.append(float(np.mean(predicted[mask] == c)) if mask.any() else None)
    return tuple(result)


def compare(outputs: np.ndarray, reference: np.ndarray, labels: np.ndarray | None) -> Metrics:
    """Metrics of `outputs` against `reference` (both float32 [N, K])."""
    out = np.asarray(outputs, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    if out.shape != ref.shape:
        raise ArtifactError(
            f"outputs have shape {list(out.shape)}, the reference {list(ref.shape)}"
        )
    if not np.all(np.isfinite(out)):
        # NaN or inf outputs: as far from the reference as it gets, said plainly.
        return Metrics(len(out), 0.0, math.inf, math.inf, 0.0)
    diff = np.abs(out - ref)
    norms = np.linalg.norm(out, axis=1) * np.linalg.norm(ref, axis=1)
    cosine = np.where(norms > 0, np.sum(out * ref, axis=1) / np.maximum(norms, 1e-30), 0.0)
    predicted = out.argmax(axis=1)
    metrics = Metrics(
        images=len(out),
        agreement=float(np.mean(predicted == ref.argmax(axis=1))),
        max_abs=float(diff.max()) if diff.size else 0.0,
        mean_abs=float(diff.mean()) if diff.size else 0.0,
        cosine=float(cosine.mean()) if len(cosine) else 1.0,
    )
    if labels is None:
        return metrics
    accuracy = float(np.mean(predicted == labels))
    reference_accuracy = float(np.mean(ref.argmax(axis=1) == labels))
    return replace(
        metrics,
        accuracy=accuracy,
        top5=topk_accuracy(out, labels, TOP_K),
        accuracy_drop=reference_accuracy - accuracy,
        per_class_accuracy=per_class_accuracy(predicted, labels, out.shape[1]),
    )


@dataclass(frozen=True)
class Check:
    """One metric against its limit."""

    metric: str
    value: float
    limit: float
    op: str  # ">=" or "<="
    passed: bool
    note: str = ""

    def describe(self) -> str:
        value, limit = _fmt(self.metric, self.value), _fmt(self.metric, self.limit)
        text = f"{self.metric} {value} (limit {self.op} {limit})"
        return f"{text}: {self.note}" if self.note else text

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "value": _json_number(self.value),
            "limit": _json_number(self.limit),
            "op": self.op,
            "passed": self.passed,
            "note": self.note,
        }


def _fmt(metric: str, value: float) -> str:
    if metric in ("agreement", "accuracy", "accuracy_drop", "reference_accuracy", "cosine"):
        return f"{value * 100:.2f}%" if metric != "cosine" else f"{value:.6f}"
    return f"{value:.3g}"


def _json_number(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)


def check(metrics: Metrics, tolerance: Tolerance) -> list[Check]:
    checks: list[Check] = []

    def at_least(metric: str, value: float | None, limit: float | None) -> None:
        if value is not None and limit is not None:
            checks.append(Check(metric, value, limit, ">=", value >= limit))

    def at_most(metric: str, value: float | None, limit: float | None) -> None:
        if value is not None and limit is not None:
            checks.append(Check(metric, value, limit, "<=", value <= limit))

    at_least("agreement", metrics.agreement, tolerance.min_agreement)
    at_most("max_abs", metrics.max_abs, tolerance.max_abs)
    at_most("mean_abs", metrics.mean_abs, tolerance.max_mean_abs)
    at_least("cosine", metrics.cosine, tolerance.min_cosine)
    # A tiny epsilon: 1.0 pp must pass when the drop is exactly one image in a hundred.
    drop = None if metrics.accuracy_drop is None else metrics.accuracy_drop - 1e-12
    at_most("accuracy_drop", drop, tolerance.max_accuracy_drop)
    return checks


def reference_checks(
    probs: np.ndarray,
    labels: np.ndarray | None,
    class_names: list[str],
    recorded_accuracy: float | None = None,
    min_accuracy: float | None = None,
) -> list[Check]:
    """Is the reference itself right on these images? Catches a wrong input spec on
    record (accuracy at chance) and mislabelled evaluation images (a swapped pair)."""
    if labels is None or len(labels) == 0:
        return []
    n, classes = probs.shape
    predicted = probs.argmax(axis=1)
    accuracy = float(np.mean(predicted == labels))
    checks: list[Check] = []
    chance = 1.0 / classes
    # Clearly above chance: three standard errors of a coin with p = 1/K over n images.
    floor = (
        min_accuracy
        if min_accuracy is not None
        else chance + 3 * math.sqrt(chance * (1 - chance) / n)
    )
    checks.append(
        Check(
            "reference_accuracy",
            accuracy,
            floor,
            ">=",
            accuracy >= floor,
            ""
            if accuracy >= floor
            else "the SavedModel is at chance level on these images: "
            "is the input spec on record right (scale/offset, mean/std)?",
        )
    )
    if recorded_accuracy is not None:
        margin = max(
            0.05, 3 * math.sqrt(max(recorded_accuracy * (1 - recorded_accuracy), 1e-4) / n)
        )
        limit = recorded_accuracy - margin
        checks.append(
            Check(
                "reference_accuracy",
                accuracy,
                limit,
                ">=",
                accuracy >= limit,
                ""
                if accuracy >= limit
                else f"training recorded {recorded_accuracy * 100:.1f}% "
                "test accuracy: wrong preprocessing on record or other images?",
            )
        )
    confusion = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    counts = confusion.sum(axis=1)
    for i in range(classes):
        for j in range(i + 1, classes):
            if counts[i] < MIN_CLASS_IMAGES or counts[j] < MIN_CLASS_IMAGES:
                continue
            gain = (confusion[i, j] + confusion[j, i] - confusion[i, i] - confusion[j, j]) / (
                counts[i] + counts[j]
            )
            if gain > SWAP_GAIN:
                checks.append(
                    Check(
                        "label_swap",
                        float(gain),
                        SWAP_GAIN,
                        "<=",
                        False,
                        f"classes {class_names[i]!r} and {class_names[j]!r} look swapped: the "
                        f"SavedModel calls {confusion[i, j]}/{counts[i]} {class_names[i]!r} images "
                        f"{class_names[j]!r} and {confusion[j, i]}/{counts[j]} the other way round",
                    )
                )
    return checks


# --- the verify run -------------------------------------------------------------------


@dataclass(frozen=True)
class ParityRow:
    """One artifact in one runtime configuration."""

    artifact: str
    runtime: str  # registry name
    label: str  # e.g. "litert/xnnpack x2"
    precision: str
    format: str
    status: str  # ok | drift | failed (the runtime could not run it) | skipped
    reason: str = ""
    metrics: Metrics | None = None
    checks: tuple[Check, ...] = ()
    tolerance: Tolerance | None = None
    runtime_info: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    error_code: int = 0  # exit code of the error behind a failed row (7: the artifact itself)

    @property
    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "artifact": self.artifact,
            "runtime": self.runtime,
            "label": self.label,
            "precision": self.precision,
            "format": self.format,
            "status": self.status,
            "reason": self.reason,
            "metrics": self.metrics.to_dict() if self.metrics else None,
            "checks": [c.to_dict() for c in self.checks],
            "tolerance": self.tolerance.to_dict() if self.tolerance else None,
            "runtime_info": self.runtime_info,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class VerifyReport:
    rows: tuple[ParityRow, ...]
    images: int
    data_source: str
    class_names: list[str]
    labelled: bool

    @property
    def drifted(self) -> list[ParityRow]:
        return [r for r in self.rows if r.status == "drift"]

    @property
    def errors(self) -> list[ParityRow]:
        return [r for r in self.rows if r.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.drifted and not self.errors

    def failure_summary(self) -> str:
        parts = [
            f"{r.artifact} on {r.label}: " + ", ".join(c.describe() for c in r.failed_checks)
            for r in self.drifted
        ]
        parts += [f"{r.artifact} on {r.label}: {r.reason}" for r in self.errors]
        return "; ".join(parts)

    def raise_for_failures(self) -> None:
        """VerificationFailed (exit 9) naming each drifted artifact and metric; a runtime
        that could not run with nothing drifted is RuntimeUnavailable (exit 8)."""
        if self.drifted:
            names = sorted({r.artifact for r in self.drifted})
            raise VerificationFailed(
                f"{len(names)} artifact(s) drifted past tolerance: {self.failure_summary()}",
                "see docs/verify.md to read the metrics or loosen a tolerance",
            )
        if self.errors and all(r.error_code == ArtifactError.exit_code for r in self.errors):
            # A missing file or a hash mismatch is the artifact's fault, not the runtime's.
            raise ArtifactError(
                f"{len(self.errors)} artifact(s) damaged: {self.failure_summary()}",
                "re-export them with cnnx export",
            )
        if self.errors:
            raise RuntimeUnavailable(
                f"{len(self.errors)} runtime row(s) could not run: {self.failure_summary()}",
                "fix the runtime or leave it out with --runtimes",
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "data": self.data_source,
            "labelled": self.labelled,
            "classes": self.class_names,
            "ok": self.ok,
            "rows": [r.to_dict() for r in self.rows],
        }


@dataclass(frozen=True)
class VerifyConfig:
    artifacts_dir: Path
    artifacts: tuple[str, ...] = ()  # empty: every artifact in the manifest
    runtimes: tuple[str, ...] = VERIFY_RUNTIMES
    data: Path | None = None
    limit: int | None = None
    device: str = "cpu"
    backends: tuple[str, ...] = ()  # TF.js backends; empty: each runtime's defaults
    threads: int | None = None  # LiteRT threads for parity (results do not depend on it)
    overrides: tuple[ToleranceOverrides, ...] = ()
    min_reference_accuracy: float | None = None
    timeout: float | None = None


def selected_entries(manifest: Manifest, ids: tuple[str, ...]) -> list[ArtifactEntry]:
    if not ids:
        return [manifest.artifacts[k] for k in sorted(manifest.artifacts, key=_artifact_order)]
    return [manifest.artifact(i) for i in ids]


def _artifact_order(artifact_id: str) -> tuple[int, str]:
    rank = {"savedmodel": 0, "tflite": 1, "tfjs": 2}
    return (rank.get(artifact_id.split("_")[0], 3), artifact_id)


def variants(
    runtime: str, backends: tuple[str, ...], threads: tuple[int | None, ...]
) -> list[dict[str, Any]]:
    """The option sets one runtime is run with (its backends or thread counts)."""
    spec = RUNTIMES[runtime]
    if spec.variant_option == "backend":
        chosen = (
            [b for b in backends if b in spec.supported_variants]
            if backends
            else list(spec.default_variants)
        )
        return [{"backend": b} for b in chosen]
    if spec.variant_option == "threads":
        return [{"threads": t} for t in threads]
    return [{}]


def variant_label(runtime: str, options: dict[str, Any]) -> str:
    """A row's label before the runtime loads (and when it cannot): 'tfjs-node/wasm x2'."""
    text = runtime
    if options.get("backend"):
        text += f"/{options['backend']}"
    if options.get("device", "cpu") != "cpu":
        text += f"@{options['device']}"
    if options.get("threads"):
        text += f" x{options['threads']}"
    return text


def runtime_options(device: str, timeout: float | None) -> dict[str, Any]:
    """The options every runtime of a run gets; a timeout only when one was asked for."""
    return {"device": device, **({"timeout": timeout} if timeout else {})}


def reference_extra(
    manifest: Manifest, evalset: EvalSet, min_accuracy: float | None
) -> Callable[[np.ndarray], list[Check]]:
    """The extra checks of the SavedModel's own row: its accuracy is sane (see reference_checks)."""

    def extra(outputs: np.ndarray) -> list[Check]:
        return reference_checks(
            outputs, evalset.labels, evalset.class_names, recorded_accuracy(manifest), min_accuracy
        )

    return extra


def recorded_accuracy(manifest: Manifest) -> float | None:
    """The test accuracy training recorded, when the manifest carries it."""
    for holder in (manifest.source.get("metrics"), manifest.source):
        if isinstance(holder, dict):
            value = holder.get("test_accuracy")
            if isinstance(value, int | float) and 0 <= value <= 1:
                return float(value)
    return None


def reference_outputs(
    manifest: Manifest, evalset: EvalSet, **options: Any
) -> tuple[np.ndarray, LoadedModel]:
    """The SavedModel's outputs on the eval set (TensorFlow, CPU) and the loaded model."""
    if REFERENCE_ID not in manifest.artifacts:
        raise ArtifactError(
            f"{manifest.path} has no {REFERENCE_ID!r} artifact: nothing to compare against",
            "export with cnnx export --to all (the SavedModel is the reference)",
        )
    model = load(
        REFERENCE_RUNTIME, manifest, manifest.artifact(REFERENCE_ID), device="cpu", **options
    )
    try:
        return model.predict(evalset.images), model
    except BaseException:
        model.close()
        raise


def run_parity(
    manifest: Manifest,
    entry: ArtifactEntry,
    runtime: str,
    options: dict[str, Any],
    evalset: EvalSet,
    reference: np.ndarray,
    tolerance: Tolerance,
    extra_checks: Callable[[np.ndarray], list[Check]] | None = None,
    keep: Callable[[LoadedModel], None] | None = None,
) -> ParityRow:
    """Load, predict on the eval set, compare. Never raises for a runtime's failure:
    it becomes an error (or skipped) row. `keep` receives the loaded model instead of
    it being closed (bench goes on to time it)."""
    start = time.perf_counter()
    base: dict[str, Any] = {
        "artifact": entry.id,
        "runtime": runtime,
        "precision": entry.precision,
        "format": entry.format,
    }
    label = variant_label(runtime, options)
    model: LoadedModel | None = None
    try:
        model = load(runtime, manifest, entry, **options)
        label = model.info.label
        outputs = model.predict(evalset.images)
        metrics = compare(outputs, reference, evalset.labels)
        checks = check(metrics, tolerance) + (extra_checks(outputs) if extra_checks else [])
        status = "ok" if all(c.passed for c in checks) else "drift"
        info = model.info.to_dict()
        if keep is not None:
            keep(model)
            model = None
        return ParityRow(
            **base,
            label=label,
            status=status,
            metrics=metrics,
            checks=tuple(checks),
            tolerance=tolerance,
            runtime_info=info,
            seconds=time.perf_counter() - start,
        )
    except RuntimeSkipped as error:
        return ParityRow(
            **base, label=label, status="skipped", reason=error.one_line(), tolerance=tolerance
        )
    except CnnxError as error:
        return ParityRow(
            **base,
            label=label,
            status="failed",
            reason=error.one_line(),
            tolerance=tolerance,
            seconds=time.perf_counter() - start,
            error_code=error.exit_code,
        )
    finally:
        if model is not None:
            model.close()


def verify(config: VerifyConfig, manifest: Manifest | None = None) -> VerifyReport:
    """Every selected artifact in every selected runtime against the SavedModel."""
    from toolkit.manifest import load_manifest

    manifest = manifest or load_manifest(config.artifacts_dir)
    entries = selected_entries(manifest, config.artifacts)
    evalset = load_eval_set(manifest, config.data, config.limit)
    reference, ref_model = reference_outputs(manifest, evalset)
    ref_model.close()
    common = runtime_options(config.device, config.timeout)
    rows: list[ParityRow] = []
    for entry in entries:
        tolerance = tolerance_for(entry, *config.overrides)
        for runtime in runtimes_for(entry, config.runtimes):
            extra = None
            if entry.id == REFERENCE_ID and runtime == REFERENCE_RUNTIME:
                extra = reference_extra(manifest, evalset, config.min_reference_accuracy)
            for variant in variants(runtime, config.backends, (config.threads,)):
                rows.append(
                    run_parity(
                        manifest,
                        entry,
                        runtime,
                        {**common, **variant},
                        evalset,
                        reference,
                        tolerance,
                        extra,
                    )
                )
    return VerifyReport(
        rows=tuple(rows),
        images=len(evalset),
        data_source=evalset.source,
        class_names=evalset.class_names,
        labelled=evalset.labels is not None,
    )
