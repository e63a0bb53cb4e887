"""`.keras` and `.h5` files as Keras models: Keras 3, or tf_keras for Keras 2 files."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from toolkit.errors import ModelError, first_line
from toolkit.sources.safety import refuse_code


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
    refuse_code(config, path, unsafe)
    import keras

    try:
        return keras.saving.load_model(path, compile=False, safe_mode=not unsafe)
    except Exception as error:  # Keras raises many types for a damaged or foreign file
        raise ModelError(f"cannot load {path} with Keras: {first_line(error)}") from None


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
    refuse_code(config, path, unsafe)
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
            errors.append(f"{loader}: {first_line(error)}")
    raise ModelError(f"cannot load {path}: {'; '.join(errors)}")
