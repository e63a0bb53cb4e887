"""Every model source becomes the SavedModel pivot with the fixed serving signature.

Sources: a cnnx run folder, a Keras 3 `.keras` archive, an `.h5` file (Keras 3, or
Keras 2 through tf_keras), a SavedModel folder (Keras 2 or plain TF, used through its
serving signature). The pivot's signature is always `serving_default`, input `image`
float32 [None, H, W, C], output `probabilities` float32 [None, K].

User code is never executed without `unsafe=True`: Lambda layers are looked for in the
stored configuration *before* anything is deserialized.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.atomic import staged_dir
from toolkit.errors import CnnxError, DataError, ModelError, PathError, UsageError
from toolkit.inputspec import InputSpec
from toolkit.locate import RUN_FILE, last_run
from toolkit.manifest import sha256_file

if TYPE_CHECKING:
    import tensorflow as tf

SIGNATURE = "serving_default"
INPUT_KEY = "image"
OUTPUT_KEY = "probabilities"
PIVOT_DIR = "saved_model"
FORMATS = ("run", "keras", "h5", "savedmodel")

# Layers whose configuration carries Python code that deserializing would run.
_CODE_LAYERS = {"Lambda", "TFOpLambda", "SlicingOpLambda"}
# Graph ops that call back into Python or touch the file system when a model runs.
_UNSAFE_OPS = {"PyFunc", "PyFuncStateless", "EagerPyFunc", "ReadFile", "WriteFile"}


@dataclass(frozen=True)
class Preprocessing:
    """How raw 0..255 pixels become the model's input: x*scale+offset or (x-mean)/std."""

    scale: float = 1.0
    offset: float = 0.0
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def input_spec(self, shape: tuple[int, int, int], **notes: Any) -> InputSpec:
        h, w, c = shape
        mean, std = self.mean, self.std
        # One value given for an RGB model means the same for every channel.
        if mean is not None and len(mean) == 1:
            mean = mean * c
        if std is not None and len(std) == 1:
            std = std * c
        for name, values in (("--mean", mean), ("--std", std)):
            if values is not None and len(values) != c:
                raise UsageError(f"{name} has {len(values)} values but the model has {c} channels")
        return InputSpec(
            height=h,
            width=w,
            channels=c,
            color="GRAY" if c == 1 else "RGB",
            scale=self.scale,
            offset=self.offset,
            mean=mean,
            std=std,
            notes=dict(notes),
        )


@dataclass(frozen=True)
class Source:
    """A model ready for export: the pivot, its preprocessing and labels, where it came from."""

    saved_model_dir: Path
    input_spec: InputSpec
    labels: list[str]
    eval_data: dict[str, Any] | None  # DataSpec dict whose test split evaluates the model
    origin: dict[str, Any] = field(default_factory=dict)  # path, format, sha256


def detect_format(path: Path) -> str:
    """run | keras | h5 | savedmodel, from what is on disk (not trusting names alone)."""
    path = Path(path)
    if not path.exists():
        raise PathError(f"model path {path} does not exist", "check the path or train one first")
    if path.is_dir():
        if (path / RUN_FILE).is_file():
            return "run"
        if (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file():
            return "savedmodel"
        raise ModelError(
            f"{path} is a folder but neither a SavedModel (no saved_model.pb) nor a cnnx run "
            f"(no {RUN_FILE})",
            "name a run folder, a .keras/.h5 file or a SavedModel folder",
        )
    suffix = path.suffix.lower()
    if suffix == ".keras":
        return "keras"
    if suffix in (".h5", ".hdf5"):
        return "h5"
    raise ModelError(
        f"{path} has an unsupported model format ({suffix or 'no extension'})",
        "give a run folder, a .keras or .h5 file, or a SavedModel folder",
    )


def resolve_source(
    model: Path | None,
    *,
    out_dir: Path,
    preprocessing: Preprocessing | None = None,
    labels_file: Path | None = None,
    unsafe: bool = False,
) -> Source:
    """Turn `model` (default: the last run under ./runs) into the pivot SavedModel.

    A run folder's own saved_model/ is returned as is; any other source is written to
    out_dir/saved_model (atomically) and that folder is returned.
    """
    path = Path(model) if model is not None else last_run()
    kind = detect_format(path)
    if kind == "run":
        if preprocessing is not None and preprocessing != Preprocessing():
            raise UsageError(
                f"{path} is a cnnx run: its preprocessing is on record in {RUN_FILE}",
                "drop --scale/--offset/--mean/--std",
            )
        return _run_source(path, labels_file)
    prep = preprocessing or Preprocessing()
    target = Path(out_dir) / PIVOT_DIR
    if kind == "savedmodel":
        shape, classes = _pivot_from_savedmodel(path, target, unsafe=unsafe)
    else:
        keras_model = load_keras_model(path, kind, unsafe=unsafe)
        shape, classes = check_classifier(keras_model, path)
        with staged_dir(target) as tmp:
            save_pivot(keras_model, tmp)
    labels = read_labels(labels_file, classes) if labels_file else default_labels(classes)
    return Source(
        saved_model_dir=target,
        input_spec=prep.input_spec(shape, source_format=kind),
        labels=labels,
        eval_data=None,
        origin=_origin(path, kind),
    )


# --- runs -----------------------------------------------------------------------------


def read_run(run_dir: Path) -> dict[str, Any]:
    """run.json of a run folder, or a one-line error saying what is wrong with it."""
    path = Path(run_dir) / RUN_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PathError(f"{run_dir} is not a cnnx run (no {RUN_FILE})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(data, dict) or "input" not in data:
        raise ModelError(f"{path} is not a cnnx run record (no 'input' entry)")
    return data


def _run_source(run_dir: Path, labels_file: Path | None) -> Source:
    record = read_run(run_dir)
    pivot = run_dir / PIVOT_DIR
    if not (pivot / "saved_model.pb").is_file():
        raise ModelError(f"run {run_dir} has no {PIVOT_DIR}/saved_model.pb", "train it again")
    try:
        spec = InputSpec.from_dict(record["input"])
    except CnnxError as error:
        raise ModelError(f"{run_dir / RUN_FILE}: {error.message}") from None
    labels = [str(x) for x in record.get("labels") or []]
    if labels_file is not None:
        labels = read_labels(labels_file, len(labels) or None)
    elif not labels and (run_dir / "labels.txt").is_file():
        labels = read_labels(run_dir / "labels.txt", None)
    keras_file = run_dir / "model.keras"
    return Source(
        saved_model_dir=pivot,
        input_spec=spec,
        labels=labels,
        eval_data=record.get("data"),
        origin={
            "path": str(run_dir.resolve()),
            "format": "run",
            "sha256": sha256_file(keras_file) if keras_file.is_file() else None,
        },
    )


# --- labels ---------------------------------------------------------------------------


def default_labels(count: int) -> list[str]:
    return [f"class_{i}" for i in range(count)]


def read_labels(path: Path, expected: int | None) -> list[str]:
    """One class name per line, in the model's output order."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PathError(f"labels file {path} does not exist") from None
    except (UnicodeDecodeError, IsADirectoryError) as error:
        raise DataError(f"labels file {path} is not UTF-8 text: {error}") from None
    labels = [line.strip() for line in text.splitlines() if line.strip()]
    if expected is not None and len(labels) != expected:
        raise DataError(
            f"labels file {path} has {len(labels)} names but the model has {expected} classes"
        )
    return labels


# --- Keras files ----------------------------------------------------------------------


def _walk_class_names(config: Any) -> Iterator[str]:
    if isinstance(config, dict):
        name = config.get("class_name")
        if isinstance(name, str):
            yield name
        for value in config.values():
            yield from _walk_class_names(value)
    elif isinstance(config, list):
        for value in config:
            yield from _walk_class_names(value)


def _refuse_code(config: Any, path: Path, unsafe: bool) -> None:
    found = sorted(set(_walk_class_names(config)) & _CODE_LAYERS)
    if found and not unsafe:
        raise ModelError(
            f"{path} holds {', '.join(found)} layers (embedded Python code that loading would run)",
            "pass --unsafe only if you trust where the file came from",
        )


def load_keras_model(path: Path, kind: str, *, unsafe: bool = False) -> Any:
    """A `.keras` or `.h5` file as a Keras model (Keras 3, or tf_keras for Keras 2 files)."""
    from toolkit.quiet import silence_tensorflow

    silence_tensorflow()
    if kind == "keras":
        return _load_dot_keras(path, unsafe)
    return _load_h5(path, unsafe)


def _load_dot_keras(path: Path, unsafe: bool) -> Any:
    if not zipfile.is_zipfile(path):
        raise ModelError(
            f"{path} is not a Keras 3 archive (not a zip file; truncated or another format)"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (KeyError, zipfile.BadZipFile, json.JSONDecodeError, OSError) as error:
        raise ModelError(f"{path} is not a readable Keras 3 archive: {error}") from None
    _refuse_code(config, path, unsafe)
    import keras

    try:
        return keras.saving.load_model(path, compile=False, safe_mode=not unsafe)
    except Exception as error:  # Keras raises many types for a damaged or foreign file
        raise ModelError(f"cannot load {path} with Keras: {_first_line(error)}") from None


def _load_h5(path: Path, unsafe: bool) -> Any:
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            raw = handle.attrs.get("model_config")
            keras_version = handle.attrs.get("keras_version")
    except OSError as error:
        raise ModelError(f"{path} is not a readable HDF5 file (truncated?): {error}") from None
    if raw is None:
        raise ModelError(
            f"{path} holds no model configuration (weights only?)",
            "save the whole model, not only its weights",
        )
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    if isinstance(keras_version, bytes):
        keras_version = keras_version.decode("utf-8")
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ModelError(f"{path}: its model configuration is not JSON: {error}") from None
    _refuse_code(config, path, unsafe)
    errors: list[str] = []
    # Keras 2 files go to tf_keras first: Keras 3 reads many of them subtly wrong or not at all.
    loaders = (
        ["tf_keras", "keras"]
        if str(keras_version or "").startswith("2.")
        else ["keras", "tf_keras"]
    )
    for loader in loaders:
        try:
            if loader == "keras":
                import keras

                return keras.saving.load_model(path, compile=False, safe_mode=not unsafe)
            import tf_keras

            return tf_keras.models.load_model(path, compile=False, safe_mode=not unsafe)
        except Exception as error:  # try the other Keras before giving up
            errors.append(f"{loader}: {_first_line(error)}")
    raise ModelError(f"cannot load {path}: {'; '.join(errors)}")


def check_classifier(model: Any, path: Path) -> tuple[tuple[int, int, int], int]:
    """(H, W, C) and class count of a Keras image classifier, or why it is not one."""
    inputs, outputs = list(model.inputs), list(model.outputs)
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelError(
            f"{path} has {len(inputs)} inputs and {len(outputs)} outputs",
            "cnnx exports image classifiers with one image input and one output",
        )
    return _image_shape(tuple(inputs[0].shape), path), _class_count(tuple(outputs[0].shape), path)


def _image_shape(shape: tuple[Any, ...], path: Path) -> tuple[int, int, int]:
    if len(shape) != 4:
        raise ModelError(
            f"{path} takes input of shape {_fmt(shape)} (rank {len(shape)}), not an image batch",
            "cnnx needs an NHWC image input [batch, height, width, channels]",
        )
    _, h, w, c = shape
    if h is None or w is None or c is None or min(h, w, c) < 1:
        raise ModelError(
            f"{path} has a dynamic input size {_fmt(shape)}",
            "give the model a fixed height, width and channel count",
        )
    if c not in (1, 3):
        raise ModelError(f"{path} takes {c} channels; cnnx handles 1 (grayscale) or 3 (RGB)")
    return (int(h), int(w), int(c))


def _class_count(shape: tuple[Any, ...], path: Path) -> int:
    if len(shape) != 2 or shape[1] is None or shape[1] < 2:
        raise ModelError(
            f"{path} outputs shape {_fmt(shape)}", "cnnx needs class scores [batch, classes]"
        )
    return int(shape[1])


def _fmt(shape: tuple[Any, ...]) -> str:
    return "[" + ", ".join("None" if d is None else str(d) for d in shape) + "]"


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:200]


# --- the pivot ------------------------------------------------------------------------


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


def _check_savedmodel_safety(path: Path, unsafe: bool) -> None:
    metadata = path / "keras_metadata.pb"
    if metadata.is_file() and not unsafe:
        blob = metadata.read_bytes()
        for name in sorted(_CODE_LAYERS):
            if f'"class_name": "{name}"'.encode() in blob:
                raise ModelError(
                    f"{path} holds {name} layers (embedded Python code)",
                    "pass --unsafe only if you trust where the model came from",
                )
    if unsafe:
        return
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    try:
        proto.ParseFromString((path / "saved_model.pb").read_bytes())
    except Exception as error:  # protobuf raises DecodeError and friends
        raise ModelError(
            f"{path}/saved_model.pb is not a SavedModel: {_first_line(error)}"
        ) from None
    for graph in proto.meta_graphs:
        ops = {node.op for node in graph.graph_def.node}
        for function in graph.graph_def.library.function:
            ops.update(node.op for node in function.node_def)
        bad = sorted(ops & _UNSAFE_OPS)
        if bad:
            raise ModelError(
                f"{path} runs {', '.join(bad)} ops (Python callbacks or file access)",
                "pass --unsafe only if you trust where the model came from",
            )


def _pivot_from_savedmodel(
    path: Path, target: Path, *, unsafe: bool
) -> tuple[tuple[int, int, int], int]:
    from toolkit.quiet import silence_tensorflow

    silence_tensorflow()
    _check_savedmodel_safety(path, unsafe)
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as error:  # TF raises many types for a damaged SavedModel
        raise ModelError(f"cannot load SavedModel {path}: {_first_line(error)}") from None
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
    if len(kwargs) != 1 or not isinstance(outputs, dict) or len(outputs) != 1:
        raise ModelError(
            f"SavedModel {path} signature {name!r} has {len(kwargs)} inputs and "
            f"{len(outputs) if isinstance(outputs, dict) else '?'} outputs",
            "cnnx exports image classifiers with one image input and one output",
        )
    (in_key, in_spec), (out_key, out_spec) = next(iter(kwargs.items())), next(iter(outputs.items()))
    shape = _image_shape(
        tuple(in_spec.shape.as_list()) if in_spec.shape.rank is not None else (), path
    )
    classes = _class_count(tuple(out_spec.shape.as_list()), path)
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


def _origin(path: Path, kind: str) -> dict[str, Any]:
    return {
        "path": str(Path(path).resolve()),
        "format": kind,
        "sha256": sha256_file(path) if Path(path).is_file() else None,
    }
