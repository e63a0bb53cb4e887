"""The one table of artifacts: id, format, precision, file, runtime, tolerance, exporter.

Adding a format is one module with its export functions and rows here. Tolerances are
the defaults verify applies (overridable there): float32 must match to 1e-4 with 100%
top-1 agreement; float16 and quantized TF.js weights 99.5%; dynamic range 99%; full int8
98% agreement and at most 1.0 point of accuracy lost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporters import savedmodel, tfjs, tflite
from exporters.base import ExportOptions, ExportResult
from toolkit.errors import UsageError

Exporter = Callable[[Path, Path, ExportOptions], ExportResult]

FLOAT32_TOLERANCE: dict[str, float] = {"max_abs": 1e-4, "min_agreement": 1.0}
FLOAT16_TOLERANCE: dict[str, float] = {"min_agreement": 0.995}
DYNAMIC_TOLERANCE: dict[str, float] = {"min_agreement": 0.99}
INT8_TOLERANCE: dict[str, float] = {"min_agreement": 0.98, "max_accuracy_drop": 0.01}


@dataclass(frozen=True)
class ArtifactSpec:
    id: str
    format: str  # savedmodel | tflite | tfjs
    precision: str  # float32 | float16 | dynamic | int8 | uint8 | uint16
    path: str  # relative to the artifacts folder: the file or folder a runtime loads
    runtime: str  # tf | litert | tfjs
    tolerance: dict[str, float]
    export: Exporter

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "format": self.format,
            "precision": self.precision,
            "path": self.path,
            "runtime": self.runtime,
            "tolerance": dict(self.tolerance),
        }


ARTIFACTS: tuple[ArtifactSpec, ...] = (
    ArtifactSpec(
        "savedmodel",
        "savedmodel",
        "float32",
        savedmodel.ARTIFACT_PATH,
        "tf",
        {"max_abs": 0.0, "min_agreement": 1.0},  # the reference itself
        savedmodel.export_savedmodel,
    ),
    ArtifactSpec(
        "tflite_float32",
        "tflite",
        "float32",
        tflite.artifact_path("float32"),
        "litert",
        FLOAT32_TOLERANCE,
        tflite.export_tflite_float32,
    ),
    ArtifactSpec(
        "tflite_float16",
        "tflite",
        "float16",
        tflite.artifact_path("float16"),
        "litert",
        FLOAT16_TOLERANCE,
        tflite.export_tflite_float16,
    ),
    ArtifactSpec(
        "tflite_dynamic",
        "tflite",
        "dynamic",
        tflite.artifact_path("dynamic"),
        "litert",
        DYNAMIC_TOLERANCE,
        tflite.export_tflite_dynamic,
    ),
    ArtifactSpec(
        "tflite_int8",
        "tflite",
        "int8",
        tflite.artifact_path("int8"),
        "litert",
        INT8_TOLERANCE,
        tflite.export_tflite_int8,
    ),
    ArtifactSpec(
        "tfjs_float32",
        "tfjs",
        "float32",
        tfjs.artifact_folder("float32"),
        "tfjs",
        FLOAT32_TOLERANCE,
        tfjs.export_tfjs_float32,
    ),
    ArtifactSpec(
        "tfjs_uint8",
        "tfjs",
        "uint8",
        tfjs.artifact_folder("uint8"),
        "tfjs",
        FLOAT16_TOLERANCE,
        tfjs.export_tfjs_uint8,
    ),
    ArtifactSpec(
        "tfjs_uint16",
        "tfjs",
        "uint16",
        tfjs.artifact_folder("uint16"),
        "tfjs",
        FLOAT16_TOLERANCE,
        tfjs.export_tfjs_uint16,
    ),
    ArtifactSpec(
        "tfjs_float16",
        "tfjs",
        "float16",
        tfjs.artifact_folder("float16"),
        "tfjs",
        FLOAT16_TOLERANCE,
        tfjs.export_tfjs_float16,
    ),
)

BY_ID: dict[str, ArtifactSpec] = {spec.id: spec for spec in ARTIFACTS}
IDS: tuple[str, ...] = tuple(BY_ID)


def get(artifact_id: str) -> ArtifactSpec:
    if artifact_id not in BY_ID:
        raise UsageError(f"unknown artifact {artifact_id!r}", f"known: {', '.join(IDS)}")
    return BY_ID[artifact_id]


def default_tolerance(artifact_id: str) -> dict[str, float]:
    return dict(get(artifact_id).tolerance)
