"""The exporters on small SavedModels built here: int8 kernels, calibration, debugging.

Each pivot is a tiny seeded model with the fixed signature (image -> probabilities),
converted for real by the TFLite converter and read back with LiteRT.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from exporters.base import ExportOptions
from exporters.tflite import (
    check_calibration,
    convert,
    export_tflite_float32,
    export_tflite_int8,
    predict_tflite,
)
from exporters.tflite_inspect import inspect_tflite
from tests.cli import cnnx
from tests.factories import random_pictures
from toolkit.errors import DataError, ExportError, UsageError

pytestmark = pytest.mark.slow

SIZE = 16


@pytest.fixture(scope="module")
def sin_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A classifier with a SIN op: TFLite has SIN in float only, no int8 kernel."""
    import tensorflow as tf

    module = tf.Module()
    module.weights = tf.Variable(
        np.random.default_rng(1).normal(size=(SIZE * SIZE * 3, 4)), dtype=tf.float32
    )

    @tf.function(input_signature=[tf.TensorSpec([None, SIZE, SIZE, 3], tf.float32, name="image")])
    def serve(image: tf.Tensor) -> dict[str, tf.Tensor]:
        x = tf.reshape(image, [-1, SIZE * SIZE * 3]) / 255.0
        return {"probabilities": tf.nn.softmax(tf.matmul(tf.math.sin(x * 3.0), module.weights))}

    module.serve = serve
    path = tmp_path_factory.mktemp("sin") / "saved_model"
    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})
    return path


@pytest.fixture(scope="module")
def conv_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small seeded CNN through the same pivot writer cnnx uses for Keras models."""
    import keras

    from toolkit.sources.pivot import save_pivot

    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(6, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(4, activation="softmax")(x)
    path = tmp_path_factory.mktemp("conv") / "saved_model"
    save_pivot(keras.Model(inputs, outputs), path)
    return path


def test_op_without_int8_kernel_is_named(sin_model: Path, tmp_path: Path) -> None:
    options = ExportOptions(calibration=random_pictures(40, SIZE))
    with pytest.raises(ExportError) as caught:
        export_tflite_int8(sin_model, tmp_path, options)
    line = caught.value.one_line()
    assert "SIN" in line and "--float-fallback SIN" in line
    assert not (tmp_path / "tflite" / "model_int8.tflite").exists()  # nothing half-written


def test_float_fallback_by_op_type_keeps_it_float(sin_model: Path, tmp_path: Path) -> None:
    options = ExportOptions(calibration=random_pictures(40, SIZE), float_fallback=("SIN",))
    result = export_tflite_int8(sin_model, tmp_path, options)
    report = inspect_tflite(tmp_path / result.path)
    assert report.float_ops == ["SIN"]  # the only float island, on purpose
    assert report.inputs[0]["dtype"] == "uint8"  # the debugger's float I/O was converted
    assert result.details["float_fallback"]["ops"] == ["SIN"]
    recovery = result.details["fallback_recovery"]
    assert recovery["images"] == 40 and 0.0 <= recovery["with_fallback"]["agreement"] <= 1.0


def test_debug_quant_table_and_auto_fallback(conv_model: Path, tmp_path: Path) -> None:
    images = random_pictures(60, SIZE)
    labels = np.arange(60) % 4
    options = ExportOptions(
        calibration=images,
        debug_quant=True,
        float_fallback_auto=1,
        check_images=random_pictures(50, SIZE, seed=3),
        check_labels=labels[:50],
        tolerance={"min_agreement": 1.0},  # out of reach: the search must try
    )
    result = export_tflite_int8(conv_model, tmp_path, options)
    table = tmp_path / "tflite" / "model_int8.quant_debug.csv"
    assert (tmp_path / "tflite" / "model_int8.quant_debug.md").is_file()
    rows = list(csv.DictReader(table.open()))
    assert {"CONV_2D", "FULLY_CONNECTED"} <= {row["op_name"] for row in rows}
    ranks = [float(row["rmse_over_scale"]) for row in rows]
    assert ranks == sorted(ranks, reverse=True)  # worst first
    # The choice is measured: every layer kept made the whole model agree more with the
    # SavedModel on the check images, and the result is never worse than plain int8.
    recovery = result.details["fallback_recovery"]
    assert recovery["on"] == "test sample" and recovery["images"] == 50
    assert set(recovery["plain_int8"]) == {"agreement", "accuracy"}
    assert recovery["with_fallback"]["agreement"] >= recovery["plain_int8"]["agreement"]
    kept = [t for t in recovery["trials"] if t["result"] == "kept"]
    nodes = result.details["float_fallback"]["nodes"]
    assert nodes == [name for t in kept for name in t["layers"]]
    assert len(kept) <= 1  # the budget: auto:1
    report = inspect_tflite(tmp_path / result.path)
    assert report.inputs[0]["dtype"] == "uint8" and report.outputs[0]["dtype"] == "uint8"
    by_name = {row["tensor_name"]: row["op_name"] for row in rows}
    assert sorted(report.float_ops) == sorted({by_name[n] for n in nodes})
    if not nodes:
        assert recovery["kept_plain_int8"] and recovery["stopped"]
    assert "tflite/model_int8.quant_debug.csv" in result.extra_paths


def test_fallback_of_the_first_layer_cannot_keep_uint8_io(conv_model: Path, tmp_path: Path) -> None:
    options = ExportOptions(calibration=random_pictures(20, SIZE), float_fallback=("CONV_2D",))
    with pytest.raises(ExportError, match="cannot take and give uint8"):
        export_tflite_int8(conv_model, tmp_path, options)
    floats = ExportOptions(
        calibration=random_pictures(20, SIZE), float_fallback=("CONV_2D",), io="float32"
    )
    result = export_tflite_int8(conv_model, tmp_path, floats)
    assert inspect_tflite(tmp_path / result.path).float_ops == ["CONV_2D"]


def test_unknown_fallback_layer_is_a_usage_error(conv_model: Path, tmp_path: Path) -> None:
    options = ExportOptions(
        calibration=random_pictures(20, SIZE), float_fallback=("no/such/layer",)
    )
    with pytest.raises(UsageError, match="no/such/layer"):
        export_tflite_int8(conv_model, tmp_path, options)


@pytest.mark.parametrize(
    ("shape", "seen"), [((8, SIZE + 1, SIZE, 3), "17x16x3"), ((8, SIZE, SIZE, 1), "16x16x1")]
)
def test_calibration_of_wrong_size_or_channels(
    conv_model: Path, tmp_path: Path, shape: tuple[int, ...], seen: str
) -> None:
    options = ExportOptions(calibration=np.zeros(shape, np.float32))
    with pytest.raises(DataError, match=f"calibration images are {seen}"):
        export_tflite_int8(conv_model, tmp_path, options)
    with pytest.raises(DataError, match="none were given"):
        check_calibration(None, (SIZE, SIZE, 3))


@pytest.mark.parametrize("io", ["uint8", "int8", "float32"])
def test_int8_io_types_agree_with_savedmodel(conv_model: Path, tmp_path: Path, io: str) -> None:
    from exporters.savedmodel import load_pivot, predict

    images = random_pictures(80, SIZE, seed=5)
    result = export_tflite_int8(conv_model, tmp_path, ExportOptions(calibration=images, io=io))
    report = inspect_tflite(tmp_path / result.path)
    assert report.inputs[0]["dtype"] == io and report.outputs[0]["dtype"] == io
    assert report.float_ops == []
    reference = predict(load_pivot(conv_model), images)
    got = predict_tflite((tmp_path / result.path).read_bytes(), images)
    assert np.max(np.abs(got - reference)) < 0.05  # one or two int8 steps of a softmax


def test_int8_is_under_a_third_of_float32_at_seed_width(tmp_path: Path) -> None:
    """Size ratio of the default seed CNN (width 1, 32x32): weights dominate the file."""
    from toolkit.sources.pivot import save_pivot
    from toolkit.train.models import build_model

    model = build_model("seed", (32, 32, 3), 10, width=1.0, seed=0)
    pivot = tmp_path / "saved_model"
    save_pivot(model, pivot)
    calibration = np.random.default_rng(0).integers(0, 256, (32, 32, 32, 3)).astype(np.float32)
    f32 = export_tflite_float32(pivot, tmp_path, ExportOptions())
    q8 = export_tflite_int8(pivot, tmp_path, ExportOptions(calibration=calibration))
    ratio = (tmp_path / q8.path).stat().st_size / (tmp_path / f32.path).stat().st_size
    assert ratio <= 0.3, ratio
    assert inspect_tflite(tmp_path / q8.path).fully_integer


def test_info_flags_ops_that_need_flex(tmp_path: Path) -> None:
    """`cnnx info` on a .tflite lists ops and names those needing TF select ops (Flex)."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32)])
    def determinant(x: tf.Tensor) -> tf.Tensor:
        return tf.reshape(tf.linalg.det(tf.reshape(x, [1, 2, 2])), [1, 1])

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [determinant.get_concrete_function()], determinant
    )
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS,
        tf.lite.OpsSet.SELECT_TF_OPS,
    ]
    path = tmp_path / "flex.tflite"
    path.write_bytes(converter.convert())
    report = inspect_tflite(path)
    assert report.flex_ops == ["FlexMatrixDeterminant"]
    assert report.op_counts == {"RESHAPE": 2, "FlexMatrixDeterminant": 1}
    result = cnnx("info", path, "--json")
    assert result.returncode == 0, result.stderr
    details = json.loads(result.stdout)["details"]
    assert details["flex ops (need TF select ops)"] == ["FlexMatrixDeterminant"]
    assert "RESHAPE x2" in details["ops"]
    # A converter that was allowed SELECT_TF_OPS still makes no artifact of it.
    with pytest.raises(ExportError, match=r"no builtin kernel for: FlexMatrixDeterminant \("):
        convert(converter, "float32")


def test_int16x8_has_float_io_int16_activations_agrees(conv_model: Path, tmp_path: Path) -> None:
    from exporters.savedmodel import load_pivot
    from exporters.savedmodel import predict as savedmodel_predict
    from exporters.tflite_int16x8 import export_tflite_int16x8

    images = random_pictures(40, SIZE)
    check = random_pictures(30, SIZE, seed=5)
    options = ExportOptions(calibration=images, check_images=check, check_labels=np.arange(30) % 4)
    result = export_tflite_int16x8(conv_model, tmp_path, options)
    assert result.path == "tflite/model_int16x8.tflite"
    report = inspect_tflite(tmp_path / result.path)
    assert report.inputs[0]["dtype"] == "float32" and report.outputs[0]["dtype"] == "float32"
    assert report.activation_dtypes.get("int16", 0) > 0 and not report.float_ops
    assert "int8" in report.weight_dtypes and "float32" not in report.weight_dtypes
    got = predict_tflite((tmp_path / result.path).read_bytes(), check)
    reference = savedmodel_predict(load_pivot(conv_model), check)
    assert np.max(np.abs(got - reference)) < 0.01  # far finer than int8's 1/256 steps
    # Calibration honesty: the same recipe from half the images, measured on held-out ones.
    halves = result.details["calibration_check"]
    assert halves["full"]["calibration_images"] == 40
    assert halves["half"]["calibration_images"] == 20
    assert halves["images"] == 30 and "calibration images" in halves["verdict"]
    with pytest.raises(DataError, match="calibration images"):
        export_tflite_int16x8(conv_model, tmp_path / "none", ExportOptions())
