"""Keras model files (.keras archives, .h5 files) read under limits, before Keras sees them.

A `.keras` file is a zip: its config.json could be a zip bomb, its members could add up
to more memory than the machine has. An `.h5` file's `model_config` attribute could be
anything HDF5 can store, not the JSON string Keras writes. A configuration of a million
layers would keep Keras busy for hours. Each is refused here with exit 4, without
importing Keras.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from toolkit.core.limits import MAX_JSON_BYTES, MAX_LAYERS, check_allocation, parse_json
from toolkit.errors import ModelError, shorten


def stored_config(path: Path, kind: str) -> tuple[Any, str]:
    """The configuration stored in a .keras (kind "keras") or .h5 file, and the Keras
    version that wrote it, read under the limits without importing Keras."""
    config, version = _keras_config(path) if kind == "keras" else _h5_config(path)
    check_config_size(config, path)
    return config, version


def _keras_config(path: Path) -> tuple[Any, str]:
    if not zipfile.is_zipfile(path):
        raise ModelError(
            f"{path} is not a Keras archive (not a zip file; truncated or another format)"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            raw = read_member(archive, "config.json", path)
            has_metadata = "metadata.json" in archive.namelist()
            meta = read_member(archive, "metadata.json", path) if has_metadata else b"{}"
    except (KeyError, zipfile.BadZipFile, OSError, ValueError, RuntimeError) as error:
        raise ModelError(f"{path} is not a readable Keras archive: {shorten(str(error))}") from None
    config = parse_json(raw, f"{path} config.json", ModelError)
    metadata = parse_json(meta, f"{path} metadata.json", ModelError)
    version = metadata.get("keras_version") if isinstance(metadata, dict) else None
    return config, str(version or "")


def _h5_config(path: Path) -> tuple[Any, str]:
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            config = h5_config(handle, path)
            version = handle.attrs.get("keras_version")
    except OSError as error:
        raise ModelError(
            f"{path} is not a readable HDF5 file (truncated?): {shorten(str(error))}"
        ) from None
    if config is None:
        raise ModelError(
            f"{path} holds no model configuration (weights only?)",
            "save the whole model, not only its weights",
        )
    if isinstance(version, bytes):
        version = version.decode("utf-8", "replace")
    return config, str(version or "")


def read_member(archive: zipfile.ZipFile, name: str, path: Path) -> bytes:
    """One member of a .keras archive, refusing a declared size past the limits."""
    total = sum(info.file_size for info in archive.infolist())
    check_allocation(total, f"unpacking {path}", "this .keras file is larger than memory")
    info = archive.getinfo(name)
    if info.file_size > MAX_JSON_BYTES:
        raise ModelError(
            f"{path}: {name} is {info.file_size:,} bytes unpacked, more than the limit of "
            f"{MAX_JSON_BYTES:,}"
        )
    return archive.read(info)


def h5_config(handle: Any, path: Path) -> Any:
    """The parsed `model_config` attribute of an open .h5 file (None when absent)."""
    if "model_config" not in handle.attrs:
        return None
    size = handle.attrs.get_id("model_config").get_storage_size()
    if size > MAX_JSON_BYTES:
        raise ModelError(
            f"{path}: its model configuration is {size:,} bytes, more than the limit of "
            f"{MAX_JSON_BYTES:,}"
        )
    raw = handle.attrs.get("model_config")
    return parse_json(h5_text(raw, path), f"{path} model configuration", ModelError)


def h5_text(raw: Any, path: Path) -> str:
    """The model_config attribute as text: Keras writes a (byte) string, nothing else."""
    import numpy as np

    if isinstance(raw, np.ndarray) and raw.shape == () and raw.dtype.kind in "SUO":
        raw = raw.item()
    if isinstance(raw, bytes | np.bytes_):
        try:
            return bytes(raw).decode("utf-8")
        except UnicodeDecodeError as error:
            raise ModelError(f"{path}: its model configuration is not UTF-8: {error}") from None
    if isinstance(raw, str):
        try:  # h5py hands bytes that are not UTF-8 over as surrogate escapes
            raw.encode("utf-8")
        except UnicodeEncodeError as error:
            raise ModelError(f"{path}: its model configuration is not UTF-8: {error}") from None
        return raw
    kind = type(raw).__name__
    shape = getattr(raw, "shape", None)
    raise ModelError(
        f"{path}: its model_config attribute is a {kind}{f' of shape {shape}' if shape else ''}, "
        "not the JSON string Keras writes",
        "save the model again with Keras",
    )


def check_config_size(config: Any, path: Path) -> None:
    """Refuse a configuration with more than MAX_LAYERS objects (layers, initializers...)."""
    count = 0
    stack = [config]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "class_name" in item:
                count += 1
                if count > MAX_LAYERS:
                    raise ModelError(
                        f"{path} describes more than {MAX_LAYERS:,} layers and objects",
                        "cnnx refuses model configurations of absurd size",
                    )
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
