"""Hand edits of an artifacts folder's manifest.json, the ways people break them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _read(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "manifest.json").read_text())


def _write(folder: Path, data: dict[str, Any]) -> None:
    (folder / "manifest.json").write_text(json.dumps(data, indent=2))


def first_file(folder: Path, prefix: str = "tflite") -> tuple[str, dict[str, Any]]:
    """(artifact id, file record) of the first artifact whose id starts with prefix."""
    data = _read(folder)
    for artifact_id, entry in sorted(data["artifacts"].items()):
        if artifact_id.startswith(prefix) and entry["files"]:
            return artifact_id, entry["files"][0]
    raise LookupError(f"no {prefix}* artifact in {folder}")


def break_json(folder: Path) -> None:
    text = (folder / "manifest.json").read_text()
    (folder / "manifest.json").write_text(text[: len(text) // 2])  # cut mid-object


def wrong_schema(folder: Path) -> None:
    data = _read(folder)
    data["schema"] = "something.else/9"
    _write(folder, data)


def delete_file(folder: Path, prefix: str = "tflite") -> str:
    """Remove an artifact's file but keep the manifest naming it."""
    _, record = first_file(folder, prefix)
    (folder / record["path"]).unlink()
    return str(record["path"])


def wrong_hash(folder: Path, prefix: str = "tflite") -> str:
    """Change one byte of an artifact's file (the manifest keeps the old sha256)."""
    _, record = first_file(folder, prefix)
    path = folder / record["path"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return str(record["path"])


def truncate_file(folder: Path, prefix: str) -> str:
    _, record = first_file(folder, prefix)
    path = folder / record["path"]
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return str(record["path"])


def escaping_path(folder: Path) -> None:
    data = _read(folder)
    artifact_id = sorted(data["artifacts"])[0]
    data["artifacts"][artifact_id]["path"] = "../../etc/passwd"
    _write(folder, data)


def drop_artifacts(folder: Path, keep_prefix: str) -> None:
    """Keep only artifacts whose id starts with keep_prefix (files stay on disk)."""
    data = _read(folder)
    data["artifacts"] = {k: v for k, v in data["artifacts"].items() if k.startswith(keep_prefix)}
    _write(folder, data)


def rehash(folder: Path) -> None:
    """Make the manifest match the files on disk again, as an attacker who swapped a
    file would: every file record's sha256 and size recomputed (and new files listed)."""
    from toolkit.manifest import describe_files

    data = _read(folder)
    for entry in data["artifacts"].values():
        entry["files"] = describe_files(folder, entry["path"])
        entry["size"] = sum(record["size"] for record in entry["files"])
    _write(folder, data)


def swap_savedmodel(folder: Path, replacement: Path) -> None:
    """Put another SavedModel in place of the artifacts' own, manifest hashes updated."""
    import shutil

    target = folder / "saved_model"
    shutil.rmtree(target)
    shutil.copytree(replacement, target)
    rehash(folder)


def edit_model_json(folder: Path, edit: Any, artifact_id: str = "tfjs_float32") -> None:
    """Change a TF.js artifact's model.json with `edit(data)`, manifest hashes updated."""
    data = _read(folder)
    path = folder / data["artifacts"][artifact_id]["path"]
    model_json = path / "model.json" if path.is_dir() else path
    model = json.loads(model_json.read_text())
    edit(model)
    model_json.write_text(json.dumps(model))
    rehash(folder)


def huge_input(folder: Path) -> None:
    """An input of 100000x100000x3, and no pictures on record (generated ones are drawn)."""
    data = _read(folder)
    data["input"].update(height=100_000, width=100_000, shape=[100_000, 100_000, 3])
    data["samples"], data["eval_data"] = [], None
    _write(folder, data)
