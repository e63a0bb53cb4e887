"""A finished bundle holds everything it names, and nothing that points out of it.

Run on the staged folder just before it is put in place: every TF.js model.json's
shards, every file of its manifest (with its sha256) and every file bundle.json lists
must be regular files inside the bundle, and the bundle holds no symlink. A bundle that
names a shard it does not hold would load on no host; one holding a link would ship a
file from anywhere on the machine that built it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from toolkit.core.limits import read_json
from toolkit.errors import ArtifactError
from toolkit.graph.tfjs_model import FILENAME as MODEL_JSON
from toolkit.graph.tfjs_model import read_tfjs_model

BUNDLE_RECORD = "bundle.json"


def check_bundle_contents(folder: Path) -> None:
    """ArtifactError (exit 7) naming the first thing the bundle names but does not hold."""
    folder = Path(folder)
    for root, dirs, names in os.walk(folder):
        for name in dirs + names:
            path = Path(root) / name
            if path.is_symlink():
                raise ArtifactError(f"the bundle would hold a symlink, {path.relative_to(folder)}")
    for model_json in sorted(folder.rglob(MODEL_JSON)):
        read_tfjs_model(model_json, check_graph=False)  # every shard a file beside it
    for manifest_file in sorted(folder.rglob("manifest.json")):
        from toolkit.manifest import load_manifest

        manifest = load_manifest(manifest_file.parent)
        for entry in manifest.artifacts.values():
            manifest.check_files(entry)
    record_file = folder / BUNDLE_RECORD
    if record_file.is_file():
        record = read_json(record_file, "bundle record", ArtifactError)
        for item in _listed(record):
            _inside(folder, item, record_file)


def _listed(record: Any) -> list[str]:
    files = record.get("files") if isinstance(record, dict) else None
    if not isinstance(files, list):
        return []
    return [str(item.get("path")) for item in files if isinstance(item, dict)]


def _inside(folder: Path, relative: str, where: Path) -> None:
    path = (folder / relative).resolve()
    if not path.is_relative_to(folder.resolve()) or not path.is_file():
        raise ArtifactError(f"{where.name} names {relative!r}, which the bundle does not hold")
