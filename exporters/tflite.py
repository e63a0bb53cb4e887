"""TFLite: float32, float16, dynamic-range and full-int8 models with a static batch of 1.

Edge artifacts are converted from a concrete function whose input is [1, H, W, C]: a -1
batch turns Flatten into SHAPE/STRIDED_SLICE/PACK ops that GPU delegates reject.

Full int8 is calibrated on the images in `options.calibration` (float32, preprocessed)
and gets int8, uint8 or float32 input/output tensors (`options.io`). The TFLite
converter silently leaves an op that has no int8 kernel in float32; cnnx reads the model
back and refuses that unless the op was named in `--float-fallback`, because a model
that is "int8" except for one float island is slow on integer-only hardware and fails
outright on some accelerators.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import numpy as np

from exporters.base import INPUT_NAME, IO_TYPES, ExportOptions, ExportResult
from exporters.calibration_check import half_calibration
from exporters.quiet import silenced
from exporters.savedmodel import Pivot, load_pivot
from exporters.tflite_debug import layer_table, write_tables
from exporters.tflite_fallback import measured_fallback, selection
from exporters.tflite_inspect import TfliteReport, flex_ops, inspect_tflite
from exporters.tflite_run import predict_tflite
from toolkit.core.atomic import write_bytes_atomic
from toolkit.errors import DataError, ExportError, UsageError, shorten

PRECISIONS = ("float32", "float16", "dynamic", "int8")
DEFAULT_AUTO_FALLBACK = 3  # layers kept in float by `--float-fallback auto`


def artifact_path(precision: str) -> str:
    return f"tflite/model_{precision}.tflite"


def export_tflite_float32(
    saved_model_dir: Path, out_dir: Path, options: ExportOptions
) -> ExportResult:
    return _export(saved_model_dir, out_dir, options, "float32")


def export_tflite_float16(
    saved_model_dir: Path, out_dir: Path, options: ExportOptions
) -> ExportResult:
    return _export(saved_model_dir, out_dir, options, "float16")


def export_tflite_dynamic(
    saved_model_dir: Path, out_dir: Path, options: ExportOptions
) -> ExportResult:
    return _export(saved_model_dir, out_dir, options, "dynamic")


def export_tflite_int8(
    saved_model_dir: Path, out_dir: Path, options: ExportOptions
) -> ExportResult:
    return _export(saved_model_dir, out_dir, options, "int8")


def _export(
    saved_model_dir: Path, out_dir: Path, options: ExportOptions, precision: str
) -> ExportResult:
    pivot = load_pivot(saved_model_dir)
    details: dict[str, Any] = {"batch": 1, "converter": "tf.lite.TFLiteConverter"}
    warnings: list[str] = []
    extra: list[str] = []
    relative = artifact_path(precision)
    target = Path(out_dir) / relative
    if precision == "int8":
        content, int8_details, tables = _int8(pivot, options, target)
        details.update(int8_details)
        extra.extend(p.relative_to(out_dir).as_posix() for p in tables)
        calibration = check_calibration(options.calibration, pivot.input_shape)
        float_kept = int8_details.get("float_fallback", {})
        plain = (
            plain_int8(pivot, calibration, options.io)
            if float_kept.get("ops") or float_kept.get("nodes")
            else content
        )
        details["calibration_check"] = half_calibration(
            pivot, lambda images: plain_int8(pivot, images, options.io), plain, calibration, options
        )
    else:
        content = _convert_float(pivot, precision)
        details["optimizations"] = [] if precision == "float32" else ["DEFAULT"]
        if precision == "float16":
            details["supported_types"] = ["float16"]
    report = inspect_tflite(content)
    write_bytes_atomic(target, content)
    details["ops"] = report.op_counts
    details["weight_dtypes"] = report.weight_dtypes
    details["float_ops"] = report.float_ops
    details["fully_integer"] = report.fully_integer
    return ExportResult(
        artifact_id=f"tflite_{precision}",
        path=relative,
        inputs=report.inputs,
        outputs=report.outputs,
        details=details,
        extra_paths=(relative, *extra),
        warnings=tuple(warnings),
    )


def converter_of(pivot: Pivot) -> Any:
    """A converter for the pivot's signature with the batch fixed to 1."""
    import tensorflow as tf

    height, width, channels = pivot.input_shape
    function = pivot.function

    @tf.function(
        input_signature=[tf.TensorSpec([1, height, width, channels], tf.float32, name=INPUT_NAME)]
    )
    def batch_of_one(image: Any) -> Any:
        return function(**{INPUT_NAME: image})

    concrete = batch_of_one.get_concrete_function()
    # The converter saves its trackable as a SavedModel first: a module holding just the
    # function's variables gives the same bytes as the whole loaded pivot, whose every
    # restored function it would serialize again (about 1.5 s a conversion on a
    # keras.applications model).
    weights = tf.Module()
    weights.captured = list(concrete.variables)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], weights)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter


def convert(converter: Any, what: str) -> bytes:
    """The converted model's bytes; every TFLite artifact is converted here, so none can
    need the Flex delegate (refuse_flex)."""
    with silenced() as said:
        try:
            content = bytes(converter.convert())
        except Exception as error:  # ConverterError and friends: all mean "cannot convert"
            problem = error
        else:
            refuse_flex(flex_ops(content), what)
            return content
    needed = needed_flex_ops(f"{problem}\n{said.text}")
    if needed:
        refuse_flex(needed, what)
    raise ExportError(f"TFLite {what} conversion failed: {_first_error(problem, said.text)}")


def needed_flex_ops(log: str) -> list[str]:
    """The Flex ops a builtin-only conversion asked for (the converter's "TF Select ops:"
    line, else its per-op "neither a custom op nor a flex op" errors)."""
    listed = re.search(r"TF Select ops: ([\w, ]+)", log)
    names = listed.group(1).split(",") if listed else []
    names += re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", log)
    return sorted({f"Flex{name.strip()}" for name in names if name.strip()})


def refuse_flex(ops: list[str], what: str) -> None:
    """Refuse a model that needs Flex ops: the pip LiteRT runtimes and LiteRT on Android
    without select-tf-ops cannot run them, so it would fail on the device; it fails here."""
    if ops:
        raise ExportError(
            f"the TFLite {what} model needs TensorFlow ops that TFLite has no builtin kernel "
            f"for: {', '.join(ops)} (they would need the Flex delegate, which LiteRT on "
            "devices lacks)",
            "replace the layers that use them with ones TFLite supports",
        )


def _first_error(error: Exception, log: str) -> str:
    lines = [line.strip() for line in f"{error}\n{log}".splitlines() if "error" in line.lower()]
    text = lines[0] if lines else str(error).strip().splitlines()[0] if str(error) else ""
    return shorten(text, 300) or type(error).__name__


def _convert_float(pivot: Pivot, precision: str) -> bytes:
    import tensorflow as tf

    converter = converter_of(pivot)
    if precision in ("float16", "dynamic"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if precision == "float16":
        converter.target_spec.supported_types = [tf.float16]
    return convert(converter, precision)


# --- full int8 -------------------------------------------------------------------------


def check_calibration(images: np.ndarray | None, input_shape: tuple[int, int, int]) -> np.ndarray:
    """Calibration images must be float32 [N, H, W, C] matching the model's input."""
    if images is None or len(images) == 0:
        raise DataError(
            "full int8 needs calibration images and none were given",
            "pass --calibration-data DIR, or export a model whose source names its data",
        )
    array = np.asarray(images)
    if array.ndim != 4 or tuple(array.shape[1:]) != tuple(input_shape):
        seen = "x".join(str(d) for d in array.shape[1:]) if array.ndim == 4 else str(array.shape)
        want = "x".join(str(d) for d in input_shape)
        raise DataError(
            f"calibration images are {seen} (HxWxC) but the model takes {want}",
            "give images of the model's size and channels",
        )
    if not np.all(np.isfinite(array)):
        raise DataError("calibration images contain NaN or infinite values")
    return array.astype(np.float32, copy=False)


# Who hears of each calibration image read, as (images read, total): set around one
# export by its caller (toolkit/export/artifacts.py), so every converter run that calibrates
# (int8, int16x8, the debugger, a check on half the images) reports without each call
# passing it along.
calibration_progress: ContextVar[Callable[[int, int], None] | None] = ContextVar(
    "calibration_progress", default=None
)


def representative_dataset(images: np.ndarray) -> Callable[[], Iterator[list[np.ndarray]]]:
    def generate() -> Iterator[list[np.ndarray]]:
        report = calibration_progress.get()
        for index, image in enumerate(images):
            if report is not None:
                report(index, len(images))
            yield [image[np.newaxis]]
        if report is not None:
            report(len(images), len(images))

    return generate


def _io_dtype(io: str) -> Any:
    import tensorflow as tf

    if io not in IO_TYPES:
        raise UsageError(f"--io must be one of {sorted(IO_TYPES)}, got {io!r}")
    return getattr(tf, io)  # tf.uint8, tf.int8, tf.float32


def _int8_converter(pivot: Pivot, calibration: np.ndarray) -> Any:
    import tensorflow as tf

    converter = converter_of(pivot)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset(calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter


def plain_int8(pivot: Pivot, calibration: np.ndarray, io: str) -> bytes:
    """Full int8 with no layer in float, calibrated on `calibration`, with `io` I/O."""
    converter = _int8_converter(pivot, calibration)
    converter.inference_input_type = converter.inference_output_type = _io_dtype(io)
    return convert(converter, "int8")


def split_fallback(names: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """--float-fallback names: op types (CONV_2D, SIN) and node (tensor) names."""
    from ai_edge_litert import schema_py_generated as schema

    op_types = {k for k in vars(schema.BuiltinOperator) if k.isupper()}
    ops = [n for n in names if n.upper() in op_types and n == n.upper()]
    nodes = [n for n in names if n not in ops]
    return ops, nodes


def _int8(
    pivot: Pivot, options: ExportOptions, target: Path
) -> tuple[bytes, dict[str, Any], list[Path]]:
    """Full int8 in one of four ways: plain; plain with the per-layer error tables
    (--debug-quant); with named layers kept in float; with float layers chosen by
    measurement (--float-fallback auto)."""
    calibration = check_calibration(options.calibration, pivot.input_shape)
    io_type = _io_dtype(options.io)
    details: dict[str, Any] = {
        "optimizations": ["DEFAULT"],
        "supported_ops": ["TFLITE_BUILTINS_INT8"],
        "io": options.io,
        "calibration_images": len(calibration),
    }
    tables: list[Path] = []
    wants_debugger = options.debug_quant or options.float_fallback or options.float_fallback_auto
    if not wants_debugger:
        return _checked_plain_int8(pivot, calibration, options.io), details, tables
    debugger, stats = _debugged(pivot, calibration)
    if options.debug_quant:
        tables = write_tables(stats, target)
        details["debug_tables"] = [p.name for p in tables]
    ops, nodes = _fallback_names(options.float_fallback, stats)
    if not (ops or nodes or options.float_fallback_auto):  # only the table was asked for
        return _checked_plain_int8(pivot, calibration, options.io), details, tables
    content, fallback, recovery = _with_fallback(
        pivot, options, io_type, debugger, stats, ops, nodes
    )
    details["float_fallback"] = fallback
    details["fallback_recovery"] = recovery
    return content, details, tables


def _checked_plain_int8(pivot: Pivot, calibration: np.ndarray, io: str) -> bytes:
    content = plain_int8(pivot, calibration, io)
    _refuse_float_islands(inspect_tflite(content), allowed=set())
    return content


def _debugged(pivot: Pivot, calibration: np.ndarray) -> tuple[Any, list[dict[str, Any]]]:
    """The quantization debugger, run, and its per-layer error table."""
    import tensorflow as tf

    with silenced() as said:
        try:
            debugger = tf.lite.experimental.QuantizationDebugger(
                converter=_int8_converter(pivot, calibration),
                debug_dataset=representative_dataset(calibration[: min(len(calibration), 100)]),
            )
            debugger.run()
            stats = layer_table(debugger)
        except Exception as error:
            problem: Exception | None = error
        else:
            problem = None
    if problem is not None:
        raise ExportError(f"int8 quantization debugger failed: {_first_error(problem, said.text)}")
    return debugger, stats


def _fallback_names(
    names: tuple[str, ...], stats: list[dict[str, Any]]
) -> tuple[list[str], list[str]]:
    """--float-fallback's op types and tensor names, every tensor name a known layer."""
    ops, nodes = split_fallback(names)
    known_nodes = {row["tensor_name"] for row in stats}
    unknown = [n for n in nodes if n not in known_nodes]
    if unknown:
        raise UsageError(
            f"--float-fallback names unknown layers {unknown}",
            "use op types such as CONV_2D or tensor names from the --debug-quant table",
        )
    return ops, nodes


def _with_fallback(
    pivot: Pivot,
    options: ExportOptions,
    io_type: Any,
    debugger: Any,
    stats: list[dict[str, Any]],
    ops: list[str],
    nodes: list[str],
) -> tuple[bytes, dict[str, Any], dict[str, Any]]:
    """Int8 with layers kept in float (named, or chosen by measurement): the model, its
    float_fallback record and what the fallback recovered."""
    import tensorflow as tf

    def quantize(nodes: list[str]) -> tuple[bytes, TfliteReport]:
        with silenced():
            debugger.options = tf.lite.experimental.QuantizationDebugOptions(
                denylisted_ops=ops or None, denylisted_nodes=nodes or None
            )
            model = bytes(debugger.get_nondebug_quantized_model())
        model = _with_io(model, io_type)
        return model, inspect_tflite(model)

    def io_kept(report: TfliteReport) -> bool:
        # A float first or last layer leaves no quantized tensor to give the I/O dtype to.
        return report.inputs[0]["dtype"] == options.io and report.outputs[0]["dtype"] == options.io

    if options.float_fallback_auto:
        content, found = measured_fallback(pivot, options, stats, quantize, io_kept)
        nodes = list(found.nodes)
        report = inspect_tflite(content)
        recovery = found.to_dict(*selection(options))
    else:
        content, report = quantize(nodes)
        recovery = _recovery(pivot, options, content, io_type)
    if not io_kept(report):
        raise ExportError(
            f"--float-fallback keeps the first or last layer in float, so the int8 model "
            f"cannot take and give {options.io} (it has {report.inputs[0]['dtype']} in, "
            f"{report.outputs[0]['dtype']} out)",
            "add --io float32, or keep other layers in float",
        )
    node_ops = {row["tensor_name"]: row["op_name"] for row in stats}
    _refuse_float_islands(report, allowed=set(ops) | {node_ops[n] for n in nodes})
    return content, {"ops": ops, "nodes": nodes, "float_ops": report.float_ops}, recovery


def _with_io(content: bytes, io_type: Any) -> bytes:
    """The debugger makes float I/O models; give it the requested I/O dtype."""
    from tensorflow.lite.python import util

    with silenced():
        return bytes(util.modify_model_io_type(content, io_type, io_type))


def _refuse_float_islands(report: TfliteReport, allowed: set[str]) -> None:
    stuck = sorted({op for op in report.float_ops if op not in allowed})
    if stuck:
        names = ", ".join(stuck)
        raise ExportError(
            f"full int8: op {names} has no int8 kernel; the converter left it in float32",
            f"keep it in float on purpose with --float-fallback {','.join(stuck)}, "
            "or export --quantize dynamic",
        )


def _recovery(pivot: Pivot, options: ExportOptions, content: bytes, io_type: Any) -> dict[str, Any]:
    """Agreement (and accuracy) with the SavedModel, plain int8 vs with float fallback."""
    from exporters.savedmodel import predict

    images = options.check_images if options.check_images is not None else options.calibration
    if images is None or len(images) == 0:
        return {}
    images = np.asarray(images, dtype=np.float32)
    reference = predict(pivot, images).argmax(axis=1)
    plain = plain_int8(pivot, check_calibration(options.calibration, pivot.input_shape), options.io)
    result: dict[str, Any] = {
        "images": len(images),
        "on": options.check_on if options.check_images is not None else "calibration",
    }
    for name, model in (("plain_int8", plain), ("with_fallback", content)):
        top1 = predict_tflite(model, images).argmax(axis=1)
        entry: dict[str, float] = {"agreement": float(np.mean(top1 == reference))}
        if options.check_labels is not None:
            entry["accuracy"] = float(np.mean(top1 == options.check_labels))
        result[name] = entry
    if options.check_labels is not None:
        result["savedmodel_accuracy"] = float(np.mean(reference == options.check_labels))
    result["agreement_recovered"] = (
        result["with_fallback"]["agreement"] - result["plain_int8"]["agreement"]
    )
    return result
