"""The one table of artifacts: everything cnnx knows about each export, in one row.

A row names the artifact (id, format, precision, the file or folder a runtime loads),
the `cnnx export` choices that make it (`--to` its format or all, the `--quantize`
values, the TF.js weight format of `--tfjs-quantize`, and whether it is made when no
`--quantize` is given), its one default tolerance and its exporter. The formats table
says which runtimes run each format. The order of the rows is the display order of
every table, report and plot.

Everything else derives from here: the CLI's choices (toolkit/cli/export.py), the
selection of an export (`select`), the default tolerances (toolkit/measure/tolerances.py), the
runtimes verify and bench run an artifact in (toolkit/runtimes), the order of verify,
bench, plots and `cnnx info`. Adding a format is one exporter module plus one row here;
tests/test_registry.py walks the table.

The module is plain data: it imports no exporter (rows name theirs as "module:function",
imported when called), so `cnnx --help` reads the choices without loading numpy or
TensorFlow.

Default tolerances (fractions; `cnnx verify` can override each): float32 must match to
1e-4 with 100% top-1 agreement; float16 and quantized TF.js weights 99.5%; dynamic range
99%; full int8 98% and at most 1.0 point of accuracy lost; int16x8 (int8 weights, int16
activations) 98.5% and 1.0 point. The reference (the SavedModel
in TensorFlow) is compared with its own CPU run: on the CPU the difference is 0; on a GPU
(float32, TF32 off: toolkit/runtimes/tf.py) other kernels sum in another order, which
moves probabilities by about 1e-6 and can flip a near tie, so it gets the float32 limit
and one image in a thousand.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.errors import UsageError

if TYPE_CHECKING:
    from exporters.base import ExportOptions, ExportResult

Exporter = Callable[[Path, Path, "ExportOptions"], "ExportResult"]

FLOAT32_TOLERANCE: Mapping[str, float] = {"max_abs": 1e-4, "min_agreement": 1.0}
FLOAT16_TOLERANCE: Mapping[str, float] = {"min_agreement": 0.995}
DYNAMIC_TOLERANCE: Mapping[str, float] = {"min_agreement": 0.99}
INT8_TOLERANCE: Mapping[str, float] = {"min_agreement": 0.98, "max_accuracy_drop": 0.01}
# int8 weights, activations at 65,536 levels: between full int8 and dynamic range.
INT16X8_TOLERANCE: Mapping[str, float] = {"min_agreement": 0.985, "max_accuracy_drop": 0.01}
REFERENCE_TOLERANCE: Mapping[str, float] = {"max_abs": 1e-4, "min_agreement": 0.999}
# A GPU accelerator may compute a float model in float16 (10-bit mantissa: about 1e-3
# relative per op, compounding over the layers), as mobile GPU delegates do by default.
GPU_FLOAT_TOLERANCE: Mapping[str, float] = {"max_abs": 1e-2, "min_agreement": 0.995}
# The runtimes that compute on a GPU accelerator: their rows take an artifact's
# `gpu_tolerance` where it has one (quantized artifacts keep theirs: the accelerator
# dequantizes them, which moves less than their own quantization does).
GPU_RUNTIMES: tuple[str, ...] = ("litert-gpu",)
# An artifact id this table does not know (a manifest from a newer cnnx).
FALLBACK_TOLERANCE: Mapping[str, float] = {"min_agreement": 0.98}

ALL = "all"  # the --to choice that makes every format


@dataclass(frozen=True)
class FormatSpec:
    name: str  # also the --to choice that makes its artifacts
    engine: str  # the manifest's "runtime" field: what executes it (tf, litert, tfjs, ...)
    runtimes: tuple[str, ...]  # cnnx runtime adapters (toolkit.runtimes.RUNTIMES) running it


FORMATS: dict[str, FormatSpec] = {
    spec.name: spec
    for spec in (
        FormatSpec("savedmodel", "tf", ("tf",)),
        FormatSpec("tflite", "litert", ("litert", "litert-gpu", "litertjs", "litertjs-node")),
        FormatSpec("tfjs", "tfjs", ("tfjs-node", "browser")),
        FormatSpec("onnx", "onnxruntime", ("onnxruntime", "onnxruntime-web")),
    )
}


@dataclass(frozen=True)
class ArtifactSpec:
    id: str
    format: str  # a key of FORMATS
    precision: str  # float32 | float16 | dynamic | int8 | int16x8 | uint8 | uint16
    path: str  # relative to the artifacts folder: the file or folder a runtime loads
    exporter: str  # "module:function", a function (saved_model_dir, out_dir, options)
    tolerance: Mapping[
        str, float
    ]  # Tolerance field names -> limits (toolkit/measure/tolerances.py)
    quantize: tuple[str, ...] = ()  # the --quantize values that make it
    by_default: bool = True  # made by --to FORMAT (or all) with no --quantize
    tfjs_quantize: str | None = None  # the --tfjs-quantize value that makes it
    calibrated: bool = False  # needs calibration images (full integer quantization)
    reference: bool = False  # the SavedModel every other artifact is compared with
    gpu_tolerance: Mapping[str, float] | None = None  # its rows in GPU_RUNTIMES (None: `tolerance`)

    @property
    def runtime(self) -> str:
        """What the manifest records as the artifact's runtime (tf | litert | tfjs | ...)."""
        return FORMATS[self.format].engine

    @property
    def runtimes(self) -> tuple[str, ...]:
        return FORMATS[self.format].runtimes

    @property
    def quantized(self) -> bool:
        return self.precision != "float32"

    def export(self, saved_model_dir: Path, out_dir: Path, options: ExportOptions) -> ExportResult:
        return exporter(self)(saved_model_dir, out_dir, options)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "format": self.format,
            "precision": self.precision,
            "path": self.path,
            "runtime": self.runtime,
            "runtimes": list(self.runtimes),
            "tolerance": dict(self.tolerance),
            "gpu_tolerance": dict(self.gpu_tolerance or self.tolerance),
        }


ARTIFACTS: tuple[ArtifactSpec, ...] = (
    ArtifactSpec(
        "savedmodel",
        "savedmodel",
        "float32",
        "saved_model",
        "exporters.savedmodel:export_savedmodel",
        REFERENCE_TOLERANCE,
        reference=True,
    ),
    ArtifactSpec(
        "tflite_float32",
        "tflite",
        "float32",
        "tflite/model_float32.tflite",
        "exporters.tflite:export_tflite_float32",
        FLOAT32_TOLERANCE,
        quantize=("none",),
        gpu_tolerance=GPU_FLOAT_TOLERANCE,
    ),
    ArtifactSpec(
        "tflite_float16",
        "tflite",
        "float16",
        "tflite/model_float16.tflite",
        "exporters.tflite:export_tflite_float16",
        FLOAT16_TOLERANCE,
        quantize=("float16",),
        gpu_tolerance=GPU_FLOAT_TOLERANCE,
    ),
    ArtifactSpec(
        "tflite_dynamic",
        "tflite",
        "dynamic",
        "tflite/model_dynamic.tflite",
        "exporters.tflite:export_tflite_dynamic",
        DYNAMIC_TOLERANCE,
        quantize=("dynamic",),
    ),
    ArtifactSpec(
        "tflite_int8",
        "tflite",
        "int8",
        "tflite/model_int8.tflite",
        "exporters.tflite:export_tflite_int8",
        INT8_TOLERANCE,
        quantize=("int8",),
        calibrated=True,
    ),
    # int16 activations, int8 weights, float I/O: what to ship when int8 drifts. Never
    # made by default: it runs on LiteRT's slower builtin kernels (no XNNPACK).
    ArtifactSpec(
        "tflite_int16x8",
        "tflite",
        "int16x8",
        "tflite/model_int16x8.tflite",
        "exporters.tflite_int16x8:export_tflite_int16x8",
        INT16X8_TOLERANCE,
        quantize=("int16x8",),
        by_default=False,
        calibrated=True,
    ),
    # TF.js quantizes weights only: each --quantize picks the nearest weight format.
    ArtifactSpec(
        "tfjs_float32",
        "tfjs",
        "float32",
        "tfjs/float32",
        "exporters.tfjs:export_tfjs_float32",
        FLOAT32_TOLERANCE,
        quantize=("none",),
        tfjs_quantize="float32",
    ),
    ArtifactSpec(
        "tfjs_uint8",
        "tfjs",
        "uint8",
        "tfjs/uint8",
        "exporters.tfjs:export_tfjs_uint8",
        FLOAT16_TOLERANCE,
        quantize=("dynamic", "int8"),
        tfjs_quantize="uint8",
    ),
    ArtifactSpec(
        "tfjs_uint16",
        "tfjs",
        "uint16",
        "tfjs/uint16",
        "exporters.tfjs:export_tfjs_uint16",
        FLOAT16_TOLERANCE,
        tfjs_quantize="uint16",
    ),
    ArtifactSpec(
        "tfjs_float16",
        "tfjs",
        "float16",
        "tfjs/float16",
        "exporters.tfjs:export_tfjs_float16",
        FLOAT16_TOLERANCE,
        quantize=("float16",),
        tfjs_quantize="float16",
    ),
    # ONNX Runtime's tools on tf2onnx's float32 graph; float32 inputs and outputs.
    ArtifactSpec(
        "onnx_float32",
        "onnx",
        "float32",
        "onnx/model_float32.onnx",
        "exporters.onnx:export_onnx_float32",
        FLOAT32_TOLERANCE,
        quantize=("none",),
    ),
    ArtifactSpec(
        "onnx_float16",
        "onnx",
        "float16",
        "onnx/model_float16.onnx",
        "exporters.onnx:export_onnx_float16",
        FLOAT16_TOLERANCE,
        quantize=("float16",),
    ),
    # Static QDQ: int8 weights per channel and int8 activations, calibrated like TFLite's.
    ArtifactSpec(
        "onnx_int8",
        "onnx",
        "int8",
        "onnx/model_int8.onnx",
        "exporters.onnx:export_onnx_int8",
        INT8_TOLERANCE,
        quantize=("int8",),
        calibrated=True,
    ),
)

# --- derived: nothing below names a format or a precision ------------------------------

BY_ID: dict[str, ArtifactSpec] = {spec.id: spec for spec in ARTIFACTS}
IDS: tuple[str, ...] = tuple(BY_ID)
REFERENCE: ArtifactSpec = next(spec for spec in ARTIFACTS if spec.reference)
REFERENCE_ID: str = REFERENCE.id


def _ordered(values: Iterable[str | None]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v is not None))


PRECISIONS: tuple[str, ...] = _ordered(spec.precision for spec in ARTIFACTS)
# --to: the formats that are shipped, the reference alone, then all of them.
TO_CHOICES: tuple[str, ...] = (
    *(name for name in FORMATS if name != REFERENCE.format),
    REFERENCE.format,
    ALL,
)
QUANTIZE: tuple[str, ...] = _ordered(q for spec in ARTIFACTS for q in spec.quantize)
TFJS_QUANTIZE: tuple[str, ...] = _ordered(spec.tfjs_quantize for spec in ARTIFACTS)


def get(artifact_id: str) -> ArtifactSpec:
    if artifact_id not in BY_ID:
        raise UsageError(f"unknown artifact {artifact_id!r}", f"known: {', '.join(IDS)}")
    return BY_ID[artifact_id]


def default_tolerance(artifact_id: str, runtime: str | None = None) -> dict[str, float]:
    """An artifact's default limits; a GPU runtime's row takes its `gpu_tolerance`."""
    spec = BY_ID.get(artifact_id)
    if spec is None:
        return dict(FALLBACK_TOLERANCE)
    if runtime in GPU_RUNTIMES and spec.gpu_tolerance is not None:
        return dict(spec.gpu_tolerance)
    return dict(spec.tolerance)


def exporter(spec: ArtifactSpec) -> Exporter:
    module, _, function = spec.exporter.partition(":")
    found: Exporter = getattr(importlib.import_module(module), function)
    return found


def select(to: str, quantize: str | None, tfjs_quantize: str | None) -> list[str]:
    """The artifact ids `cnnx export --to TO [--quantize Q] [--tfjs-quantize W]` makes, in
    display order. The reference is always made; --tfjs-quantize decides the TF.js
    choice over --quantize."""
    ids = [REFERENCE_ID]
    for spec in ARTIFACTS:
        if spec.reference or to not in (spec.format, ALL):
            continue
        if spec.tfjs_quantize is not None and tfjs_quantize is not None:
            chosen = spec.tfjs_quantize == tfjs_quantize
        elif quantize is None:
            chosen = spec.by_default
        else:
            chosen = quantize in spec.quantize
        if chosen:
            ids.append(spec.id)
    return ids


def display_rank(artifact_id: str) -> tuple[int, str]:
    """Sort key: table order, then ids this table does not know, alphabetically."""
    return (IDS.index(artifact_id) if artifact_id in BY_ID else len(IDS), artifact_id)


def format_rank(name: str) -> int:
    """A format's place in FORMATS (plots colour by it); unknown formats come last."""
    names = list(FORMATS)
    return names.index(name) if name in names else len(names)


def runtimes_for(artifact_id: str, format_name: str) -> tuple[str, ...]:
    """The runtime adapters that run an artifact: its row's, else its format's."""
    spec = BY_ID.get(artifact_id)
    if spec is not None:
        return spec.runtimes
    found = FORMATS.get(format_name)
    return found.runtimes if found is not None else ()
