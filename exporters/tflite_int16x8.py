"""TFLite int16x8: int16 activations, int8 weights, float32 input and output.

Full int8 rounds every activation to 256 levels. In a network where BatchNormalization
follows the activation (Conv -> ReLU -> BN), the BN cannot be folded into the
convolution: it stays as a per-channel MUL and ADD whose int8 outputs lose the small
channels next to the large ones, and the error grows block after block. int16
activations have 65,536 levels, so the same model keeps its answers, at about the size
of int8 (weights are int8; only the activation buffers double).

The cost is speed: XNNPACK has no int16 kernels, so LiteRT runs these models on its
builtin (mostly reference) kernels. `benchmarks/quantize_bench.py` measures it next to
int8 and float32.

Calibration is the same as full int8 (`options.calibration`). Input and output stay
float32: the model quantizes on entry and dequantizes on exit, so every runtime feeds it
the same preprocessed floats. Ops without an int16x8 kernel fail the conversion (named),
never a silent float island.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from exporters.base import ExportOptions, ExportResult
from exporters.calibration_check import half_calibration
from exporters.savedmodel import Pivot, load_pivot
from exporters.tflite import check_calibration, convert, converter_of, representative_dataset
from exporters.tflite_inspect import inspect_tflite
from toolkit.core.atomic import write_bytes_atomic
from toolkit.errors import ExportError

ARTIFACT_ID = "tflite_int16x8"
PATH = "tflite/model_int16x8.tflite"
OPS_SET = "EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8"


def convert_int16x8(pivot: Pivot, calibration: np.ndarray) -> bytes:
    """The int16x8 model's bytes, calibrated on float32 preprocessed images."""
    import tensorflow as tf

    converter = converter_of(pivot)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset(calibration)
    converter.target_spec.supported_ops = [getattr(tf.lite.OpsSet, OPS_SET)]
    return convert(converter, "int16x8")


def export_tflite_int16x8(
    saved_model_dir: Path, out_dir: Path, options: ExportOptions
) -> ExportResult:
    pivot = load_pivot(saved_model_dir)
    calibration = check_calibration(options.calibration, pivot.input_shape)
    content = convert_int16x8(pivot, calibration)
    report = inspect_tflite(content)
    if report.float_ops:
        # The converter refuses ops without int16 kernels; guard against a changed one.
        raise ExportError(
            f"int16x8: ops {', '.join(report.float_ops)} stayed in float32",
            "export --quantize int8 or dynamic instead",
        )
    write_bytes_atomic(Path(out_dir) / PATH, content)
    details: dict[str, Any] = {
        "batch": 1,
        "converter": "tf.lite.TFLiteConverter",
        "optimizations": ["DEFAULT"],
        "supported_ops": [OPS_SET],
        "io": "float32",
        "calibration_images": len(calibration),
        "ops": report.op_counts,
        "weight_dtypes": report.weight_dtypes,
        "activation_dtypes": report.activation_dtypes,
        "float_ops": report.float_ops,
        "fully_integer": not report.float_ops,
        "calibration_check": half_calibration(
            pivot, lambda images: convert_int16x8(pivot, images), content, calibration, options
        ),
    }
    return ExportResult(
        artifact_id=ARTIFACT_ID,
        path=PATH,
        inputs=report.inputs,
        outputs=report.outputs,
        details=details,
        extra_paths=(PATH,),
    )
