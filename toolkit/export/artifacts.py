"""`export(request) -> Manifest`: turn a model source into an artifacts folder.

One export is one transaction. The whole artifacts folder is rebuilt in a temporary
sibling (toolkit.core.atomic.staged_dir): artifacts that are not re-exported are hard-linked
in from the current folder, the new ones are written, the manifest last, and the folder
is swapped into place in one step. A killed export leaves the previous folder and its
manifest exactly as they were; the next export sweeps the leftovers.

What is asked is an `ExportRequest` (toolkit/export/request.py: flags checked, the
artifacts `--to` / `--quantize` select); whether the folder already holds this model is
decided by its fingerprint (toolkit/export/fingerprint.py). The SavedModel, the reference, is
always included.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from exporters import registry
from toolkit.core import provenance
from toolkit.core.atomic import ensure_writable_dir, private_dir, staged_dir, sweep_stale
from toolkit.core.locate import ARTIFACTS_DIR, last_run
from toolkit.core.progress import ProgressFn, Step, no_progress
from toolkit.core.writelock import output_lock, refuse_overlap
from toolkit.errors import DataError, PathError, UsageError
from toolkit.export.fingerprint import model_fingerprint
from toolkit.export.request import (
    AUTO,
    ExportRequest,
    calibrated,
    command_line,
    fallback_auto,
    select_artifacts,
)
from toolkit.manifest import (
    FILENAME,
    ArtifactEntry,
    Manifest,
    describe_files,
    load_manifest,
)

if TYPE_CHECKING:
    from exporters.base import ExportOptions
    from toolkit.export.images import ExportData
    from toolkit.sources import Source


@dataclass(frozen=True)
class BuildContext:
    """What a build of the artifacts folder works from, once the source is resolved and
    checked: where it writes (`out`, replacing `previous`), what was asked, the source and
    its fingerprint, a scratch folder beside `out`, and who hears of progress."""

    out: Path
    request: ExportRequest
    source: Source
    fingerprint: str
    previous: Manifest | None
    scratch: Path
    progress: ProgressFn = no_progress
    inspector: Inspector | None = None


# What builds the artifacts folder from a context: `build` (the plain export) or
# --quantize auto's search (toolkit.autoquant.search.auto_build).
Builder = Callable[[BuildContext], Manifest]
# What a caller from a higher stage adds to the new entries from their staged files,
# before the manifest is written: (new entries, staged folder) -> {id: details}.
# `--gpu-answer` passes toolkit.measure.gpu_answer.manifest_details.
Inspector = Callable[[dict[str, ArtifactEntry], Path], dict[str, dict[str, Any]]]


def export(
    request: ExportRequest,
    builder: Builder | None = None,
    *,
    progress: ProgressFn = no_progress,
    inspector: Inspector | None = None,
) -> Manifest:
    """Export the requested artifacts into request.out and return the new manifest.

    `builder` replaces the plain build: --quantize auto passes its search
    (toolkit.autoquant.search.auto_build), which builds candidates before the winner;
    `toolkit.autoquant.search.export` picks it for such a request.

    Full int8 needs calibration images: without any (no --data, no --calibration-data,
    a source naming no dataset) it is skipped when it only came with a set of artifacts
    (`--to all`, `--to tflite`), and refused when asked for by name. The manifest's
    `export` record says what was made, what was skipped and why, and what cnnx found
    out about the source.
    `progress` hears of each artifact as it starts (task "export": the model's loading,
    then one unit an artifact) and of each calibration image (task "calibration").
    `inspector` adds details to the new entries inside the same transaction
    (`request.gpu_answer` needs one: toolkit.autoquant.search.export passes it).
    """
    from toolkit.core.quiet import silence_tensorflow
    from toolkit.sources import is_model_object

    if request.quantize == AUTO and builder is None:
        raise UsageError(
            "quantize 'auto' is a search over builds, not one build",
            "call toolkit.autoquant.search.export, which runs it (as cnnx export does)",
        )
    if request.gpu_answer and inspector is None:
        raise UsageError(
            "gpu_answer asks LiteRT's GPU accelerator, which this stage cannot reach",
            "call toolkit.autoquant.search.export, which asks it (as cnnx export does)",
        )
    for option, folder in _image_folders(request):
        if not Path(folder).is_dir():
            raise PathError(f"{option} {folder} is not a folder", "name a folder of images")
    out = Path(request.out) if request.out is not None else Path.cwd() / ARTIFACTS_DIR
    if not is_model_object(request.model):
        model = Path(request.model) if request.model is not None else last_run()
        # The manifest records the command as written, before the default model is filled in.
        request = replace(request, model=model, command=request.command or command_line(request))
        _refuse_early(request, model, out)
    silence_tensorflow()
    from exporters.quiet import silenced

    with silenced():  # TF's C++ start-up lines ignore TF_CPP_MIN_LOG_LEVEL
        import tensorflow  # noqa: F401
    ensure_writable_dir(out.parent)
    with output_lock(out, wait=request.wait):
        return _export_locked(request, out, builder, progress, inspector)


def _refuse_early(request: ExportRequest, model: Path, out: Path) -> None:
    """What can be refused in milliseconds, before TensorFlow loads: a bad model path, an
    --out over what is read, a model holding code, an unreadable labels file, an image
    (data, calibration, evaluation) that is not a regular file or is over the pixel limit."""
    from toolkit.core.walk import picture_files
    from toolkit.data.images import IMAGE_SUFFIXES, check_image, is_picture
    from toolkit.sources import check_source, detect_format, read_labels

    kind = detect_format(model)
    reads = {
        "source model": model,
        "labels file": request.labels_file if isinstance(request.labels_file, Path) else None,
        **{f"{option} folder": folder for option, folder in _image_folders(request)},
    }
    refuse_overlap(out, reads)
    check_source(model, kind, unsafe=request.unsafe)
    if isinstance(request.labels_file, Path):
        read_labels(request.labels_file, None)  # the count is checked once the model is read
    for option, folder in _image_folders(request):
        # Each image's header (a regular file, under the pixel limit), not its pixels.
        for path in picture_files(Path(folder), IMAGE_SUFFIXES, option, is_picture).files:
            check_image(path)


def _image_folders(request: ExportRequest) -> list[tuple[str, Path]]:
    """The image folders an export reads, by the option that names them."""
    given = (
        ("--data", request.data),
        ("--calibration-data", request.calibration_data),
        ("--eval-data", request.eval_data),
    )
    return [(option, Path(folder)) for option, folder in given if folder is not None]


def _export_locked(
    request: ExportRequest,
    out: Path,
    builder: Builder | None,
    progress: ProgressFn,
    inspector: Inspector | None,
) -> Manifest:
    previous = _previous(out, request.force)
    wanted = select_artifacts(request.to, request.quantize, request.tfjs_quantize)
    if any(registry.get(artifact_id).format == "tfjs" for artifact_id in wanted):
        from exporters.tfjs import load_converter

        load_converter()  # an optional extra: a missing one fails before the model loads

    from toolkit.export.images import gather
    from toolkit.sources import resolve_source

    progress(Step("export", "loading the model", 0, len(wanted)))
    with _scratch(out) as scratch:
        source = resolve_source(
            request.model,
            out_dir=scratch,
            preprocessing=request.preprocessing,
            labels_file=request.labels_file,
            unsafe=request.unsafe,
            output=request.output,
        )
        found = gather(
            source, request.data_request(), calibrate=calibrated(wanted), samples=request.samples
        )
        source = replace(source, labels=found.labels)
        fingerprint = model_fingerprint(source.saved_model_dir)
        if previous is not None:
            difference = _differs(previous, source, fingerprint)
            if difference:
                # _previous returned None already when --force was given.
                raise PathError(
                    f"{out} holds artifacts of {difference} "
                    f"({previous.source.get('path') or 'unknown source'})",
                    "pass --force to replace them, or choose another --out",
                )
            if found.eval_data is None and previous.eval_data is not None:
                # Same weights, labels and preprocessing from a file that names no data
                # (the run's .keras): the images on record still apply.
                found.eval_data = previous.eval_data
        skipped: dict[str, str] = {}
        if calibrated(wanted) and found.calibration is None:
            needing = [a for a in wanted if calibrated([a])]
            what = "full int8" if needing == ["tflite_int8"] else " and ".join(needing)
            reason = f"{what} needs calibration images and this export has none"
            if request.int8_asked:
                raise DataError(reason, found.calibration_hint)
            skipped = {a: f"{reason} ({found.calibration_hint})" for a in needing}
            wanted = [a for a in wanted if a not in skipped]
        context = BuildContext(
            out, request, source, fingerprint, previous, scratch, progress, inspector
        )
        if builder is not None:
            return builder(context)
        return build(context, wanted, found=found, skipped=skipped)


def _differs(previous: Manifest, source: Source, fingerprint: str) -> str:
    """What makes the folder's artifacts those of another model ('' when none)."""
    if previous.source.get("fingerprint") != fingerprint:
        return "another model"
    if previous.labels != list(source.labels):
        return f"the same weights with other labels ({', '.join(previous.labels[:3])}, ...)"
    if previous.input != source.input_spec:  # notes (where it came from) do not count
        return "the same weights with other preprocessing"
    return ""


def build(
    context: BuildContext,
    wanted: list[str],
    annotate: dict[str, dict[str, Any]] | None = None,
    *,
    found: ExportData | None = None,
    skipped: dict[str, str] | None = None,
) -> Manifest:
    """One staged export of `wanted` into context.out; `annotate` adds details to some of
    their entries. `found` is the images export() gathered (gathered here when a builder
    calls), `skipped` the artifacts it left out and why."""
    from toolkit.export.images import gather, write_samples

    request, source = context.request, context.source
    if found is None:
        found = gather(
            source, request.data_request(), calibrate=calibrated(wanted), samples=request.samples
        )
    output, notes = _head(source, found)
    options = _options(request, found, wanted)
    progress = context.progress
    with staged_dir(context.out) as tmp:
        entries: dict[str, ArtifactEntry] = {}
        if context.previous is not None:
            entries = _link_previous(context.previous, tmp, replaced=set(wanted))
        for done, artifact_id in enumerate(wanted):
            progress(Step("export", artifact_id, done, len(wanted)))
            extra = (annotate or {}).get(artifact_id, {})
            entries[artifact_id] = _export_one(artifact_id, tmp, context, options, found, extra)
        if context.inspector is not None:
            progress(Step("export", "inspecting", len(wanted), len(wanted)))
            new = {artifact_id: entries[artifact_id] for artifact_id in wanted}
            for artifact_id, more in context.inspector(new, tmp).items():
                entry = entries[artifact_id]
                entries[artifact_id] = replace(entry, details={**entry.details, **more})
        samples = context.previous.samples if context.previous is not None else []
        fresh_data = request.data is not None or request.eval_data is not None
        if (fresh_data or not samples) and request.samples and found.samples is not None:
            if fresh_data and samples:
                shutil.rmtree(tmp / "samples", ignore_errors=True)
            samples = write_samples(tmp, *found.samples, list(source.labels))
        progress(Step("export", "manifest", len(wanted), len(wanted)))
        manifest = Manifest(
            root=tmp,
            input=source.input_spec,
            labels=list(source.labels),
            artifacts=entries,
            source={**source.origin, "fingerprint": context.fingerprint, "output": output},
            eval_data=found.eval_data,
            versions=versions(),
            command=request.command or command_line(request),
            created=provenance.now_iso(),
            samples=samples,
            export={
                "made": list(wanted),
                "skipped": skipped or {},
                "notes": [*source.notes, *found.notes, *notes],
                "warnings": list(source.warnings),
            },
        )
        manifest.save()
    return load_manifest(context.out)


def _options(request: ExportRequest, found: ExportData, wanted: list[str]) -> ExportOptions:
    """The exporters' options: the I/O type, and for a calibrated artifact its images,
    float fallback and the checks of calibration."""
    from exporters.base import ExportOptions

    if not calibrated(wanted):
        return ExportOptions(io=request.io)
    check_x, check_y = None, None
    if found.evaluation is not None:
        # Images apart from calibration that measure float fallback and calibration:
        # a run's validation split (then verified on its test split, which chose
        # nothing), or the evaluation images of --data / --eval-data.
        check_x, check_y = found.evaluation
    auto = fallback_auto(request.float_fallback)
    return ExportOptions(
        calibration=found.calibration,
        io=request.io,
        float_fallback=() if auto else tuple(request.float_fallback),
        float_fallback_auto=auto,
        debug_quant=request.debug_quant,
        check_images=check_x,
        check_labels=check_y,
        check_on=found.check_on,
        calibration_check=request.calibration_check,
    )


def _head(source: Source, found: ExportData) -> tuple[dict[str, Any], list[str]]:
    """The head on record (`source.output`: its kind as measured on the pivot, what the
    model's head is, and its one unit when it had one), and the note it calls for."""
    from toolkit.sources.heads import HEADS, head_note, output_kind

    kind = output_kind(_generated_outputs(source))
    output: dict[str, Any] = {"kind": kind, "head": HEADS[source.binary or kind]}
    if source.binary:
        output["units"] = 1  # the model's own; the pivot and every artifact give two
    note = head_note(kind, source.binary)
    return output, [note] if note else []


def _export_one(
    artifact_id: str,
    tmp: Path,
    context: BuildContext,
    options: ExportOptions,
    found: ExportData,
    extra: dict[str, Any],
) -> ArtifactEntry:
    """One artifact converted into the staged folder, and its manifest entry (`extra`
    added to its details)."""
    from exporters.tflite import calibration_progress
    from toolkit.export.images import calibration_warnings

    spec = registry.get(artifact_id)
    reporter = _calibration_reporter(context.progress, artifact_id)
    calibrating = calibration_progress.set(reporter)
    try:
        result = spec.export(context.source.saved_model_dir, tmp, options)
    finally:
        calibration_progress.reset(calibrating)
    details = dict(result.details)
    warnings = list(result.warnings)
    if spec.calibrated:
        details["calibration"] = found.calibration_record
        warnings += calibration_warnings(found)
    if warnings:
        details["warnings"] = warnings
    details.update(extra)
    details["exported"] = provenance.now_iso()
    details["command"] = context.request.command or command_line(context.request)
    paths = result.extra_paths or (result.path,)
    return ArtifactEntry(
        id=artifact_id,
        format=spec.format,
        precision=spec.precision,
        runtime=spec.runtime,
        path=result.path,
        files=[record for p in paths for record in describe_files(tmp, p)],
        inputs=result.inputs,
        outputs=result.outputs,
        tolerance=dict(spec.tolerance),
        details=details,
    )


def _generated_outputs(source: Source) -> np.ndarray:
    """The pivot's outputs on generated pictures: what kind of head it is."""
    from exporters.savedmodel import load_pivot, predict
    from toolkit.data.generated import generated_pixels

    pixels = generated_pixels(*source.input_spec.shape, count=8)
    return predict(load_pivot(source.saved_model_dir), source.input_spec.apply(pixels))


def _calibration_reporter(progress: ProgressFn, artifact_id: str) -> Callable[[int, int], None]:
    def report(read: int, total: int) -> None:
        progress(Step("calibration", artifact_id, read, total))

    return report


# --- the folder being replaced ---------------------------------------------------------


def _previous(out: Path, force: bool) -> Manifest | None:
    """The manifest already at `out`, or None when there is nothing to keep."""
    if out.exists() and not out.is_dir():
        raise PathError(f"--out {out} is a file, not a folder", "choose another --out")
    if not out.is_dir():
        return None
    if not (out / FILENAME).is_file():
        if any(out.iterdir()) and not force:
            raise PathError(
                f"--out {out} is not empty and holds no {FILENAME}",
                "choose an empty or new folder, or pass --force to replace it",
            )
        return None
    if force:
        return None
    return load_manifest(out)


def _link_previous(previous: Manifest, tmp: Path, replaced: set[str]) -> dict[str, ArtifactEntry]:
    """Bring every file of the old folder that is not replaced into `tmp` (hard links)."""
    dropped: set[Path] = set()
    dropped_dirs: list[Path] = []
    for artifact_id in replaced & set(previous.artifacts):
        entry = previous.artifacts[artifact_id]
        dropped.update(previous.root / record["path"] for record in entry.files)
        if (previous.root / entry.path).is_dir():
            dropped_dirs.append(previous.root / entry.path)
    for path in sorted(previous.root.rglob("*")):
        if path.is_dir() or (path.name == FILENAME and path.parent == previous.root):
            continue
        if path in dropped or any(path.is_relative_to(d) for d in dropped_dirs):
            continue
        target = tmp / path.relative_to(previous.root)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError as error:
            if error.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
            shutil.copy2(path, target)
    return {k: v for k, v in previous.artifacts.items() if k not in replaced}


@contextlib.contextmanager
def _scratch(out: Path) -> Iterator[Path]:
    """A private folder beside `out` for a converted source model; removed afterwards.

    Its name carries this process's pid (`.OUT.src-PID-…`), so the next export sweeps it
    if this one is killed before it can remove it.
    """
    sweep_stale(out)
    with private_dir(out, "src") as folder:
        yield folder


# --- provenance ------------------------------------------------------------------------


def versions() -> dict[str, str]:
    """Versions of what made the artifacts (read from package metadata, nothing imported)."""
    return provenance.versions(
        ("tensorflow", "tensorflowjs", "ai-edge-litert", "tf2onnx", "onnxruntime", "keras", "numpy")
    )
