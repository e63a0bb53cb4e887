"""TF.js graph models from the pivot SavedModel, optionally with quantized weights.

Converted through the converter's Python API (no shell). Quantization here shrinks the
weight shards only (uint8/uint16 affine per tensor, or float16); TF.js dequantizes them
at load time, so activations stay float32 in every backend.
"""

from __future__ import annotations

import base64
import functools
import importlib
import importlib.metadata
import json
import os
import shutil
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

from exporters.base import INPUT_NAME, OUTPUT_NAME, SIGNATURE, ExportOptions, ExportResult
from exporters.quiet import quietly, silenced
from exporters.savedmodel import load_pivot
from exporters.tfjs_unfuse import unfuse_model_json
from toolkit.core.limits import read_json
from toolkit.errors import ExportError, RuntimeUnavailable, shorten


def artifact_folder(quantization: str) -> str:
    return f"tfjs/{quantization}"


def artifact_path(quantization: str) -> str:
    return f"{artifact_folder(quantization)}/model.json"


def export_tfjs_float32(
    saved_model_dir: Path, out_dir: Path, options: ExportOptions
) -> ExportResult:
    return _export(saved_model_dir, out_dir, "float32")


def export_tfjs_uint8(saved_model_dir: Path, out_dir: Path, options: ExportOptions) -> ExportResult:
    return _export(saved_model_dir, out_dir, "uint8")


def export_tfjs_uint16(
    saved_model_dir: Path, out_dir: Path, options: ExportOptions
) -> ExportResult:
    return _export(saved_model_dir, out_dir, "uint16")


def export_tfjs_float16(
    saved_model_dir: Path, out_dir: Path, options: ExportOptions
) -> ExportResult:
    return _export(saved_model_dir, out_dir, "float16")


DECISION_FORESTS = "tensorflow_decision_forests"
# The TensorFlow the newest TF Decision Forests (a dependency of tensorflowjs) pins.
TFDF_TENSORFLOW = "2.19.0"


def install_command(tensorflow_version: str | None = None) -> str:
    """What installs the converter beside this TensorFlow without changing it."""
    if tensorflow_version is None:
        try:
            tensorflow_version = importlib.metadata.version("tensorflow")
        except importlib.metadata.PackageNotFoundError:
            tensorflow_version = TFDF_TENSORFLOW
    if tensorflow_version == TFDF_TENSORFLOW:
        return "pip install 'cnnx[tfjs]'"
    # Its dependencies would pull TF Decision Forests and with it TensorFlow 2.19.0; the
    # converter imports these, and tf_keras must be the release of this TensorFlow.
    minor = ".".join(tensorflow_version.split(".")[:2])
    return (
        "pip install --no-deps 'tensorflowjs==4.22.0' && pip install tensorflow-hub jax "
        f"importlib_resources 'tf_keras~={minor}.0' (docs/dependencies.md)"
    )


def load_converter() -> Any:
    """tensorflowjs' SavedModel converter, imported without TF Decision Forests if need be.

    The converter module imports tensorflow_decision_forests only so that SavedModels
    holding decision-forest ops load; the pivot never holds them. TFDF builds for one
    TensorFlow (1.12: exactly 2.19.0) and its ydf needs a matching protobuf, so beside
    any other TensorFlow (or when absent) its import fails and would take the converter
    with it. Then an empty module stands in for it during the import, and the converter
    runs on the installed TensorFlow (docs/dependencies.md: tested up to 2.21).
    """
    # Importing TFDF prints a banner (and under pytest tries to render it with IPython).
    os.environ.setdefault("TFDF_DISABLE_WELCOME_MESSAGE", "1")
    with silenced():
        if not _decision_forests_imports():
            _stand_in_for_decision_forests()
        try:
            from tensorflowjs.converters import tf_saved_model_conversion_v2
        except ImportError as error:
            problem: ImportError | None = error
        else:
            problem = None
    if problem is not None:
        raise RuntimeUnavailable(
            f"the TF.js converter (tensorflowjs) cannot be imported: {shorten(str(problem))}",
            f"install it: {install_command()}",
        )
    return tf_saved_model_conversion_v2


def decision_forests_stood_in() -> bool:
    """Whether load_converter put the stand-in in place of TF Decision Forests."""
    return bool(getattr(sys.modules.get(DECISION_FORESTS), "cnnx_stand_in", False))


def _decision_forests_imports() -> bool:
    if DECISION_FORESTS in sys.modules:
        return True
    try:
        importlib.import_module(DECISION_FORESTS)
    except Exception:  # ImportError, or TF's NotFoundError from its op library
        for name in [n for n in sys.modules if n.split(".")[0] == DECISION_FORESTS]:
            del sys.modules[name]  # a half-imported package must not be found later
        return False
    return True


def _stand_in_for_decision_forests() -> None:
    stand_in = types.ModuleType(DECISION_FORESTS, "cnnx: TF Decision Forests not importable")
    stand_in.cnnx_stand_in = True  # type: ignore[attr-defined]
    sys.modules[DECISION_FORESTS] = stand_in


def _export(saved_model_dir: Path, out_dir: Path, quantization: str) -> ExportResult:
    pivot = load_pivot(saved_model_dir)  # checks the signature before converting
    folder = Path(out_dir) / artifact_folder(quantization)
    if folder.exists():
        shutil.rmtree(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    model_json, weights = _float32_graph_model(pivot.path)
    _write_graph_model(folder, model_json, weights, quantization)
    flattened = flatten_fused_biases(folder / "model.json")
    unfused = unfuse_model_json(folder / "model.json")
    inputs, outputs = _signature(folder / "model.json", pivot.input_shape, pivot.num_classes)
    relative = artifact_folder(quantization)
    shards = sorted(p.relative_to(out_dir).as_posix() for p in folder.iterdir() if p.is_file())
    return ExportResult(
        artifact_id=f"tfjs_{quantization}",
        path=relative,
        inputs=inputs,
        outputs=outputs,
        details={
            "model_json": artifact_path(quantization),
            "format": "graph-model",
            "weight_quantization": None if quantization == "float32" else quantization,
            # What a JS caller passes to model.execute / reads back.
            "input_node": inputs[0]["node"],
            "output_node": outputs[0]["node"],
            **({"rank1_biases": len(flattened)} if flattened else {}),
            **({"unfused_tensor_biases": len(unfused)} if unfused else {}),
        },
        extra_paths=tuple(shards),
    )


def _float32_graph_model(
    saved_model_dir: Path,
) -> tuple[dict[str, Any], list[list[dict[str, Any]]]]:
    """The pivot as a float32 graph model: model.json without its weights manifest, and
    the weight groups. TF.js quantization only re-encodes the weights (the converter
    quantizes the same groups when it writes them), so every precision is written from
    this one conversion: the graph and shards of four conversions, one graph optimization."""
    path = Path(saved_model_dir).resolve()
    return _converted(str(path), (path / "saved_model.pb").stat().st_mtime_ns)


@functools.lru_cache(maxsize=2)
def _converted(path: str, _mtime: int) -> tuple[dict[str, Any], list[list[dict[str, Any]]]]:
    converter = load_converter()
    from tensorflowjs import read_weights

    with tempfile.TemporaryDirectory(prefix="cnnx-tfjs-") as scratch:
        quietly(
            "TF.js conversion",
            lambda: converter.convert_tf_saved_model(
                path, scratch, signature_def=SIGNATURE, saved_model_tags="serve"
            ),
            300,
        )
        model_json = json.loads((Path(scratch) / "model.json").read_text())  # the converter's
        weights = read_weights.read_weights(model_json.pop("weightsManifest"), scratch)
    return model_json, weights


def _write_graph_model(
    folder: Path, model_json: dict[str, Any], weights: list[list[dict[str, Any]]], dtype: str
) -> None:
    """Write model.json and its shards as the converter does, weights in `dtype`."""
    from tensorflowjs import write_weights

    folder.mkdir(parents=True)
    copies = [[dict(entry) for entry in group] for group in weights]  # the writer edits entries
    manifest = write_weights.write_weights(
        copies,
        str(folder),
        write_manifest=False,
        quantization_dtype_map=None if dtype == "float32" else {dtype: True},
    )
    (folder / "model.json").write_text(json.dumps({**model_json, "weightsManifest": manifest}))


# Fused ops whose third input is a bias when their first fused op is BiasAdd; the wasm
# backend refuses any bias of them that is not rank 1.
FUSED_WITH_BIAS = ("_FusedConv2D", "FusedDepthwiseConv2dNative", "_FusedMatMul")


def flatten_fused_biases(model_json: Path) -> list[str]:
    """Rewrite the biases of fused ops shaped [1, ..., 1, C] to [C]; return their names.

    The converter turns an AddV2 right after a convolution into a BiasAdd without looking
    at the added tensor's shape, and grappler then fuses it: a BatchNorm on `axis=3` (as
    EfficientNet and ResNet write it) leaves a [1, 1, 1, C] bias in a _FusedConv2D. TF.js'
    cpu and webgl backends broadcast it; wasm refuses the model ("FusedConv2D only
    supports rank-1 bias"). Both shapes hold the same C values in the same order, so only
    the shape in model.json changes (the weight node and weightsManifest), never a shard.
    """
    data = read_json(model_json, "TF.js converter output", ExportError)
    nodes = data.get("modelTopology", {}).get("node", [])
    biases: set[str] = set()
    other_uses: set[str] = set()
    for node in nodes:
        names = [str(name).lstrip("^").split(":")[0] for name in node.get("input", [])]
        fused = node.get("attr", {}).get("fused_ops", {}).get("list", {}).get("s", [])
        first = base64.b64decode(fused[0]).decode() if fused else ""
        if node.get("op") in FUSED_WITH_BIAS and first == "BiasAdd" and len(names) > 2:
            biases.add(names[2])
            other_uses.update(names[:2] + names[3:])
        else:
            other_uses.update(names)
    flat = {name for name in biases - other_uses if name}
    changed = []
    for group in data.get("weightsManifest", []):
        for weight in group.get("weights", []):
            shape = weight.get("shape", [])
            if weight.get("name") in flat and len(shape) > 1 and all(d == 1 for d in shape[:-1]):
                weight["shape"] = shape[-1:]
                changed.append(weight["name"])
    for node in nodes:
        shape = node.get("attr", {}).get("value", {}).get("tensor", {}).get("tensorShape", {})
        if node.get("name") in changed and shape.get("dim"):
            shape["dim"] = shape["dim"][-1:]  # the weight node, kept in step with the manifest
    if changed:
        model_json.write_text(json.dumps(data))
    return sorted(changed)


def _signature(
    model_json: Path, input_shape: tuple[int, int, int], num_classes: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Read model.json back and check it takes `image` and gives `probabilities`."""
    data = read_json(model_json, "TF.js converter output", ExportError)
    try:
        signature = data["signature"]
        inputs, outputs = signature["inputs"], signature["outputs"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ExportError(f"TF.js converter wrote an unreadable {model_json}: {error!r}") from None
    if set(inputs) != {INPUT_NAME} or set(outputs) != {OUTPUT_NAME}:
        raise ExportError(
            f"TF.js model {model_json} takes {sorted(inputs)} and gives {sorted(outputs)}",
            f"expected {INPUT_NAME!r} -> {OUTPUT_NAME!r}",
        )
    height, width, channels = input_shape

    def info(entry: dict[str, Any], name: str, shape: list[int]) -> dict[str, Any]:
        dims = [int(d.get("size", -1)) for d in entry.get("tensorShape", {}).get("dim", [])]
        if dims[1:] != shape[1:]:
            raise ExportError(f"TF.js model {name} has shape {dims}, expected {shape}")
        return {
            "name": name,
            "node": str(entry["name"]),
            "shape": dims,
            "dtype": "float32" if entry.get("dtype") == "DT_FLOAT" else str(entry.get("dtype")),
            "quantization": None,
        }

    return (
        [info(inputs[INPUT_NAME], INPUT_NAME, [-1, height, width, channels])],
        [info(outputs[OUTPUT_NAME], OUTPUT_NAME, [-1, num_classes])],
    )
