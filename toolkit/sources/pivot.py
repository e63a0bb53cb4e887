"""The pivot SavedModel: its fixed signature, the classifier checks, and writing it.

The pivot's signature is always `serving_default`, input `image` float32
[None, H, W, C], output `probabilities` float32 [None, K]. A head of one unit (a sigmoid
or a logit) is given its two columns here, so K >= 2 everywhere after the pivot.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.core.atomic import staged_dir
from toolkit.core.limits import check_input_shape
from toolkit.errors import ModelError, first_line
from toolkit.sources.heads import LOGIT_UNIT, SIGMOID_UNIT, pick_signature_output
from toolkit.sources.safety import check_savedmodel_safety

if TYPE_CHECKING:
    import tensorflow as tf

SIGNATURE = "serving_default"
INPUT_KEY = "image"
OUTPUT_KEY = "probabilities"
PIVOT_DIR = "saved_model"


def check_classifier(model: Any, path: Path) -> tuple[tuple[int, int, int], int]:
    """(H, W, C) and output units of a Keras image classifier, or why it is not one
    (one unit is a binary head: two classes)."""
    inputs, outputs = list(model.inputs), list(model.outputs)
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelError(
            f"{path} has {len(inputs)} inputs and {len(outputs)} outputs",
            "cnnx exports image classifiers with one image input and one output",
        )
    return image_shape(tuple(inputs[0].shape), path), output_units(tuple(outputs[0].shape), path)


def check_built(model: Any, name: Path) -> None:
    """A model object handed over in Python must know its input (a loaded file always does)."""
    try:
        model.inputs  # noqa: B018 - Keras raises AttributeError when there are none
    except AttributeError:
        raise ModelError(
            f"{name} is not built: it has no defined input",
            "start it with keras.Input((H, W, C)), or wrap it: "
            "keras.Sequential([keras.Input((H, W, C)), model])",
        ) from None


def image_shape(shape: tuple[Any, ...], path: Path) -> tuple[int, int, int]:
    if len(shape) != 4:
        raise ModelError(
            f"{path} takes input of shape {format_shape(shape)} (rank {len(shape)}), "
            "not an image batch",
            "cnnx needs an NHWC image input [batch, height, width, channels]",
        )
    _, h, w, c = shape
    if h is None or w is None or c is None or min(h, w, c) < 1:
        raise ModelError(
            f"{path} has a dynamic input size {format_shape(shape)}",
            "give the model a fixed height, width and channel count",
        )
    if c not in (1, 3):
        raise ModelError(f"{path} takes {c} channels; cnnx handles 1 (grayscale) or 3 (RGB)")
    check_input_shape((int(h), int(w), int(c)), str(path))
    return (int(h), int(w), int(c))


def output_units(shape: tuple[Any, ...], path: Path) -> int:
    if len(shape) != 2 or shape[1] is None or shape[1] < 1:
        raise ModelError(
            f"{path} outputs shape {format_shape(shape)}",
            "cnnx needs class scores [batch, classes] or one binary unit [batch, 1]",
        )
    return int(shape[1])


def two_columns(unit: tf.Tensor, kind: str | None) -> tf.Tensor:
    """A one-unit head's [N, 1] output as two class scores [N, 2]: [1 - p, p]. A logit z
    goes through sigmoid([-z, z]), exact on both sides, where 1 - sigmoid(z) would round
    to 0 for a large z. `kind` None: a head of several units, left as it is.

    Written as a [1, 2] matrix product (with a bias for 1 - p): one FULLY_CONNECTED in
    TFLite, which every kernel set runs, int8 included. Negated columns concatenated
    need NEG, which has no int8 kernel; a [N, 1] x [1, 2] broadcast multiply came out
    wrong in LiteRT.js on WebGPU."""
    import tensorflow as tf

    signs = tf.constant([[-1.0, 1.0]])
    if kind == SIGMOID_UNIT:
        return tf.matmul(unit, signs) + tf.constant([1.0, 0.0])
    if kind == LOGIT_UNIT:
        return tf.sigmoid(tf.matmul(unit, signs))
    return unit


def format_shape(shape: tuple[Any, ...]) -> str:
    return "[" + ", ".join("None" if d is None else str(d) for d in shape) + "]"


def save_pivot(model: Any, out_dir: Path, binary: str | None = None) -> None:
    """Write a Keras model (Keras 3 or tf_keras) as the pivot SavedModel in out_dir;
    `binary`: what a one-unit head gives (SIGMOID_UNIT or LOGIT_UNIT), made two columns."""
    import tensorflow as tf

    shape = tuple(model.inputs[0].shape)
    spec = tf.TensorSpec([None, *shape[1:]], tf.float32, name=INPUT_KEY)
    input_dtype = tf.as_dtype(getattr(model.inputs[0], "dtype", None) or "float32")

    def serve(image: tf.Tensor) -> dict[str, tf.Tensor]:
        result = model(tf.cast(image, input_dtype), training=False)
        return {OUTPUT_KEY: two_columns(tf.cast(result, tf.float32), binary)}

    if type(model).__module__.startswith("keras"):
        import keras

        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(name=SIGNATURE, fn=serve, input_signature=[spec])
        archive.write_out(str(out_dir), verbose=False)
        return
    module = tf.Module()
    module.model = model
    module.serve = tf.function(serve, input_signature=[spec])
    tf.saved_model.save(module, str(out_dir), signatures={SIGNATURE: module.serve})


def pivot_from_savedmodel(
    path: Path, target: Path, *, unsafe: bool, output: str | None = None
) -> tuple[tuple[int, int, int], int, str | None]:
    """Write the pivot of a SavedModel's signature: (H, W, C), output units, and what a
    one-unit head gives (None for several units)."""
    from toolkit.core.quiet import silence_tensorflow

    silence_tensorflow()
    check_savedmodel_safety(path, unsafe)
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as error:  # TF raises many types for a damaged SavedModel
        raise ModelError(f"cannot load SavedModel {path}: {first_line(error)}") from None
    signatures = dict(getattr(loaded, "signatures", {}) or {})
    if not signatures:
        raise ModelError(f"SavedModel {path} has no serving signature", "export it with signatures")
    if SIGNATURE in signatures:
        name = SIGNATURE
    elif len(signatures) == 1:
        name = next(iter(signatures))
    else:
        raise ModelError(
            f"SavedModel {path} has several signatures ({', '.join(sorted(signatures))}) "
            f"and no {SIGNATURE!r}"
        )
    function = signatures[name]
    _, kwargs = function.structured_input_signature
    outputs = function.structured_outputs
    if not isinstance(outputs, dict) or not outputs:
        raise ModelError(f"SavedModel {path} signature {name!r} names no outputs")
    if len(kwargs) != 1:
        raise ModelError(
            f"SavedModel {path} signature {name!r} has {len(kwargs)} inputs "
            f"({', '.join(sorted(kwargs))})",
            "cnnx exports image classifiers with one image input",
        )
    out_key = pick_signature_output(outputs, output, f"SavedModel {path} signature {name!r}")
    (in_key, in_spec), out_spec = next(iter(kwargs.items())), outputs[out_key]
    shape = image_shape(
        tuple(in_spec.shape.as_list()) if in_spec.shape.rank is not None else (), path
    )
    units = output_units(tuple(out_spec.shape.as_list()), path)
    pivot_spec = tf.TensorSpec([None, *shape], tf.float32, name=INPUT_KEY)

    def raw(image: tf.Tensor) -> tf.Tensor:
        return tf.cast(function(**{in_key: tf.cast(image, in_spec.dtype)})[out_key], tf.float32)

    binary = _signature_unit_kind(raw, function, shape) if units == 1 else None
    module = tf.Module()
    module.source = loaded  # keeps the variables tracked, so they are saved again

    def serve(image: tf.Tensor) -> dict[str, tf.Tensor]:
        return {OUTPUT_KEY: two_columns(raw(image), binary)}

    module.serve = tf.function(serve, input_signature=[pivot_spec])
    with staged_dir(target) as tmp:
        tf.saved_model.save(module, str(tmp), signatures={SIGNATURE: module.serve})
    return shape, units, binary


def _signature_unit_kind(raw: Any, function: Any, shape: tuple[int, int, int]) -> str:
    """What a SavedModel's one output unit gives: a sigmoid only when its graph computes
    one and its values on generated pictures stay in [0, 1]."""
    import tensorflow as tf

    from toolkit.data.generated import generated_pixels
    from toolkit.sources.heads import measured_unit_kind

    graph = function.graph.as_graph_def()
    ops = {node.op for node in graph.node}
    ops |= {node.op for f in graph.library.function for node in f.node_def}
    pictures = generated_pixels(*shape, count=8).astype("float32")
    return measured_unit_kind(raw(tf.constant(pictures)).numpy(), "Sigmoid" in ops)
