"""The pivot SavedModel: its fixed signature, the classifier checks, and writing it.

The pivot's signature is always `serving_default`, input `image` float32
[None, H, W, C], output `probabilities` float32 [None, K].
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.core.atomic import staged_dir
from toolkit.errors import ModelError, first_line
from toolkit.sources.heads import pick_signature_output
from toolkit.sources.safety import check_savedmodel_safety

if TYPE_CHECKING:
    import tensorflow as tf

SIGNATURE = "serving_default"
INPUT_KEY = "image"
OUTPUT_KEY = "probabilities"
PIVOT_DIR = "saved_model"


def check_classifier(model: Any, path: Path) -> tuple[tuple[int, int, int], int]:
    """(H, W, C) and class count of a Keras image classifier, or why it is not one."""
    inputs, outputs = list(model.inputs), list(model.outputs)
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelError(
            f"{path} has {len(inputs)} inputs and {len(outputs)} outputs",
            "cnnx exports image classifiers with one image input and one output",
        )
    return image_shape(tuple(inputs[0].shape), path), class_count(tuple(outputs[0].shape), path)


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
    return (int(h), int(w), int(c))


def class_count(shape: tuple[Any, ...], path: Path) -> int:
    if len(shape) != 2 or shape[1] is None or shape[1] < 2:
        raise ModelError(
            f"{path} outputs shape {format_shape(shape)}",
            "cnnx needs class scores [batch, classes]",
        )
    return int(shape[1])


def format_shape(shape: tuple[Any, ...]) -> str:
    return "[" + ", ".join("None" if d is None else str(d) for d in shape) + "]"


def save_pivot(model: Any, out_dir: Path) -> None:
    """Write a Keras model (Keras 3 or tf_keras) as the pivot SavedModel in out_dir."""
    import tensorflow as tf

    shape = tuple(model.inputs[0].shape)
    spec = tf.TensorSpec([None, *shape[1:]], tf.float32, name=INPUT_KEY)
    input_dtype = tf.as_dtype(getattr(model.inputs[0], "dtype", None) or "float32")

    def serve(image: tf.Tensor) -> dict[str, tf.Tensor]:
        result = model(tf.cast(image, input_dtype), training=False)
        return {OUTPUT_KEY: tf.cast(result, tf.float32)}

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
) -> tuple[tuple[int, int, int], int]:
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
    classes = class_count(tuple(out_spec.shape.as_list()), path)
    pivot_spec = tf.TensorSpec([None, *shape], tf.float32, name=INPUT_KEY)

    module = tf.Module()
    module.source = loaded  # keeps the variables tracked, so they are saved again

    def serve(image: tf.Tensor) -> dict[str, tf.Tensor]:
        result = function(**{in_key: tf.cast(image, in_spec.dtype)})[out_key]
        return {OUTPUT_KEY: tf.cast(result, tf.float32)}

    module.serve = tf.function(serve, input_signature=[pivot_spec])
    with staged_dir(target) as tmp:
        tf.saved_model.save(module, str(tmp), signatures={SIGNATURE: module.serve})
    return shape, classes
