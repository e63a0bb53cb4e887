"""What every bundle shares: the models it needs from the manifest, the test images
with their ground truth, the bundle's own record (bundle.json, one schema for every
target), and the one staged writer every target builds through.

A bundle reads only the artifacts folder's manifest.json: each model it copies must be
named there and match its recorded sha256, so a bundle never ships a file that changed
after it was verified.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit import __version__
from toolkit.core.atomic import replacing_file, staged_dir, write_json_atomic, write_text_atomic
from toolkit.core.limits import read_json
from toolkit.core.progress import ProgressFn, Step
from toolkit.core.provenance import now_iso
from toolkit.core.textsafe import label_lines
from toolkit.data.images import check_image
from toolkit.data.inputspec import InputSpec
from toolkit.errors import ArtifactError, DataError, PathError
from toolkit.manifest import ArtifactEntry, Manifest, sha256_file
from toolkit.packaging.contents import check_bundle_contents
from toolkit.packaging.zipping import bundle_members, zip_bytes

BUNDLE_SCHEMA = "cnnx.bundle/2"  # docs/bundles.md
TEMPLATES = Path(__file__).resolve().parent / "templates"

# The export command that makes each artifact a bundle may need.
EXPORT_COMMANDS = {
    "tflite_float32": "cnnx export --to tflite",
    "tflite_int8": "cnnx export --to tflite --quantize int8",
}


@dataclass(frozen=True)
class Sample:
    """One labelled test image from the artifacts folder's samples/."""

    path: Path
    index: int
    label: str


def require_model(manifest: Manifest, artifact_id: str, bundle: str) -> tuple[ArtifactEntry, Path]:
    """The manifest entry and file of a model the bundle needs, hash-checked.

    Missing: an ArtifactError that names the artifact and the export command making it.
    """
    if artifact_id not in manifest.artifacts:
        known = ", ".join(sorted(manifest.artifacts)) or "none"
        command = EXPORT_COMMANDS.get(artifact_id, "cnnx export --to tflite")
        raise ArtifactError(
            f"the {bundle} bundle needs {artifact_id!r}, which {manifest.path} does not list "
            f"(it has: {known})",
            f"make it with: {command} --out {manifest.root}",
        )
    entry = manifest.artifacts[artifact_id]
    if entry.format != "tflite" or not entry.path.endswith(".tflite"):
        raise ArtifactError(
            f"artifact {artifact_id!r} in {manifest.path} is {entry.format} at {entry.path}, "
            "not a .tflite file"
        )
    return entry, manifest.artifact_path(entry, check=True)


def require_edge_models(
    manifest: Manifest, models: dict[str, str], bundle: str
) -> dict[str, tuple[ArtifactEntry, Path]]:
    """Each model of `models` (bundle name -> artifact id) as `require_model` gives it,
    checked in that order, and then each checked for a static [1, H, W, C] input."""
    found = {name: require_model(manifest, artifact, bundle) for name, artifact in models.items()}
    for entry, path in found.values():
        static_input_shape(entry, path)
    return found


def input_dtype(entry: ArtifactEntry) -> str:
    """The dtype of the model's first input as the manifest records it ('' if unknown)."""
    return str(entry.inputs[0].get("dtype", "")) if entry.inputs else ""


def static_input_shape(entry: ArtifactEntry, path: Path) -> list[int]:
    """The model's input shape, which must be [1, H, W, C] for an edge bundle."""
    shape = _first_shape(entry.inputs)
    if shape is None or len(shape) != 4 or shape[0] != 1 or any(d <= 0 for d in shape):
        raise ArtifactError(
            f"{path} has input shape {shape}; device bundles need a static [1, H, W, C]",
            "re-export it with cnnx export (edge artifacts use a batch of 1)",
        )
    return shape


def _first_shape(tensors: list[dict[str, Any]]) -> list[int] | None:
    if not tensors:
        return None
    try:
        return [int(d) for d in tensors[0]["shape"]]
    except (KeyError, TypeError, ValueError):
        return None


def read_samples(manifest: Manifest) -> list[Sample]:
    """The labelled sample images recorded in ARTIFACTS/samples/samples.json."""
    folder = manifest.root / "samples"
    index_file = folder / "samples.json"
    if not index_file.is_file():
        raise PathError(
            f"no samples/samples.json in {manifest.root}: a bundle ships test images with "
            "their ground truth",
            "re-export with cnnx export, which records them",
        )
    data = read_json(index_file, "samples index", DataError)
    records = data.get("samples") if isinstance(data, dict) else data
    if not isinstance(records, list) or not records:
        raise DataError(f"{index_file} lists no samples")
    return [_sample(folder, record, manifest.labels, index_file) for record in records]


def _sample(folder: Path, record: Any, labels: list[str], where: Path) -> Sample:
    """One record: a file plus a label index and/or name (either key spelling)."""
    if not isinstance(record, dict) or not isinstance(record.get("file"), str):
        raise DataError(f"{where}: malformed sample record {record!r}")
    index: int | None = None
    name: str | None = None
    for key in ("index", "label_index", "label", "label_name", "name"):
        value = record.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and index is None:
            index = value
        elif isinstance(value, str) and name is None and key != "file":
            name = value
    if index is None and name in labels:
        index = labels.index(name)
    if index is None or not 0 <= index < len(labels):
        raise DataError(f"{where}: sample {record['file']!r} has no usable label ({record!r})")
    path = (folder / record["file"]).resolve()
    if not path.is_relative_to(folder.resolve()) or not path.is_file():
        raise DataError(f"{where}: sample file {record['file']!r} is missing or outside samples/")
    check_image(path)  # a regular file under the pixel limit: the bundle decodes it
    return Sample(path=path, index=index, label=labels[index])


def copy_samples(samples: list[Sample], target: Path) -> list[dict[str, Any]]:
    """Copy the test images into target/ and write target/ground_truth.json."""
    target.mkdir(parents=True, exist_ok=True)
    records = []
    for sample in samples:
        shutil.copyfile(sample.path, target / sample.path.name)
        records.append({"file": sample.path.name, "index": sample.index, "label": sample.label})
    write_json_atomic(target / "ground_truth.json", {"images": records})
    return records


def spec_normalization(spec: InputSpec) -> tuple[list[float], list[float]]:
    """The spec as (x - mean) / std per channel, the form TFLite metadata and
    MediaPipe use: x * scale + offset is (x - (-offset / scale)) / (1 / scale)."""
    if spec.mean is not None and spec.std is not None:
        mean = list(spec.mean) * (spec.channels if len(spec.mean) == 1 else 1)
        std = list(spec.std) * (spec.channels if len(spec.std) == 1 else 1)
        return [float(m) for m in mean], [float(s) for s in std]
    mean_value = -spec.offset / spec.scale + 0.0  # + 0.0: no "-0" in metadata and READMEs
    std_value = 1.0 / spec.scale
    return [mean_value] * spec.channels, [std_value] * spec.channels


def write_labels(labels: list[str], target: Path) -> None:
    write_text_atomic(target, label_lines(labels))  # a newline in a name never shifts a line


def copy_template(
    source: str, target: Path, *, executable: bool = False, values: dict[str, str] | None = None
) -> None:
    """Copy templates/<source>, filling {{key}} placeholders from `values`."""
    text = (TEMPLATES / source).read_text(encoding="utf-8")
    for key, value in (values or {}).items():
        text = text.replace("{{" + key + "}}", value)
    write_text_atomic(target, text)
    target.chmod(0o755 if executable else 0o644)


def model_record(folder: Path, file: str, entry: ArtifactEntry, **extra: Any) -> dict[str, Any]:
    """One model of bundle.json: the file a runtime loads (relative to the bundle), its
    artifact, sha256 and size (of every file of the model), I/O tensors, and extras."""
    path = folder / file
    size = sum(int(f["size"]) for f in entry.files) if path.name == "model.json" else None
    return {
        "file": file,
        "artifact": entry.id,
        "sha256": sha256_file(path),
        "size": size if size is not None else path.stat().st_size,
        "inputs": entry.inputs,
        "outputs": entry.outputs,
        **extra,
    }


def carry_model(
    manifest: Manifest,
    artifact_id: str,
    folder: Path,
    file: str,
    records: dict[str, dict[str, Any]],
    **extra: Any,
) -> ArtifactEntry | None:
    """Copy a model the bundle carries when it was exported (None when not) to `file`
    and add its record; a model that changed after export is refused."""
    entry = manifest.artifacts.get(artifact_id)
    if entry is None:
        return None
    manifest.check_files(entry)
    shutil.copyfile(manifest.artifact_path(entry, check=False), folder / file)
    records[artifact_id] = model_record(folder, file, entry, **extra)
    return entry


def bundle_record(
    folder: Path,
    target: str,
    manifest: Manifest,
    *,
    models: dict[str, dict[str, Any]],
    samples: int,
) -> dict[str, Any]:
    """bundle.json: what the bundle is, where it came from, its models and the sha256 of
    every file in it. The same fields for every target (docs/bundles.md)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "bundle.json")
    record: dict[str, Any] = {
        "schema": BUNDLE_SCHEMA,
        "target": target,
        "created": now_iso(),
        "cnnx": __version__,
        "source": {
            "artifacts": str(manifest.root.resolve()),
            "manifest_sha256": sha256_file(manifest.path),
        },
        "models": models,
        "samples": samples,
        "files": [
            {
                "path": p.relative_to(folder).as_posix(),
                "sha256": sha256_file(p),
                "size": p.stat().st_size,
            }
            for p in files
        ],
    }
    write_json_atomic(folder / "bundle.json", record)
    return record


class Stages:
    """A bundle's stages, reported as each starts (task "bundle"; the zip is the last)."""

    def __init__(
        self, progress: ProgressFn, target: str, names: list[str], *, make_zip: bool
    ) -> None:
        self.progress = progress
        self.target = target
        self.names = [*names, *(["zip"] if make_zip else [])]

    def start(self, name: str) -> None:
        done = self.names.index(name)
        self.progress(Step("bundle", f"{self.target}: {name}", done, len(self.names)))

    def finish(self) -> None:
        total = len(self.names)
        self.progress(Step("bundle", f"{self.target} bundle written", total, total))


@contextmanager
def writing_bundle(
    out: Path, *, force: bool, make_zip: bool, stages: Stages | None = None
) -> Iterator[Path]:
    """Yield a temporary folder; on success it becomes `out` (and `out`.zip).

    An existing bundle is never merged into: PathError unless force, and with force it
    is replaced whole (atomically), as is the zip.
    """
    out = Path(out)
    zip_path = out.with_suffix(".zip")
    if not force:
        for existing in (out, zip_path if make_zip else None):
            if existing is not None and existing.exists():
                raise PathError(
                    f"{existing} already exists; bundles are never merged into",
                    "remove it, choose another --out, or pass --force to replace it",
                )
    if out.exists() and not out.is_dir():
        raise PathError(f"{out} exists and is not a folder", "choose another --out")
    with ExitStack() as zip_step:
        # The zip is written in full beside its final name before the folder's swap and
        # renamed after it: a full disk fails before anything is in place, and a kill
        # after the swap leaves the new folder and the whole old zip.
        zip_tmp = zip_step.enter_context(replacing_file(zip_path)) if make_zip else None
        with staged_dir(out, replace=True) as tmp:
            tmp.chmod(0o755)  # a bundle is for copying around, not private like a temp folder
            yield tmp
            check_bundle_contents(tmp)
            if zip_tmp is not None:
                if stages is not None:
                    stages.start("zip")
                # Built from the finished staged folder, under the bundle's own name: the
                # zip holds exactly what `out` holds.
                archive = zip_bytes(bundle_members(tmp), top=out.name)
                with open(zip_tmp, "wb") as handle:
                    handle.write(archive)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.chmod(zip_tmp, 0o644)
    if stages is not None:
        stages.finish()
