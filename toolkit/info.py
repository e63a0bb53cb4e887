"""`cnnx info`: what a model or artifact is, without running it on data.

`describe(path)` detects the kind of thing at `path` and hands it to the describer
registered for that kind in DESCRIBERS; each returns an Info. Adding a kind (or a richer
description of one) is one function and one table entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.core.limits import require_regular_file
from toolkit.core.locate import RUN_FILE
from toolkit.errors import ArtifactError, ModelError, PathError, shorten


@dataclass(frozen=True)
class Info:
    path: str
    kind: str  # run | artifacts | keras | h5 | savedmodel | tflite | tfjs
    format: str  # a human name of the format
    size: int  # bytes on disk (a folder: every file below it)
    inputs: list[dict[str, Any]] = field(default_factory=list)  # name, shape, dtype[, quant]
    outputs: list[dict[str, Any]] = field(default_factory=list)
    params: int | None = None
    preprocessing: dict[str, Any] | None = None  # the InputSpec on record, if any
    labels: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "format": self.format,
            "size": self.size,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "params": self.params,
            "preprocessing": self.preprocessing,
            "labels": self.labels,
            "details": self.details,
        }


Describer = Callable[[Path, bool], Info]


def detect_kind(path: Path) -> str:
    if not path.exists():
        raise PathError(f"{path} does not exist", "name a model file, run or artifacts folder")
    if path.is_dir():
        if (path / RUN_FILE).is_file():
            return "run"
        if (path / "manifest.json").is_file():
            return "artifacts"
        if (path / "saved_model.pb").is_file():
            return "savedmodel"
        if (path / "model.json").is_file():
            return "tfjs"
        raise ModelError(
            f"{path} is a folder but not a run, an artifacts folder, a SavedModel or a TF.js model"
        )
    require_regular_file(path, "model file")  # a FIFO would block the reader forever
    suffix = path.suffix.lower()
    kinds = {".keras": "keras", ".h5": "h5", ".hdf5": "h5", ".tflite": "tflite"}
    if suffix in kinds:
        return kinds[suffix]
    if path.name == "model.json":
        return "tfjs"
    if path.name == "manifest.json":
        return "artifacts"
    raise ModelError(
        f"{path}: unknown model format ({suffix or 'no extension'})",
        "cnnx info reads .keras, .h5, .tflite, model.json and SavedModel/run/artifacts folders",
    )


def describe(path: Path, *, unsafe: bool = False) -> Info:
    """Describe whatever is at `path` (model file, SavedModel, run, artifacts, TF.js)."""
    path = Path(path)
    kind = detect_kind(path)
    return DESCRIBERS[kind](path, unsafe)


def disk_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _tensor(name: str, shape: Any, dtype: Any) -> dict[str, Any]:
    dims = [-1 if d is None else int(d) for d in shape]
    return {"name": name, "shape": dims, "dtype": str(getattr(dtype, "name", dtype))}


# --- describers -----------------------------------------------------------------------


def _describe_keras(path: Path, unsafe: bool) -> Info:
    from toolkit.sources.keras_files import load_keras_model
    from toolkit.sources.preprocessing import scaling_layers

    kind = "keras" if path.suffix.lower() == ".keras" else "h5"
    model = load_keras_model(path, kind, unsafe=unsafe)
    module = type(model).__module__.split(".")[0]
    found = scaling_layers(model)
    return Info(
        path=str(path),
        kind=kind,
        format=f"Keras model ({'Keras 2 via tf_keras' if module == 'tf_keras' else 'Keras 3'})",
        size=disk_size(path),
        inputs=[_tensor(t.name, t.shape, t.dtype) for t in model.inputs],
        outputs=[_tensor(t.name, t.shape, t.dtype) for t in model.outputs],
        params=int(model.count_params()),
        details={
            "name": model.name,
            "layers": len(model.layers),
            "preprocessing in the model": ", ".join(found)
            or "none found (cnnx export feeds raw 0..255 pixels unless told: --preprocess)",
            "output": _head(model),
        },
    )


def _head(model: Any) -> str:
    """probabilities, scores, logits or one binary unit, from the model's answers to a few
    generated pictures."""
    from toolkit.data.generated import generated_pixels
    from toolkit.sources.heads import keras_unit_kind, measured_unit_kind, output_kind

    shape = tuple(model.inputs[0].shape)
    if len(model.inputs) != 1 or len(model.outputs) != 1 or len(shape) != 4 or None in shape[1:]:
        return "not one image input and one output (cnnx export --output picks a head)"
    height, width, channels = (int(d) for d in shape[1:])
    pictures = generated_pixels(height, width, channels, count=4).astype("float32")
    outputs = model.predict(pictures, verbose=0)
    if outputs.ndim == 2 and outputs.shape[1] == 1:
        kind = keras_unit_kind(model) or measured_unit_kind(outputs, has_sigmoid=True)
        return f"one {kind} unit: a binary classifier (cnnx export makes it two classes)"
    return output_kind(outputs)


def _signature_tensors(function: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    _, kwargs = function.structured_input_signature
    inputs = [_tensor(k, v.shape.as_list(), v.dtype) for k, v in kwargs.items()]
    outputs_spec = function.structured_outputs
    if not isinstance(outputs_spec, dict):
        outputs_spec = {"output_0": outputs_spec}
    outputs = [_tensor(k, v.shape.as_list(), v.dtype) for k, v in outputs_spec.items()]
    return inputs, outputs


def _describe_savedmodel(path: Path, unsafe: bool) -> Info:
    from toolkit.core.quiet import silence_tensorflow

    silence_tensorflow()
    from toolkit.sources.pivot import SIGNATURE
    from toolkit.sources.safety import check_savedmodel_safety

    check_savedmodel_safety(path, unsafe)
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as error:  # TF raises many types for a damaged SavedModel
        text = shorten(str(error))
        raise ModelError(f"cannot load SavedModel {path}: {text}") from None
    signatures = dict(loaded.signatures)
    if not signatures:
        raise ModelError(f"SavedModel {path} has no signatures")
    main = SIGNATURE if SIGNATURE in signatures else sorted(signatures)[0]
    inputs, outputs = _signature_tensors(signatures[main])
    variables = list(getattr(loaded, "variables", []) or [])
    params = sum(int(v.shape.num_elements() or 0) for v in variables) if variables else None
    return Info(
        path=str(path),
        kind="savedmodel",
        format="TensorFlow SavedModel",
        size=disk_size(path),
        inputs=inputs,
        outputs=outputs,
        params=params,
        details={
            "signature": main,
            "signatures": sorted(signatures),
            "keras_metadata": (path / "keras_metadata.pb").is_file(),
        },
    )


def _describe_run(path: Path, unsafe: bool) -> Info:
    from toolkit.sources import PIVOT_DIR, read_run

    record = read_run(path)
    pivot = _describe_savedmodel(path / PIVOT_DIR, unsafe)
    model = record.get("model") or {}
    return Info(
        path=str(path),
        kind="run",
        format="cnnx run folder",
        size=disk_size(path),
        inputs=pivot.inputs,
        outputs=pivot.outputs,
        params=model.get("params", pivot.params),
        preprocessing=record.get("input"),
        labels=[str(x) for x in record.get("labels") or []],
        details={
            "arch": model.get("arch"),
            "width": model.get("width"),
            "data": record.get("data"),
            "metrics": record.get("metrics"),
            "created": record.get("created"),
            "versions": record.get("versions"),
        },
    )


def _describe_artifacts(path: Path, unsafe: bool) -> Info:
    from exporters.registry import display_rank
    from toolkit.manifest import load_manifest
    from toolkit.measure.gpu_answer import recorded

    manifest = load_manifest(path)
    rows: dict[str, dict[str, Any]] = {}
    for key, entry in sorted(manifest.artifacts.items(), key=lambda kv: display_rank(kv[0])):
        rows[key] = {
            "format": entry.format,
            "precision": entry.precision,
            "runtime": entry.runtime,
            "path": entry.path,
            "size": entry.size,
        }
        gpu = recorded(entry)
        if gpu is not None:  # cnnx export --gpu-answer
            rows[key]["gpu"] = gpu.summary()
    first = next(iter(manifest.artifacts.values()), None)
    return Info(
        path=str(manifest.root),
        kind="artifacts",
        format="cnnx artifacts folder (manifest.json)",
        size=disk_size(manifest.root),
        inputs=list(first.inputs) if first else [],
        outputs=list(first.outputs) if first else [],
        preprocessing=manifest.input.to_dict(),
        labels=list(manifest.labels),
        details={"artifacts": rows, "source": manifest.source, "versions": manifest.versions},
    )


def _describe_tflite(path: Path, unsafe: bool) -> Info:
    """Tensors, ops, dtypes, quantization and Flex ops, read by exporters.tflite_inspect."""
    from exporters.tflite_inspect import inspect_tflite
    from toolkit.measure.gpu_answer import gpu_summary

    report = inspect_tflite(path)
    recorded = _recorded_gpu_answer(path)
    details: dict[str, Any] = {
        "ops": ", ".join(f"{op} x{n}" for op, n in report.op_counts.items()),
        "weight dtypes": report.weight_dtypes,
        "activation dtypes": report.activation_dtypes,
        "fully integer": report.fully_integer,
        "float ops": report.float_ops,
        "flex ops (need TF select ops)": report.flex_ops,
        "custom ops": report.custom_ops,
        "GPU delegate": recorded or gpu_summary(path),
    }
    if not report.loads:
        details["LiteRT alone cannot load it"] = report.load_error
    return Info(
        path=str(path),
        kind="tflite",
        format="TensorFlow Lite flatbuffer",
        size=disk_size(path),
        inputs=report.inputs,
        outputs=report.outputs,
        details=details,
    )


def _recorded_gpu_answer(path: Path) -> str | None:
    """The GPU accelerator's answer `cnnx export --gpu-answer` recorded for this very file
    (the same bytes), from the manifest of the artifacts folder it sits in."""
    from toolkit.errors import CnnxError
    from toolkit.manifest import FILENAME, load_manifest, sha256_file
    from toolkit.measure.gpu_answer import recorded

    here = path.resolve()
    folder = next((p for p in here.parents[:2] if (p / FILENAME).is_file()), None)
    if folder is None:
        return None
    try:
        manifest = load_manifest(folder)
        entry = next(
            (e for e in manifest.artifacts.values() if (folder / e.path).resolve() == here), None
        )
        if entry is None or entry.format != "tflite":
            return None
        answer = recorded(entry)
        hashes = [f["sha256"] for f in entry.files if f["path"] == entry.path]
        if answer is None or hashes != [sha256_file(here)]:
            return None  # none recorded, or the file changed since
    except (CnnxError, OSError):
        return None  # no usable record: the accelerator is asked
    when = entry.details.get("exported", "export")
    return f"{answer.summary()} (recorded at {when})"


def _describe_tfjs(path: Path, unsafe: bool) -> Info:
    from toolkit.graph.tfjs_model import read_tfjs_model

    model = read_tfjs_model(path, unsafe=unsafe)
    try:
        return _tfjs_info(model.path, model.data)
    except (AttributeError, KeyError, TypeError, ValueError, OverflowError) as error:
        raise ArtifactError(f"{model.path} is not a TF.js model.json: {error!r}") from None


def _tfjs_info(model_json: Path, data: dict[str, Any]) -> Info:
    manifest = data.get("weightsManifest") or []
    weights = [w for group in manifest for w in group.get("weights", [])]
    signature = data.get("signature") or data.get("userDefinedMetadata", {}).get("signature") or {}

    def tensors(section: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for key, spec in (section or {}).items():
            dims = [int(d.get("size", -1)) for d in spec.get("tensorShape", {}).get("dim", [])]
            out.append({"name": str(key), "shape": dims, "dtype": str(spec.get("dtype", "?"))})
        return out

    quantized: dict[str, int] = {}
    for w in weights:
        kind = str((w.get("quantization") or {}).get("dtype", w.get("dtype", "float32")))
        quantized[kind] = quantized.get(kind, 0) + 1
    params = 0
    for w in weights:
        count = 1
        for d in w.get("shape", []):
            count *= int(d)
        params += count
    folder = model_json.parent
    return Info(
        path=str(folder),
        kind="tfjs",
        format=f"TensorFlow.js {data.get('format', 'model')}",
        size=disk_size(folder),
        inputs=tensors(signature.get("inputs", {})),
        outputs=tensors(signature.get("outputs", {})),
        params=params,
        details={
            "weight_dtypes": quantized,
            "shards": sum(len(g.get("paths", [])) for g in manifest),
            "converted_by": data.get("convertedBy"),
        },
    )


# The dispatch point: kind -> describer. Replace or add entries to describe more.
DESCRIBERS: dict[str, Describer] = {
    "run": _describe_run,
    "artifacts": _describe_artifacts,
    "keras": _describe_keras,
    "h5": _describe_keras,
    "savedmodel": _describe_savedmodel,
    "tflite": _describe_tflite,
    "tfjs": _describe_tfjs,
}
