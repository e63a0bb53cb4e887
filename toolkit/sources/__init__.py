"""Every model source becomes the SavedModel pivot with the fixed serving signature.

Sources: a cnnx run folder, a Keras 3 `.keras` archive, an `.h5` file (Keras 3, or
Keras 2 through tf_keras), a SavedModel folder (Keras 2 or plain TF, used through its
serving signature). The pivot's signature is always `serving_default`, input `image`
float32 [None, H, W, C], output `probabilities` float32 [None, K].

User code is never executed without `unsafe=True`: Lambda layers are looked for in the
stored configuration, and SavedModel graphs are checked by the graph-op policy
(toolkit/graph/policy.py), *before* anything is deserialized.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.core.atomic import staged_dir
from toolkit.core.limits import read_json, require_regular_file
from toolkit.core.locate import RUN_FILE, last_run
from toolkit.data.inputspec import InputSpec
from toolkit.errors import CnnxError, ModelError, PathError, UsageError
from toolkit.manifest import sha256_file
from toolkit.sources.heads import keras_unit_kind, measured_unit_kind, pick_head
from toolkit.sources.keras_files import Loaded, load_keras_file
from toolkit.sources.labels import default_labels, read_labels
from toolkit.sources.pivot import (
    INPUT_KEY,
    OUTPUT_KEY,
    PIVOT_DIR,
    SIGNATURE,
    check_built,
    check_classifier,
    pivot_from_savedmodel,
    save_pivot,
)
from toolkit.sources.preprocessing import Preprocessing, scaling_layers
from toolkit.sources.safety import check_savedmodel_safety, refuse_code
from toolkit.sources.stored_config import stored_config

FORMATS = ("run", "keras", "h5", "savedmodel")
MEMORY = "memory"  # a Keras model object handed over in Python (toolkit.api.export)


def is_model_object(model: Any) -> bool:
    """Is `model` a model object rather than a path (or None, the last run)?"""
    return model is not None and not isinstance(model, str | os.PathLike)


@dataclass(frozen=True)
class Source:
    """A model ready for export: the pivot, its preprocessing and labels, where it came from."""

    saved_model_dir: Path
    input_spec: InputSpec
    labels: list[str]
    eval_data: dict[str, Any] | None  # DataSpec dict whose test split evaluates the model
    origin: dict[str, Any] = field(default_factory=dict)  # path, format, sha256
    # What cnnx found out and tells the user (found preprocessing, the head picked, ...).
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    # A one-unit head made two classes in the pivot: heads.SIGMOID_UNIT or LOGIT_UNIT.
    binary: str | None = None


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
    require_regular_file(path, "model file")  # a FIFO would block the loader forever
    suffix = path.suffix.lower()
    if suffix == ".keras":
        return "keras"
    if suffix in (".h5", ".hdf5"):
        return "h5"
    raise ModelError(
        f"{path} has an unsupported model format ({suffix or 'no extension'})",
        "give a run folder, a .keras or .h5 file, or a SavedModel folder",
    )


def check_source(path: Path, kind: str, *, unsafe: bool = False) -> None:
    """Refuse a source that holds code (Lambda layers, graph ops outside the safe list)
    or is of absurd size, reading only its files: TensorFlow is not even imported."""
    if kind == "run":
        path = Path(path) / PIVOT_DIR
        if not (path / "saved_model.pb").is_file():
            return  # resolve_source says what is missing
        kind = "savedmodel"
    if kind == "savedmodel":
        check_savedmodel_safety(path, unsafe)
    else:
        refuse_code(stored_config(path, kind)[0], path, unsafe)


def resolve_source(
    model: Any,
    *,
    out_dir: Path,
    preprocessing: Preprocessing | None = None,
    labels_file: Path | tuple[str, ...] | None = None,
    unsafe: bool = False,
    output: str | None = None,
) -> Source:
    """Turn `model` (default: the last run under ./runs) into the pivot SavedModel.

    `model` is a path, or a Keras model object (Keras 3 or tf_keras), which takes the
    same road as a loaded `.keras` file from there on. A run folder's own saved_model/
    is returned as is; any other source is written to out_dir/saved_model (atomically)
    and that folder is returned.
    """
    if is_model_object(model):
        path, kind = Path(f"keras model {getattr(model, 'name', '')!r}"), MEMORY
    else:
        path = Path(model) if model is not None else last_run()
        kind = detect_format(path)
    prep = preprocessing or Preprocessing()
    if kind == "run":
        if prep.flags or output is not None:
            given = [*prep.flags, *(["--output"] if output is not None else [])]
            raise UsageError(
                f"{path} is a cnnx run: its preprocessing and head are on record in {RUN_FILE}",
                f"drop {', '.join(given)}",
            )
        return _run_source(path, labels_file, unsafe=unsafe)
    target = Path(out_dir) / PIVOT_DIR
    in_model: list[str] = []
    notes: list[str] = []
    warnings: list[str] = []
    rebuilt: dict[str, Any] | None = None
    if kind == "savedmodel":
        shape, units, binary = pivot_from_savedmodel(path, target, unsafe=unsafe, output=output)
    else:
        if kind == MEMORY:
            check_built(model, path)
        loaded = Loaded(model) if kind == MEMORY else load_keras_file(path, kind, unsafe=unsafe)
        keras_model, rebuilt = loaded.model, loaded.rebuilt
        warnings.extend(loaded.warnings)
        keras_model = pick_head(keras_model, output, path)
        if output is not None:
            notes.append(f"head: {output} (--output), from input {keras_model.inputs[0].name}")
        shape, units = check_classifier(keras_model, path)
        binary = _keras_unit_kind(keras_model, shape) if units == 1 else None
        in_model = scaling_layers(keras_model)
        with staged_dir(target) as tmp:
            save_pivot(keras_model, tmp, binary)
    classes = max(units, 2)  # one unit: two classes, [1 - p, p]
    labels = read_labels(labels_file, classes) if labels_file else default_labels(classes)
    spec = prep.input_spec(shape, in_model, source_format=kind)
    if in_model:
        found = ", ".join(in_model)
        if prep.given:
            warnings.append(
                f"the model starts with {found}, so it already takes raw 0..255 pixels; "
                f"{', '.join(f for f in prep.flags if f not in ('--resize', '--crop', '--color'))}"
                " scales them a second time"
            )
        else:
            notes.append(f"preprocessing found in the model: {found}; it takes raw 0..255 pixels")
    elif not prep.given and kind != "savedmodel":
        notes.append(
            "no preprocessing given or found in the model: raw 0..255 pixels "
            "(pass --preprocess or --scale if it was trained on scaled pixels)"
        )
    elif not prep.given:
        notes.append(
            "no preprocessing given (a SavedModel does not show it): raw 0..255 pixels "
            "(pass --preprocess or --scale if it was trained on scaled pixels)"
        )
    return Source(
        saved_model_dir=target,
        input_spec=spec,
        labels=labels,
        eval_data=None,
        origin={**_origin(path, kind), **({"rebuilt": rebuilt} if rebuilt else {})},
        notes=tuple(notes),
        warnings=tuple(warnings),
        binary=binary,
    )


def _keras_unit_kind(model: Any, shape: tuple[int, int, int]) -> str:
    """What a Keras model's one output unit gives: the activation its last layer records,
    else measured on generated pictures (no graph to look into: a sigmoid when in [0, 1])."""
    found = keras_unit_kind(model)
    if found is not None:
        return found
    from toolkit.data.generated import generated_pixels

    pictures = generated_pixels(*shape, count=8).astype("float32")
    return measured_unit_kind(model.predict(pictures, verbose=0), has_sigmoid=True)


# --- runs -----------------------------------------------------------------------------


def read_run(run_dir: Path) -> dict[str, Any]:
    """run.json of a run folder, or a one-line error saying what is wrong with it."""
    path = Path(run_dir) / RUN_FILE
    if not path.exists():
        raise PathError(f"{run_dir} is not a cnnx run (no {RUN_FILE})")
    data = read_json(path, "run record", ModelError)
    if not isinstance(data, dict) or "input" not in data:
        raise ModelError(f"{path} is not a cnnx run record (no 'input' entry)")
    return data


def _run_source(
    run_dir: Path, labels_file: Path | tuple[str, ...] | None, *, unsafe: bool = False
) -> Source:
    record = read_run(run_dir)
    pivot = run_dir / PIVOT_DIR
    if not (pivot / "saved_model.pb").is_file():
        raise ModelError(f"run {run_dir} has no {PIVOT_DIR}/saved_model.pb", "train it again")
    check_savedmodel_safety(pivot, unsafe)  # a run folder is a file anyone can swap
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


def _origin(path: Path, kind: str) -> dict[str, Any]:
    if kind == MEMORY:  # nothing on disk to point at or hash; the fingerprint still holds
        return {"path": None, "format": kind, "sha256": None, "name": str(path)}
    return {
        "path": str(Path(path).resolve()),
        "format": kind,
        "sha256": sha256_file(path) if Path(path).is_file() else None,
    }


__all__ = [
    "FORMATS",
    "INPUT_KEY",
    "MEMORY",
    "OUTPUT_KEY",
    "PIVOT_DIR",
    "SIGNATURE",
    "Preprocessing",
    "Source",
    "check_source",
    "default_labels",
    "detect_format",
    "is_model_object",
    "read_labels",
    "read_run",
    "resolve_source",
]
