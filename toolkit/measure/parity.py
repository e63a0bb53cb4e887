"""Parity metrics: how an artifact's outputs compare with the reference's, and the checks.

`compare` measures top-1 agreement, max and mean absolute error, mean per-row cosine
similarity and, when labels are known, top-1/top-5 accuracy and the accuracy lost;
`check` holds them against a Tolerance. `reference_checks` checks the SavedModel itself,
because a wrong input spec on record or mislabelled images make every artifact agree
with a wrong answer: its accuracy must be clearly above chance, no pair of classes may
look swapped, and it must match the test accuracy recorded at training.

On generated pictures (no images on record) there is no right answer, only numeric error,
and two near-equal scores may swap under any rounding. There a flip whose reference
margin (its top score minus the score of the class the artifact chose) is within twice
the artifact's own error is a near-tie: two scores each moved by that error swap. The
artifact's error is the 90th percentile over pictures of its largest score difference,
so one wild picture does not excuse itself. Near-ties do not count against agreement,
unless that error is itself large for the head (over MAX_TIE_ERROR of its span): then
every flip counts. On real images a flip stays a flip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from toolkit.errors import ArtifactError
from toolkit.measure.tolerances import Tolerance

TOP_K = 5
# A pair of classes counts as swapped when relabelling them would turn more than half of
# their images from wrong into right for the reference.
SWAP_GAIN = 0.5
MIN_CLASS_IMAGES = 5  # classes with fewer images are too noisy for the swap check
TIE_PERCENTILE = 90  # the artifact's error: this percentile of its per-picture error
# An artifact whose error is above this share of the head's span is not rounding: its
# flips are drift even on generated pictures.
MAX_TIE_ERROR = 0.05


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
    # Generated pictures only: flips within the artifact's error, and that error as a
    # share of the head's span (1 for probabilities, the outputs' range for logits).
    near_ties: int | None = None
    tie_error: float | None = None

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
    # Counted with bincount: linear in images and classes (a 100,000-class model too).
    seen = np.bincount(labels, minlength=classes)[:classes]
    right = np.bincount(labels[predicted == labels], minlength=classes)[:classes]
    return tuple(float(r / s) if s else None for r, s in zip(right, seen, strict=True))


def compare(
    outputs: np.ndarray,
    reference: np.ndarray,
    labels: np.ndarray | None,
    tie_scale: float | None = None,
) -> Metrics:
    """Metrics of `outputs` against `reference` (both float32 [N, K]). `tie_scale`, the
    span of the head's outputs, is given for generated pictures only: flips within the
    artifact's own error are then counted apart as near-ties (module docstring)."""
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
    if tie_scale is not None and diff.size:
        ties, error = near_ties(out, ref, diff, tie_scale)
        metrics = replace(metrics, near_ties=ties, tie_error=error)
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


def near_ties(
    out: np.ndarray, ref: np.ndarray, diff: np.ndarray, scale: float
) -> tuple[int, float]:
    """How many flips have a reference margin within twice the artifact's error, and that
    error as a share of the head's span (none count when it is over MAX_TIE_ERROR)."""
    error = float(np.percentile(diff.max(axis=1), TIE_PERCENTILE)) / scale
    if error > MAX_TIE_ERROR:
        return 0, error
    chosen, expected = out.argmax(axis=1), ref.argmax(axis=1)
    flipped = np.flatnonzero(chosen != expected)
    margin = ref[flipped, expected[flipped]] - ref[flipped, chosen[flipped]]
    return int(np.sum(margin <= 2 * error * scale)), error


def tie_note(metrics: Metrics) -> str:
    """What a row says of its flips on generated pictures ('' when none or real images)."""
    flips = round((1 - metrics.agreement) * metrics.images)
    if metrics.near_ties is None or metrics.tie_error is None or not flips:
        return ""
    error = f"the artifact's error {metrics.tie_error:.2g} of the head's span"
    if metrics.tie_error > MAX_TIE_ERROR:
        return f"on generated pictures, {error} is over {MAX_TIE_ERROR:g}: every flip counts"
    if not metrics.near_ties:
        return f"{flips} flip(s) on generated pictures, none a near-tie (within twice {error})"
    return (
        f"{metrics.near_ties} of {flips} flip(s) on generated pictures are near-ties, not "
        f"counted: reference margin within twice {error}"
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

    agreement = metrics.agreement
    if metrics.near_ties:  # counted as agreeing: images that agreed, and the near-ties
        agreement = (round(agreement * metrics.images) + metrics.near_ties) / metrics.images
    at_least("agreement", agreement, tolerance.min_agreement)
    if checks and tie_note(metrics):
        checks[-1] = replace(checks[-1], note=tie_note(metrics))
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
    # The confusion matrix, sparse: only (true, predicted) pairs that occur. A dense
    # classes x classes array would be 80 GB for a 100,000-class model; a pair that is
    # never confused has a gain of at most 0 and is never flagged.
    confusion: dict[tuple[int, int], int] = {}
    for pair in zip(labels.tolist(), predicted.tolist(), strict=True):
        confusion[pair] = confusion.get(pair, 0) + 1
    counts = np.bincount(labels, minlength=classes)
    pairs = sorted({(min(i, j), max(i, j)) for i, j in confusion if i != j})
    for i, j in pairs:
        if counts[i] < MIN_CLASS_IMAGES or counts[j] < MIN_CLASS_IMAGES:
            continue
        ij, ji = confusion.get((i, j), 0), confusion.get((j, i), 0)
        gain = (ij + ji - confusion.get((i, i), 0) - confusion.get((j, j), 0)) / (
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
                    f"SavedModel calls {ij}/{counts[i]} {class_names[i]!r} images "
                    f"{class_names[j]!r} and {ji}/{counts[j]} the other way round",
                )
            )
    return checks
