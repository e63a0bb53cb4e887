"""ONNX models from the pivot SavedModel: float32, float16 and statically quantized int8.

The float32 model is tf2onnx's conversion of the pivot's `serving_default` function
(the same converter Keras's own `Model.export(format="onnx")` calls on the TensorFlow
backend; here every source, Keras file or SavedModel, reaches the exporter as the
pivot). It keeps the fixed names (`image` -> `probabilities`) and a dynamic batch,
recorded as -1 like the SavedModel's. The float16 and int8 models are ONNX Runtime's
own tools run on that float32 graph: `float16.convert_float_to_float16` with float32
inputs and outputs kept, and `quantize_static` in the QDQ format (int8 weights per
channel, int8 activations, MinMax calibration on the images TFLite's int8 calibrates
on), so every ONNX artifact takes and gives float32.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from exporters.base import INPUT_NAME, OUTPUT_NAME, ExportOptions, ExportResult, tensor_info
from exporters.quiet import quietly, silenced
from exporters.savedmodel import Pivot, load_pivot
from toolkit.core.provenance import NOT_INSTALLED, package_version
from toolkit.errors import ExportError, RuntimeUnavailable

# Opset 17: every operator a Keras classifier converts to, run by ONNX Runtime 1.32 on
# the CPU and by onnxruntime-web's wasm and WebGPU backends.
OPSET = 17
CONVERTER = "tf2onnx"
INSTALL_HINT = "install the ONNX tools: pip install 'cnnx[onnx]' (make setup)"
# Rows per calibration batch handed to ONNX Runtime's calibrator.
CALIBRATION_BATCH = 16


def artifact_path(precision: str) -> str:
    return f"onnx/model_{precision}.onnx"


def export_onnx_float32(
    saved_model_dir: Path, out_dir: Path, options: ExportOptions
) -> ExportResult:
    pivot = load_pivot(saved_model_dir)
    return _write(pivot, out_dir, "float32", convert(pivot), {"io": "float32"})


def export_onnx_float16(
    saved_model_dir: Path, out_dir: Path, options: ExportOptions
) -> ExportResult:
    pivot = load_pivot(saved_model_dir)
    try:
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError as error:
        raise _unavailable(error) from None
    with silenced():
        model = convert_float_to_float16(convert(pivot), keep_io_types=True)
    return _write(pivot, out_dir, "float16", model, {"io": "float32", "weights": "float16"})


def export_onnx_int8(saved_model_dir: Path, out_dir: Path, options: ExportOptions) -> ExportResult:
    from exporters.tflite import calibration_progress, check_calibration

    pivot = load_pivot(saved_model_dir)
    images = check_calibration(options.calibration, pivot.input_shape)
    try:
        import onnx
        from onnxruntime.quantization import (
            CalibrationDataReader,
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )
    except ImportError as error:
        raise _unavailable(error) from None

    report = calibration_progress.get()  # the progress bar's, as TFLite's int8 reports

    class Images(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._starts = iter(range(0, len(images), CALIBRATION_BATCH))

        def get_next(self) -> dict[str, np.ndarray] | None:
            start = next(self._starts, None)
            if start is None:
                return None
            if report is not None:
                report(start, len(images))
            return {INPUT_NAME: images[start : start + CALIBRATION_BATCH]}

    with tempfile.TemporaryDirectory(prefix="cnnx-onnx-") as scratch:
        float_path = Path(scratch) / "float32.onnx"
        quantized_path = Path(scratch) / "int8.onnx"
        onnx.save(convert(pivot), str(float_path))
        # The quantizer logs advice ("consider pre-processing") on the root logger.
        with _logging_off():
            quietly(
                "ONNX int8 quantization",
                lambda: quantize_static(
                    str(float_path),
                    str(quantized_path),
                    Images(),
                    quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8,
                    per_channel=True,
                    calibrate_method=CalibrationMethod.MinMax,
                ),
            )
        model = onnx.load(str(quantized_path))
    details = {
        "io": "float32",
        "quant_format": "QDQ",
        "weights": "int8 per channel",
        "activations": "int8",
        "calibration_method": "MinMax",
        "calibration_images": len(images),
    }
    return _write(pivot, out_dir, "int8", model, details)


def convert(pivot: Pivot) -> Any:
    """The pivot's serving function as an ONNX ModelProto (tf2onnx, OPSET): a fresh
    copy each call, converted once per pivot for the three artifacts."""
    import onnx

    return onnx.load_model_from_string(_converted(pivot))


@functools.lru_cache(maxsize=2)
def _converted(pivot: Pivot) -> bytes:
    try:
        import tensorflow as tf
        import tf2onnx
    except ImportError as error:
        raise RuntimeUnavailable(f"tf2onnx cannot be imported: {error}", INSTALL_HINT) from None
    height, width, channels = pivot.input_shape
    spec = (tf.TensorSpec([None, height, width, channels], tf.float32, name=INPUT_NAME),)
    function = pivot.function

    @tf.function
    def serve(image: Any) -> dict[str, Any]:
        return {OUTPUT_NAME: function(**{INPUT_NAME: image})[OUTPUT_NAME]}

    def frozen() -> Any:
        return _from_frozen(serve.get_concrete_function(*spec), tf2onnx)

    model = quietly("ONNX conversion", frozen, 300)
    return bytes(model.SerializeToString())


def _from_frozen(concrete: Any, tf2onnx: Any) -> Any:
    """Convert a concrete function with every capture frozen to a constant first: a loaded
    SavedModel's function captures tensors (a Normalization layer's mean and variance),
    which tf2onnx's from_function would turn into extra graph inputs."""
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    frozen = convert_variables_to_constants_v2(concrete)
    (given,), (made,) = frozen.inputs, frozen.outputs
    model, _ = tf2onnx.convert.from_graph_def(
        frozen.graph.as_graph_def(),
        input_names=[given.name],
        output_names=[made.name],
        opset=OPSET,
    )
    names = {given.name: INPUT_NAME, made.name: OUTPUT_NAME}  # image:0 -> image, ...
    graph = model.graph
    for value in (*graph.input, *graph.output, *graph.value_info):
        value.name = names.get(value.name, value.name)
    for node in graph.node:
        node.input[:] = [names.get(name, name) for name in node.input]
        node.output[:] = [names.get(name, name) for name in node.output]
    return model


def _write(
    pivot: Pivot, out_dir: Path, precision: str, model: Any, details: dict[str, Any]
) -> ExportResult:
    import onnx

    relative = artifact_path(precision)
    target = Path(out_dir) / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(target))  # one file: a classifier is far below protobuf's 2 GB
    inputs = [(i.name, _shape(i)) for i in model.graph.input]
    outputs = [(o.name, _shape(o)) for o in model.graph.output]
    height, width, channels = pivot.input_shape
    want_in, want_out = [-1, height, width, channels], [-1, pivot.num_classes]
    if inputs != [(INPUT_NAME, want_in)] or outputs != [(OUTPUT_NAME, want_out)]:
        raise ExportError(
            f"the ONNX model takes {inputs} and gives {outputs}",
            f"expected {INPUT_NAME!r} {want_in} -> {OUTPUT_NAME!r} {want_out}",
        )
    opsets = {entry.domain or "ai.onnx": int(entry.version) for entry in model.opset_import}
    return ExportResult(
        artifact_id=f"onnx_{precision}",
        path=relative,
        inputs=[tensor_info(INPUT_NAME, want_in, "float32")],
        outputs=[tensor_info(OUTPUT_NAME, want_out, "float32")],
        details={
            "opset": opsets.get("ai.onnx", OPSET),
            "opsets": opsets,
            "batch": "dynamic",
            "converter": CONVERTER,
            "versions": versions(),
            **details,
        },
    )


def _shape(value: Any) -> list[int]:
    dims = value.type.tensor_type.shape.dim
    return [int(d.dim_value) if d.HasField("dim_value") else -1 for d in dims]


@contextlib.contextmanager
def _logging_off() -> Iterator[None]:
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def _unavailable(error: ImportError) -> RuntimeUnavailable:
    return RuntimeUnavailable(f"ONNX Runtime cannot be imported: {error}", INSTALL_HINT)


def versions() -> dict[str, str]:
    return {
        name: package_version(name) or NOT_INSTALLED for name in ("tf2onnx", "onnx", "onnxruntime")
    }
