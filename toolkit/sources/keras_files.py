"""`.keras` and `.h5` files as Keras models, whichever Keras wrote them.

Loaders are tried in turn until one works:

- `.keras` from Keras 3: Keras 3; then, for a file an earlier minor wrote with arguments
  this Keras no longer knows, a rebuild without them where they sit on augmentation
  layers (earlier_keras.py; refused, naming layer and argument, anywhere else); then
  tf_keras.
- `.keras` from Keras 2.13-2.15 (its config has `batch_input_shape`, its weights sit
  under `_layer_checkpoint_dependencies/`, where no later Keras looks): a rebuild: the
  model is made by Keras 3 from its config through Keras' own Keras 2 reader, and each
  layer's weights are assigned from the group of its name (Keras 2 named a layer's group
  after its class, in layer order: `conv2d`, `conv2d_1`, ...); then tf_keras.
- `.h5`: tf_keras first for Keras 2 files (Keras 3 reads many of them subtly wrong), then
  Keras 3; the other way round for Keras 3 files.

When every loader fails, the one-line error names each loader with its reason in a few
words and the Keras version that wrote the file (from its metadata, or guessed).
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.errors import ModelError, shorten
from toolkit.sources import earlier_keras
from toolkit.sources.safety import refuse_code
from toolkit.sources.stored_config import stored_config

KERAS2_WEIGHTS = "_layer_checkpoint_dependencies"  # where Keras 2.13-2.15 put layer weights
REASON_WORDS = 90  # characters of each loader's reason in the final error


@dataclass(frozen=True)
class Loaded:
    """A model as loaded, and what was changed to load it (for the warning and manifest)."""

    model: Any
    warnings: tuple[str, ...] = ()
    rebuilt: dict[str, Any] | None = None  # the manifest's source.rebuilt


def load_keras_model(path: Path, kind: str, *, unsafe: bool = False) -> Any:
    """A `.keras` or `.h5` file as a Keras model (Keras 3, or tf_keras for Keras 2 files)."""
    return load_keras_file(path, kind, unsafe=unsafe).model


def load_keras_file(path: Path, kind: str, *, unsafe: bool = False) -> Loaded:
    """A `.keras` or `.h5` file as a Keras model, with what its loading changed."""
    from toolkit.core.quiet import silence_tensorflow

    silence_tensorflow()
    if kind == "keras":
        return _load_dot_keras(path, unsafe)
    return Loaded(_load_h5(path, unsafe))


def _load_dot_keras(path: Path, unsafe: bool) -> Loaded:
    config, version = stored_config(path, "keras")  # under limits, before Keras
    refuse_code(config, path, unsafe)
    writer = _writer(version, config, "metadata.json")
    if version.startswith("2.") or _keras2_config(config):
        loaders = [
            ("keras 3", lambda: _keras3(path, unsafe, keras2_config=True)),
            ("rebuild from config", lambda: _rebuild_keras2(path, config)),
            ("tf_keras", lambda: _tf_keras(path, unsafe)),
        ]
        return Loaded(_first_that_loads(path, loaders, writer))
    try:
        return Loaded(_keras3(path, unsafe))
    except Exception as error:  # Keras raises many types for a file it cannot read
        failed = f"keras 3: {reason(error)}"
    # A file from an earlier Keras 3 minor: arguments this Keras dropped (refused here
    # unless they sit on augmentation layers), a fixed batch.
    rebuild = earlier_keras.plan(config, path)
    if not rebuild:
        return Loaded(
            _first_that_loads(path, [("tf_keras", lambda: _tf_keras(path, unsafe))], writer, failed)
        )
    model = _first_that_loads(
        path,
        [
            (
                "rebuild from config",
                lambda: earlier_keras.load_rebuilt(path, config, rebuild, unsafe=unsafe),
            )
        ],
        writer,
        failed,
    )
    import keras

    return Loaded(model, (rebuild.warning(keras.__version__),), rebuild.record(version))


def _load_h5(path: Path, unsafe: bool) -> Any:
    config, version = stored_config(path, "h5")  # under limits, before Keras
    refuse_code(config, path, unsafe)
    loaders = [
        ("tf_keras", lambda: _tf_keras(path, unsafe)),
        ("keras 3", lambda: _keras3(path, unsafe)),
    ]
    if not version.startswith("2."):
        loaders.reverse()
    return _first_that_loads(path, loaders, _writer(version, config, "its keras_version"))


def _first_that_loads(path: Path, loaders: list[tuple[str, Any]], writer: str, *failed: str) -> Any:
    reasons = list(failed)  # loaders already tried, "name: reason"
    for name, load in loaders:
        try:
            return load()
        except Exception as error:  # Keras raises many types for a file it cannot read
            reasons.append(f"{name}: {reason(error)}")
    raise ModelError(
        f"cannot load {path} ({writer}); tried {'; '.join(reasons)}",
        tf_keras_hint(reasons)
        or "re-save it where it was trained with model.save('model.h5') or model.export('dir')",
    )


def tf_keras_hint(reasons: list[str]) -> str:
    """How to install tf_keras when its absence was one of the failures: the release of
    the installed TensorFlow's minor version (a newer one would upgrade TensorFlow)."""
    if not any(r.startswith("tf_keras: No module named") for r in reasons):
        return ""
    from importlib.metadata import version

    minor = ".".join(version("tensorflow").split(".")[:2])
    return f"Keras 2 files load through tf_keras: pip install 'tf_keras~={minor}.0'"


def _keras3(path: Path, unsafe: bool, keras2_config: bool = False) -> Any:
    import keras

    try:
        return keras.saving.load_model(path, compile=False, safe_mode=not unsafe)
    except Exception as error:
        if keras2_config:  # whatever Keras 3 says, this is why
            raise ModelError(
                "a Keras 2 config (batch_input_shape), which Keras 3 does not read"
            ) from error
        raise


def _tf_keras(path: Path, unsafe: bool) -> Any:
    import tf_keras

    return tf_keras.models.load_model(path, compile=False, safe_mode=not unsafe)


# --- what went wrong, in a few words ---------------------------------------------------

_REASONS = (
    (r"Unrecognized keyword arguments passed to (\w+): \{'(\w+)'", r"unknown argument \2 of \1"),
    (r"'batch_input_shape'", "a Keras 2 config (batch_input_shape)"),
    (r"parent module ([\w.]+) cannot be imported", r"no module \1 in this Keras"),
    (r"could not be deserialized properly", "its config does not rebuild in this Keras"),
    (r"Layer '([^']+)' expected (\d+) variables, but received 0", r"no weights found for '\1'"),
    (r"expected (\d+) variables, but received (\d+)", r"\2 weights where \1 were expected"),
    (r"File format not supported", "file format not supported"),
)


def reason(error: BaseException) -> str:
    """A loader's failure in a few words: a known Keras message summarised, else shortened."""
    text = " ".join(str(error).split()) or type(error).__name__
    for pattern, summary in _REASONS:
        found = re.search(pattern, text)
        if found:
            return found.expand(summary)
    return shorten(text, REASON_WORDS)


def _walk(config: Any) -> Any:
    if isinstance(config, dict):
        yield config
        for value in config.values():
            yield from _walk(value)
    elif isinstance(config, list):
        for value in config:
            yield from _walk(value)


def _keras2_config(config: Any) -> bool:
    """Does a stored config carry Keras 2 markers (batch_input_shape, keras.src.engine)?"""
    for node in _walk(config):
        if "batch_input_shape" in node or str(node.get("module", "")).startswith(
            ("keras.src.engine", "keras.engine")
        ):
            return True
    return False


def _writer(version: str, config: Any, where: str) -> str:
    """Which Keras wrote a file, from its record, else guessed from its config."""
    if version:
        return f"written by Keras {version}, per {where}"
    if _keras2_config(config):
        return "written by Keras 2, by its config (batch_input_shape)"
    return "written by Keras 3, by its config"


# --- Keras 2.13-2.15 `.keras` files ----------------------------------------------------


def keras2_group_name(class_name: str) -> str:
    """The group Keras 2 saved a layer's weights under: its class in snake case."""
    text = re.sub(r"(.)([A-Z][a-z0-9]+)", r"\1_\2", class_name)
    text = re.sub(r"([a-z])([A-Z])", r"\1_\2", text).lower()
    return text if not text.startswith("_") else "private" + text


# Keras 2 layer arguments Keras 3 dropped, with the value that means "as Keras 3 does".
_KERAS2_ONLY_ARGUMENTS = {"DepthwiseConv2D": {"groups": 1}}


def _without_keras2_modules(config: Any) -> Any:
    """The config in the legacy (h5) shape Keras 3's Keras 2 reader takes: no `module`,
    `registered_name` or `build_config` keys (they name Keras 2 module paths), and no
    arguments Keras 3 dropped when they hold the value Keras 3 assumes."""
    if isinstance(config, dict):
        dropped = _KERAS2_ONLY_ARGUMENTS.get(str(config.get("class_name")), {})
        inner = config.get("config")
        if dropped and isinstance(inner, dict):
            inner = {k: v for k, v in inner.items() if not (k in dropped and v == dropped[k])}
            config = {**config, "config": inner}
        return {
            key: _without_keras2_modules(value)
            for key, value in config.items()
            if key not in ("module", "registered_name", "build_config", "compile_config")
        }
    if isinstance(config, list):
        return [_without_keras2_modules(value) for value in config]
    return config


def _nested_sequential_nodes(config: Any) -> Any:
    """Calls of a nested Sequential renumbered for Keras 3.

    Keras 2 gave a Sequential model built on an Input a node of its own, so its first
    call inside another model is node 1; in Keras 3 it is node 0 (a Functional model
    keeps its built-in node in both, and Keras 3 reads those right).
    """
    if isinstance(config, list):
        return [_nested_sequential_nodes(value) for value in config]
    if not isinstance(config, dict):
        return config
    config = {key: _nested_sequential_nodes(value) for key, value in config.items()}
    inner = config.get("config")
    if config.get("class_name") in ("Functional", "Model") and isinstance(inner, dict):
        layers = inner.get("layers") or []
        sequential = {
            layer.get("name") or layer.get("config", {}).get("name")
            for layer in layers
            if isinstance(layer, dict) and layer.get("class_name") == "Sequential"
        }

        def renumber(entry: Any) -> Any:
            if isinstance(entry, list) and entry and isinstance(entry[0], list):
                return [renumber(item) for item in entry]
            if (
                isinstance(entry, list)
                and len(entry) >= 3
                and entry[0] in sequential
                and isinstance(entry[1], int)
                and entry[1] > 0
            ):
                return [entry[0], entry[1] - 1, *entry[2:]]
            return entry

        for layer in layers:
            if isinstance(layer, dict) and "inbound_nodes" in layer:
                layer["inbound_nodes"] = [renumber(node) for node in layer["inbound_nodes"]]
        for key in ("input_layers", "output_layers"):
            if key in inner:
                inner[key] = renumber(inner[key])
    return config


def _rebuild_keras2(path: Path, config: Any) -> Any:
    import h5py
    from keras.src.legacy.saving import saving_utils

    legacy = _nested_sequential_nodes(_without_keras2_modules(config))
    model = saving_utils.model_from_config(legacy)
    with zipfile.ZipFile(path) as archive:
        blob = archive.read("model.weights.h5")
    with h5py.File(io.BytesIO(blob), "r") as weights:
        if KERAS2_WEIGHTS not in weights:
            raise ModelError(f"its weights are not under {KERAS2_WEIGHTS}/")
        unused = _assign(model, weights[KERAS2_WEIGHTS])
    if unused:
        raise ModelError(f"the file has weights for layers the config lacks: {', '.join(unused)}")
    return model


def _assign(model: Any, group: Any) -> list[str]:
    """Give each layer of `model` the weights of its Keras 2 group; return unused groups."""
    import numpy as np

    used: dict[str, int] = {}
    seen: set[str] = set()
    for layer in model.layers:
        name = keras2_group_name(type(layer).__name__)
        used[name] = used.get(name, -1) + 1
        if used[name]:
            name = f"{name}_{used[name]}"
        seen.add(name)
        stored = group[name]["vars"] if name in group and "vars" in group[name] else {}
        if hasattr(layer, "layers") and name in group and KERAS2_WEIGHTS in group[name]:
            _assign(layer, group[name][KERAS2_WEIGHTS])
            continue
        variables = list(layer.weights)
        if len(stored) != len(variables):
            raise ModelError(
                f"layer {layer.name!r} has {len(variables)} weights, the file {len(stored)} "
                f"under {name!r}"
            )
        for index, variable in enumerate(variables):
            value = np.asarray(stored[str(index)])
            if tuple(value.shape) != tuple(variable.shape):
                raise ModelError(
                    f"layer {layer.name!r} weight {index} is {tuple(variable.shape)}, the file "
                    f"{tuple(value.shape)}"
                )
            variable.assign(value)
    return sorted(
        key for key in group if key not in seen and "vars" in group[key] and len(group[key]["vars"])
    )
