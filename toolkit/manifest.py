"""manifest.json: the only thing later stages read about an artifacts folder.

Schema `cnnx.manifest/1` (docs/manifest.md documents every field):

    {
      "schema": "cnnx.manifest/1",
      "created": ISO-8601 UTC, "command": "cnnx export ...",
      "source": {"path": str, "format": "run|keras|h5|savedmodel", "sha256": str|null,
                 "fingerprint": sha256 of the weight values},
      "input": InputSpec.to_dict(),
      "labels": [class names, index order],
      "eval_data": DataSpec dict or null (how to rebuild the labelled test images),
      "versions": {"cnnx", "tensorflow", "tensorflowjs", "ai_edge_litert", ...},
      "samples": [{"file", "path", "label", "label_name", "split", "split_index",
                   "sha256", "size"}, ...] (test images as PNG under samples/),
      "export": {"made": [ids], "skipped": {id: why}, "notes": [...], "warnings": [...]}
                (what the last export did and found out about the source),
      "artifacts": {ID: ArtifactEntry, ...}
    }

An artifact entry:

    {"format": "savedmodel|tflite|tfjs", "precision": "float32|float16|dynamic|int8|uint8|uint16",
     "runtime": "tf|litert|tfjs", "path": relative file or folder,
     "files": [{"path": relative, "sha256": hex, "size": bytes}], "size": total bytes,
     "inputs": [TensorInfo], "outputs": [TensorInfo], "tolerance": {...},
     "details": {format-specific: calibration record, converter options, ops, ...}}

TensorInfo: {"name", "shape" (list, -1 for dynamic), "dtype", "quantization": null or
{"scale": float, "zero_point": int}}.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.core.atomic import write_json_atomic
from toolkit.core.limits import read_json
from toolkit.core.provenance import now_iso
from toolkit.data.inputspec import InputSpec
from toolkit.errors import ArtifactError, CnnxError, PathError

SCHEMA = "cnnx.manifest/1"
FILENAME = "manifest.json"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_files(root: Path, relative: str) -> list[dict[str, Any]]:
    """sha256 and size of the file, or of every file below the folder, at root/relative."""
    target = root / relative
    paths = [target] if target.is_file() else sorted(p for p in target.rglob("*") if p.is_file())
    return [
        {"path": p.relative_to(root).as_posix(), "sha256": sha256_file(p), "size": p.stat().st_size}
        for p in paths
    ]


@dataclass(frozen=True)
class ArtifactEntry:
    id: str
    format: str
    precision: str
    runtime: str
    path: str
    files: list[dict[str, Any]]
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    tolerance: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return sum(int(f["size"]) for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "precision": self.precision,
            "runtime": self.runtime,
            "path": self.path,
            "files": self.files,
            "size": self.size,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "tolerance": self.tolerance,
            "details": self.details,
        }

    @classmethod
    def from_dict(cls, artifact_id: str, data: dict[str, Any]) -> ArtifactEntry:
        try:
            return cls(
                id=artifact_id,
                format=str(data["format"]),
                precision=str(data["precision"]),
                runtime=str(data["runtime"]),
                path=str(data["path"]),
                files=list(data["files"]),
                inputs=list(data.get("inputs", [])),
                outputs=list(data.get("outputs", [])),
                tolerance=dict(data.get("tolerance", {})),
                details=dict(data.get("details", {})),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ArtifactError(f"manifest entry {artifact_id!r} is malformed: {error!r}") from None


@dataclass(frozen=True)
class Manifest:
    root: Path
    input: InputSpec
    labels: list[str]
    artifacts: dict[str, ArtifactEntry] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    eval_data: dict[str, Any] | None = None
    versions: dict[str, str] = field(default_factory=dict)
    command: str = ""
    created: str = ""
    # Test-split images as PNG for the web demo and the bundles: [{"file" (relative to
    # samples/), "path" (relative to the folder), "label", "label_name", "split",
    # "split_index", "sha256", "size"}]; samples/samples.json lists the same without hashes.
    samples: list[dict[str, Any]] = field(default_factory=list)
    # The last export: {"made": [ids], "skipped": {id: why}, "notes": [...], "warnings": [...]}.
    export: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.root / FILENAME

    def artifact(self, artifact_id: str) -> ArtifactEntry:
        if artifact_id not in self.artifacts:
            known = ", ".join(sorted(self.artifacts)) or "none"
            raise ArtifactError(
                f"{self.path} has no artifact {artifact_id!r} (it has: {known})",
                "export it with cnnx export",
            )
        return self.artifacts[artifact_id]

    def artifact_path(self, entry: ArtifactEntry, *, check: bool = True) -> Path:
        """Where the artifact lives; with check, its files must match their recorded hashes."""
        if check:
            self.check_files(entry)
        return self.root / entry.path

    def check_files(self, entry: ArtifactEntry) -> None:
        for record in entry.files:
            file_path = _inside(self.root, record["path"])
            if not file_path.is_file():
                raise ArtifactError(
                    f"artifact {entry.id!r}: file {record['path']} named in {self.path} is missing",
                    "re-export it with cnnx export",
                )
            if sha256_file(file_path) != record["sha256"]:
                raise ArtifactError(
                    f"artifact {entry.id!r}: {record['path']} does not match its sha256 in "
                    f"{self.path}",
                    "the file changed after export; re-export it",
                )

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "created": self.created or now_iso(),
            "command": self.command,
            "source": self.source,
            "input": self.input.to_dict(),
            "labels": self.labels,
            "eval_data": self.eval_data,
            "versions": self.versions,
            "samples": self.samples,
            "export": self.export,
            "artifacts": {key: entry.to_dict() for key, entry in sorted(self.artifacts.items())},
        }

    @property
    def warnings(self) -> list[str]:
        """Warnings the exporters recorded (e.g. a small calibration set), per artifact."""
        return [
            f"{key}: {text}"
            for key, entry in sorted(self.artifacts.items())
            for text in entry.details.get("warnings", [])
        ]

    def sample_path(self, sample: dict[str, Any], *, check: bool = True) -> Path:
        """Where a sample image lives; with check, it must match its recorded sha256."""
        path = _inside(self.root, _sample_relative(sample))
        if check and (not path.is_file() or sha256_file(path) != sample.get("sha256")):
            raise ArtifactError(
                f"sample {_sample_relative(sample)} is missing or changed since export",
                "re-export with cnnx export",
            )
        return path

    def save(self) -> None:
        """Write manifest.json atomically (a reader sees the old or the new, never half)."""
        write_json_atomic(self.path, self.to_dict())


def _inside(root: Path, relative: str) -> Path:
    """Resolve a manifest path, refusing any that escapes the artifacts folder."""
    try:
        candidate = (root / relative).resolve()
    except (ValueError, OSError) as error:  # a NUL byte, a symlink loop
        raise ArtifactError(f"manifest path {relative!r} is not usable: {error}") from None
    if not candidate.is_relative_to(root.resolve()):
        raise ArtifactError(f"manifest path {relative!r} points outside {root}")
    return candidate


def load_manifest(root: Path) -> Manifest:
    """Read ROOT/manifest.json, or raise a one-line error saying what is wrong with it."""
    root = Path(root)
    path = root / FILENAME if root.is_dir() or not root.name.endswith(".json") else root
    root = path.parent
    if not path.is_file():
        raise PathError(f"no {FILENAME} in {root}", "run cnnx export first, or name the folder")
    data = read_json(path, "manifest", ArtifactError)
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        seen = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise ArtifactError(f"{path} is not a cnnx manifest (schema {seen!r}, expected {SCHEMA!r})")
    try:
        input_spec = InputSpec.from_dict(data["input"])
        labels = [str(label) for label in data["labels"]]
        raw_artifacts = data.get("artifacts") or {}
        if not isinstance(raw_artifacts, dict):
            raise TypeError("artifacts must be a mapping")
        artifacts = {k: ArtifactEntry.from_dict(k, v) for k, v in raw_artifacts.items()}
        source = dict(data.get("source") or {})
        versions = dict(data.get("versions") or {})
        samples = _samples(data.get("samples"))
        export = dict(data.get("export") or {})
    except ArtifactError:
        raise
    except (CnnxError, KeyError, TypeError, ValueError, OverflowError) as error:
        raise ArtifactError(f"{path} is malformed: {error!r}") from None
    for entry in artifacts.values():
        _inside(root, entry.path)
        for record in entry.files:
            # A hand-edited file list must still be a list of {"path", "sha256", "size"}.
            if not (
                isinstance(record, dict)
                and isinstance(record.get("path"), str)
                and isinstance(record.get("sha256"), str)
                and type(record.get("size")) is int
                and record["size"] >= 0
            ):
                raise ArtifactError(
                    f"{path}: artifact {entry.id!r} has a malformed file record {record!r}",
                    "each file needs a path, a sha256 and a size; re-export it",
                )
            _inside(root, record["path"])
    for sample in samples:
        _inside(root, _sample_relative(sample))
    return Manifest(
        root=root,
        input=input_spec,
        labels=labels,
        artifacts=artifacts,
        source=source,
        eval_data=data.get("eval_data"),
        versions=versions,
        command=str(data.get("command", "")),
        created=str(data.get("created", "")),
        samples=samples,
        export=export,
    )


def _sample_relative(sample: dict[str, Any]) -> str:
    """A sample's path from the artifacts folder (`file` alone is relative to samples/)."""
    path = sample.get("path")
    return path if isinstance(path, str) else f"samples/{sample['file']}"


def _samples(value: Any) -> list[dict[str, Any]]:
    """The manifest's sample list: each a mapping with a string file and an int label."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise TypeError("samples must be a list")
    for item in value:
        if not (
            isinstance(item, dict)
            and isinstance(item.get("file"), str)
            and type(item.get("label")) is int
        ):
            raise TypeError(f"malformed sample record {item!r}")
    return [dict(item) for item in value]
