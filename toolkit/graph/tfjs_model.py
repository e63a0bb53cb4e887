"""A TF.js model.json as cnnx reads it: parsed under the JSON limits, its graph checked
by the graph-op policy, and every weight shard it names resolved inside its own folder.

A model.json is a file anyone can edit: a shard path such as `../../outside/weights.bin`
would make a runtime read a file from anywhere, and a bundle that copies only the files
the manifest lists would name a shard it does not hold. Both are refused here (exit 7).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.core.limits import read_json, require_regular_file
from toolkit.errors import ArtifactError
from toolkit.graph.policy import check_tfjs_graph

FILENAME = "model.json"


@dataclass(frozen=True)
class TfjsModel:
    path: Path  # the model.json
    data: dict[str, Any]
    shards: tuple[Path, ...]  # resolved, each inside path.parent

    @property
    def folder(self) -> Path:
        return self.path.parent


def model_json_path(path: Path) -> Path:
    """A TF.js model given as its folder or its model.json -> the model.json."""
    path = Path(path)
    return path / FILENAME if path.is_dir() else path


def read_tfjs_model(path: Path, *, unsafe: bool = False, check_graph: bool = True) -> TfjsModel:
    """Read a model.json (or its folder), refusing what must not be run or read."""
    model_json = model_json_path(path)
    data = read_json(model_json, "TF.js model", ArtifactError)
    if not isinstance(data, dict):
        raise ArtifactError(f"{model_json} is not a TF.js model.json (not an object)")
    if check_graph:
        check_tfjs_graph(model_json, data, unsafe=unsafe)
    return TfjsModel(model_json, data, shard_paths(model_json, data))


def shard_paths(model_json: Path, data: dict[str, Any]) -> tuple[Path, ...]:
    """Every weight file the weightsManifest names, each a regular file in the folder."""
    groups = data.get("weightsManifest") or []
    if not isinstance(groups, list):
        raise ArtifactError(f"{model_json}: weightsManifest is not a list")
    folder = model_json.parent.resolve()
    found: list[Path] = []
    for group in groups:
        paths = group.get("paths") if isinstance(group, dict) else None
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise ArtifactError(f"{model_json}: a weightsManifest group has no list of paths")
        for relative in paths:
            found.append(_shard(model_json, folder, relative))
    return tuple(found)


def _shard(model_json: Path, folder: Path, relative: str) -> Path:
    if not relative or "\x00" in relative or relative.startswith(("/", "\\")) or "://" in relative:
        raise ArtifactError(f"{model_json} names a weight file {relative!r} outside its folder")
    try:
        candidate = (folder / relative).resolve()
    except (OSError, RuntimeError, ValueError) as error:
        raise ArtifactError(
            f"{model_json}: weight path {relative!r} is unusable: {error}"
        ) from None
    if candidate == folder or not candidate.is_relative_to(folder):
        raise ArtifactError(
            f"{model_json} names a weight file {relative!r} outside its folder {folder}",
            "re-export it with cnnx export",
        )
    if not candidate.exists():
        raise ArtifactError(
            f"{model_json} names a weight file {relative!r} that is missing",
            "re-export it with cnnx export",
        )
    try:
        require_regular_file(candidate, "TF.js weight file")
    except Exception as error:
        raise ArtifactError(f"{model_json}: {getattr(error, 'message', error)}") from None
    return candidate
