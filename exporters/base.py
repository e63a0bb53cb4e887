"""What every exporter takes and returns.

An exporter is a plain function `(saved_model_dir, out_dir, options) -> ExportResult`.
It reads the pivot SavedModel (signature `serving_default`: `image` -> `probabilities`),
writes its artifact below `out_dir` at the path the registry names, and describes what it
wrote. It never prints, never touches anything outside `out_dir`, and raises the typed
errors of toolkit.errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SIGNATURE = "serving_default"
INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"

IO_TYPES = ("uint8", "int8", "float32")  # --io: the int8 model's input and output type


@dataclass(frozen=True, eq=False)
class ExportOptions:
    """Options an exporter may read; each ignores those that do not concern it.

    Arrays are float32 NHWC, already preprocessed by the source's InputSpec (the tensor
    the SavedModel takes), so exporters never need to know about preprocessing.
    """

    # Full-int8 TFLite: the calibration images, and the dtype of the model's input/output
    # tensors. uint8 by default so raw camera bytes go straight in (MediaPipe, the Pi).
    calibration: np.ndarray | None = None
    io: str = "uint8"
    # Keep these layers (TFLite tensor/op names) in float inside the int8 model, or with
    # float_fallback_auto=N, up to N layers chosen by measured agreement.
    float_fallback: tuple[str, ...] = ()
    float_fallback_auto: int = 0
    # Write a per-layer error table of the int8 model next to it.
    debug_quant: bool = False
    # Images (and labels, when known) that measure a quantized model against the
    # SavedModel: what float fallback recovered, which layers it keeps, what half of the
    # calibration images would give. `check_on` names the sample ("validation split").
    check_images: np.ndarray | None = None
    check_labels: np.ndarray | None = None
    check_on: str = "test sample"
    # Convert calibrated models a second time from half the images (calibration_check.py).
    calibration_check: bool = True
    # The limits a measured choice aims for (Tolerance field names); None: the artifact's
    # default tolerance.
    tolerance: Mapping[str, float] | None = None


@dataclass(frozen=True)
class ExportResult:
    """What one exporter wrote: paths are relative to the exporter's out_dir."""

    artifact_id: str
    path: str  # the file (or, for a SavedModel, the folder) a runtime loads
    inputs: list[dict[str, Any]]  # manifest TensorInfo dicts
    outputs: list[dict[str, Any]]
    details: dict[str, Any] = field(default_factory=dict)
    # Paths (relative) of every file that belongs to the artifact; hashed into the manifest.
    # Empty means "the file or folder at `path`".
    extra_paths: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def tensor_info(
    name: str,
    shape: list[int] | tuple[int, ...],
    dtype: str,
    scale: float | None = None,
    zero_point: int | None = None,
) -> dict[str, Any]:
    """One manifest TensorInfo: shape uses -1 for a dynamic dimension."""
    quantization = None
    if scale is not None and scale != 0.0:
        quantization = {"scale": float(scale), "zero_point": int(zero_point or 0)}
    return {
        "name": name,
        "shape": [int(d) for d in shape],
        "dtype": dtype,
        "quantization": quantization,
    }
