"""Calibration honesty: would more calibration images have helped?

A calibrated model (full int8, int16x8) is converted a second time from the first half
of its calibration images, and both are measured against the SavedModel on held-out
images (never the calibration images themselves). If halving the images costs agreement,
ranges are still being learned and more images would likely help; if it costs nothing,
the ranges have settled and the drift, if any, comes from the precision itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from exporters.base import ExportOptions

if TYPE_CHECKING:
    from exporters.savedmodel import Pivot

# Agreement lost by halving the images beyond which more images are worth trying: half a
# point, or one image when fewer than 200 are measured.
SETTLED = 0.005


def half_calibration(
    pivot: Pivot,
    convert: Callable[[np.ndarray], bytes],
    content: bytes,
    calibration: np.ndarray,
    options: ExportOptions,
) -> dict[str, Any]:
    """Agreement (and accuracy) of `content` and of `convert(first half)` on held-out images.

    `convert(images)` makes the model from those calibration images with the same recipe.
    """
    if not options.calibration_check:
        return {"skipped": "not asked for"}
    if options.check_images is None or len(options.check_images) == 0:
        return {"skipped": "no held-out images to measure on (the source names no dataset)"}
    if len(calibration) < 2:
        return {"skipped": f"{len(calibration)} calibration image(s) cannot be halved"}
    from exporters.savedmodel import predict
    from exporters.tflite_run import predict_tflite

    images = np.asarray(options.check_images, dtype=np.float32)
    labels = options.check_labels
    reference = predict(pivot, images).argmax(axis=1)
    half = len(calibration) // 2

    def measured(model: bytes, count: int) -> dict[str, Any]:
        top1 = predict_tflite(model, images).argmax(axis=1)
        entry: dict[str, Any] = {
            "calibration_images": count,
            "agreement": float(np.mean(top1 == reference)),
        }
        if labels is not None:
            entry["accuracy"] = float(np.mean(top1 == labels))
        return entry

    full_entry = measured(content, len(calibration))
    half_entry = measured(convert(calibration[:half]), half)
    gain = full_entry["agreement"] - half_entry["agreement"]
    threshold = max(SETTLED, 1.0 / len(images))
    if gain >= threshold:
        verdict = "still rising: more calibration images may help"
    else:
        verdict = "settled: more calibration images would not help"
    return {
        "images": len(images),
        "on": options.check_on,
        "full": full_entry,
        "half": half_entry,
        "agreement_gain": gain,
        "verdict": verdict,
    }


def describe(record: dict[str, Any]) -> str:
    """One line for the export's output."""
    if "skipped" in record:
        return f"calibration check skipped: {record['skipped']}"
    full, half = record["full"], record["half"]
    return (
        f"calibration: agreement {full['agreement']:.1%} from {full['calibration_images']} "
        f"images, {half['agreement']:.1%} from {half['calibration_images']} (on "
        f"{record['images']} {record['on']} images): {record['verdict']}"
    )
