"""`export(request) -> Manifest`: turn a model source into an artifacts folder.

One export is one transaction. The whole artifacts folder is rebuilt in a temporary
sibling (toolkit.atomic.staged_dir): artifacts that are not re-exported are hard-linked
in from the current folder, the new ones are written, the manifest last, and the folder
is swapped into place in one step. A killed export leaves the previous folder and its
manifest exactly as they were; the next export sweeps the leftovers.

What `--to` / `--quantize` / `--tfjs-quantize` select is read from the artifact table
(exporters/registry.py, `select`); the SavedModel, the reference, is always included.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import importlib.metadata
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from exporters import registry
from toolkit.atomic import ensure_writable_dir, private_dir, staged_dir, sweep_stale
from toolkit.errors import DataError, PathError, UsageError
from toolkit.exportdata import DataRequest
from toolkit.locate import ARTIFACTS_DIR, last_run
from toolkit.manifest import (
    FILENAME,
    ArtifactEntry,
    Manifest,
    describe_files,
    load_manifest,
    now_iso,
)
from toolkit.outputs import output_lock, refuse_overlap
from toolkit.progress import ProgressFn, Step, no_progress

if TYPE_CHECKING:
    from toolkit.exportdata import ExportData
    from toolkit.sources import Preprocessing, Source

TARGETS = registry.TARGETS
QUANTIZE = registry.QUANTIZE
TFJS_QUANTIZE = registry.TFJS_QUANTIZE
AUTO = "auto"  # --quantize auto: the fastest TFLite precision within budget (quantize_auto.py)
# Where --quantize auto runs its candidates: LiteRT here, or on the emulated Pi 4.
AUTO_TARGETS = ("litert", "rpi")

DEFAULT_CALIBRATION_SAMPLES = 300
DEFAULT_SAMPLES = 20  # evaluation images written as PNG for the web demo and the bundles


@dataclass(frozen=True)
class ExportRequest:
    # A run folder, .keras, .h5 or SavedModel; a Keras model object (toolkit.api); None:
    # the last run under ./runs.
    model: Path | Any = None
    to: str = "all"
    quantize: str | None = None  # None: every precision of the chosen formats
    tfjs_quantize: str | None = None
    out: Path | None = None  # None: ./artifacts
    io: str = "uint8"  # full-int8 input/output dtype: uint8 | int8 | float32
    calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES
    calibration_data: Path | None = None  # a folder of the user's own images
    data: Path | None = None  # the user's images: calibrate int8 and evaluate (split)
    eval_data: Path | None = None  # a folder of images that evaluate (verify, bench)
    output: str | None = None  # the classification head of a model with several outputs
    debug_quant: bool = False
    float_fallback: tuple[str, ...] = ()  # layer names / op types, or ("auto",) / ("auto:N",)
    force: bool = False  # replace a folder holding another model's artifacts
    samples: int = DEFAULT_SAMPLES
    preprocessing: Preprocessing | None = None
    labels_file: Path | tuple[str, ...] | None = None  # a file, or the names (toolkit.api)
    unsafe: bool = False
    seed: int = 0
    command: str = ""
    # --quantize auto: the budget (None: each artifact's verify tolerance) and the runtime
    # the candidates are verified and timed in.
    min_agreement: float | None = None
    max_accuracy_drop: float | None = None
    target: str = "litert"
    calibration_check: bool = True  # measure what half the calibration images would give
    wait: bool = False  # another export holds --out: wait for it instead of failing

    def __post_init__(self) -> None:
        if self.to not in TARGETS:
            raise UsageError(f"--to must be one of {', '.join(TARGETS)}, got {self.to!r}")
        if self.quantize == AUTO:
            self._check_auto()
            return
        if self.min_agreement is not None or self.max_accuracy_drop is not None:
            raise UsageError(
                "--min-agreement and --max-accuracy-drop are the budget of --quantize auto",
                "add --quantize auto, or check artifacts against limits with cnnx verify",
            )
        if self.quantize is not None and self.quantize not in QUANTIZE:
            raise UsageError(
                f"--quantize must be one of {', '.join(QUANTIZE)}, got {self.quantize!r}"
            )
        if self.tfjs_quantize is not None and self.tfjs_quantize not in TFJS_QUANTIZE:
            raise UsageError(
                f"--tfjs-quantize must be one of {', '.join(TFJS_QUANTIZE)}, "
                f"got {self.tfjs_quantize!r}"
            )
        if self.tfjs_quantize is not None and self.to not in ("tfjs", "all"):
            raise UsageError(f"--tfjs-quantize needs --to tfjs or all, got --to {self.to}")
        if self.quantize is not None and self.to == "savedmodel":
            raise UsageError("--quantize does not apply to --to savedmodel")
        if self.io not in ("uint8", "int8", "float32"):
            raise UsageError(f"--io must be uint8, int8 or float32, got {self.io!r}")
        if self.calibration_samples < 1:
            raise UsageError(
                f"--calibration-samples must be at least 1, got {self.calibration_samples}"
            )
        if self.samples < 0:
            raise UsageError(f"--samples must not be negative, got {self.samples}")
        wanted = select_artifacts(self.to, self.quantize, self.tfjs_quantize)
        wants_int8 = "tflite_int8" in wanted
        int8_only = {
            "--float-fallback": bool(self.float_fallback),
            "--debug-quant": self.debug_quant,
            "--calibration-data": self.calibration_data is not None and not _calibrated(wanted),
            "--io": self.io != "uint8",
        }
        self.data_request()  # validates the combination of data folders
        given = [flag for flag, used in int8_only.items() if used]
        if given and not wants_int8:
            raise UsageError(
                f"{', '.join(given)} apply to full int8 only",
                "add --to tflite --quantize int8",
            )
        fallback_auto(self.float_fallback)  # validates auto:N

    def _check_auto(self) -> None:
        if self.to != "tflite":
            raise UsageError(
                f"--quantize auto picks a TFLite precision, got --to {self.to}",
                "use --to tflite --quantize auto",
            )
        if self.float_fallback or self.tfjs_quantize is not None:
            raise UsageError(
                "--quantize auto chooses the precision and the float fallback itself",
                "drop --float-fallback / --tfjs-quantize, or pick --quantize int8",
            )
        if self.target not in AUTO_TARGETS:
            raise UsageError(
                f"--target must be one of {', '.join(AUTO_TARGETS)}, got {self.target!r}"
            )
        for name, value in (
            ("--min-agreement", self.min_agreement),
            ("--max-accuracy-drop", self.max_accuracy_drop),
        ):
            if value is not None and not 0 <= value <= 1:
                raise UsageError(f"{name} is a fraction of 1, got {value}")

    def data_request(self) -> DataRequest:
        return DataRequest(
            data=self.data,
            calibration_data=self.calibration_data,
            eval_data=self.eval_data,
            calibration_samples=self.calibration_samples,
            labels_file=self.labels_file,
            seed=self.seed,
        )

    @property
    def int8_asked(self) -> bool:
        """Was full int8 asked for by name (--quantize int8, or a flag only it takes), not
        only as part of a set (--to all, --to tflite)?"""
        int8_flags = (self.float_fallback, self.debug_quant, self.io != "uint8")
        return self.quantize in ("int8", "int16x8", AUTO) or any(int8_flags)


def select_artifacts(to: str, quantize: str | None, tfjs_quantize: str | None) -> list[str]:
    """Artifact ids an export request makes, in display order (exporters.registry.select).
    For --quantize auto: every candidate it may make."""
    if quantize == AUTO:
        return [registry.REFERENCE_ID, *(s.id for s in registry.ARTIFACTS if s.format == to)]
    return registry.select(to, quantize, tfjs_quantize)


def _calibrated(ids: list[str]) -> bool:
    """Does one of these artifacts need calibration images (full integer quantization)?"""
    return any(registry.get(artifact_id).calibrated for artifact_id in ids)


def fallback_auto(names: tuple[str, ...]) -> int:
    """How many worst layers `auto` / `auto:N` keeps in float (0 when not automatic)."""
    autos = [n for n in names if n == "auto" or n.startswith("auto:")]
    if not autos:
        return 0
    if len(names) != 1:
        raise UsageError("--float-fallback auto cannot be combined with layer names")
    from exporters.tflite import DEFAULT_AUTO_FALLBACK

    _, _, count = autos[0].partition(":")
    if not count:
        return DEFAULT_AUTO_FALLBACK
    if not count.isdigit() or int(count) < 1:
        raise UsageError(f"--float-fallback {autos[0]!r}: N must be a positive integer")
    return int(count)


# What builds the artifacts folder once the source is resolved and checked:
# (out, request, source, fingerprint, previous manifest, scratch folder, progress) -> the
# manifest.
Builder = Callable[
    [Path, "ExportRequest", "Source", str, "Manifest | None", Path, ProgressFn], Manifest
]


def export(
    request: ExportRequest, builder: Builder | None = None, *, progress: ProgressFn = no_progress
) -> Manifest:
    """Export the requested artifacts into request.out and return the new manifest.

    `builder` replaces the plain build: --quantize auto passes its search
    (toolkit.quantize_auto.export_auto), which builds candidates before the winner.

    Full int8 needs calibration images: without any (no --data, no --calibration-data,
    a source naming no dataset) it is skipped when it only came with a set of artifacts
    (`--to all`, `--to tflite`), and refused when asked for by name. The manifest's
    `export` record says what was made, what was skipped and why, and what cnnx found
    out about the source.
    `progress` hears of each artifact as it starts (task "export": the model's loading,
    then one unit an artifact) and of each calibration image (task "calibration").
    """
    from toolkit.quiet import silence_tensorflow
    from toolkit.sources import is_model_object

    for option, folder in _image_folders(request):
        if not Path(folder).is_dir():
            raise PathError(f"{option} {folder} is not a folder", "name a folder of images")
    out = Path(request.out) if request.out is not None else Path.cwd() / ARTIFACTS_DIR
    if not is_model_object(request.model):
        model = Path(request.model) if request.model is not None else last_run()
        # The manifest records the command as written, before the default model is filled in.
        request = replace(request, model=model, command=request.command or _command(request))
        _refuse_early(request, model, out)
    silence_tensorflow()
    from exporters.quiet import silenced

    with silenced():  # TF's C++ start-up lines ignore TF_CPP_MIN_LOG_LEVEL
        import tensorflow  # noqa: F401
    ensure_writable_dir(out.parent)
    with output_lock(out, wait=request.wait):
        return _export_locked(request, out, builder, progress)


def _refuse_early(request: ExportRequest, model: Path, out: Path) -> None:
    """What can be refused in milliseconds, before TensorFlow loads: a bad model path, an
    --out over what is read, a model holding code, an unreadable labels file, an image
    (data, calibration, evaluation) that is not a regular file or is over the pixel limit."""
    from toolkit.data.images import IMAGE_SUFFIXES, check_image
    from toolkit.sources import check_source, detect_format, read_labels
    from toolkit.walk import image_files

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
        for path in image_files(Path(folder), IMAGE_SUFFIXES, option):
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
    request: ExportRequest, out: Path, builder: Builder | None, progress: ProgressFn
) -> Manifest:
    previous = _previous(out, request.force)
    wanted = select_artifacts(request.to, request.quantize, request.tfjs_quantize)
    if any(registry.get(artifact_id).format == "tfjs" for artifact_id in wanted):
        from exporters.tfjs import load_converter

        load_converter()  # an optional extra: a missing one fails before the model loads

    from toolkit.exportdata import gather
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
            source, request.data_request(), calibrate=_calibrated(wanted), samples=request.samples
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
        if _calibrated(wanted) and found.calibration is None:
            needing = [a for a in wanted if _calibrated([a])]
            what = "full int8" if needing == ["tflite_int8"] else " and ".join(needing)
            reason = f"{what} needs calibration images and this export has none"
            if request.int8_asked:
                raise DataError(reason, found.calibration_hint)
            skipped = {a: f"{reason} ({found.calibration_hint})" for a in needing}
            wanted = [a for a in wanted if a not in skipped]
        if builder is not None:
            return builder(out, request, source, fingerprint, previous, scratch, progress)
        if request.quantize == AUTO:
            raise UsageError("--quantize auto runs through toolkit.quantize_auto.export_auto")
        return _build(
            out,
            request,
            source,
            fingerprint,
            wanted,
            previous,
            found=found,
            skipped=skipped,
            progress=progress,
        )


def _differs(previous: Manifest, source: Source, fingerprint: str) -> str:
    """What makes the folder's artifacts those of another model ('' when none)."""
    if previous.source.get("fingerprint") != fingerprint:
        return "another model"
    if previous.labels != list(source.labels):
        return f"the same weights with other labels ({', '.join(previous.labels[:3])}, ...)"
    if previous.input != source.input_spec:  # notes (where it came from) do not count
        return "the same weights with other preprocessing"
    return ""


def _build(
    out: Path,
    request: ExportRequest,
    source: Source,
    fingerprint: str,
    wanted: list[str],
    previous: Manifest | None,
    annotate: dict[str, dict[str, Any]] | None = None,
    *,
    found: ExportData | None = None,
    skipped: dict[str, str] | None = None,
    progress: ProgressFn = no_progress,
) -> Manifest:
    """One staged export of `wanted`; `annotate` adds details to some of their entries.
    `found` is the images export() gathered (gathered here when a builder calls)."""
    from exporters.base import ExportOptions
    from exporters.tflite import calibration_progress
    from toolkit.exportdata import calibration_warnings, gather, write_samples
    from toolkit.sources.heads import LOGITS, output_kind

    if found is None:
        found = gather(
            source, request.data_request(), calibrate=_calibrated(wanted), samples=request.samples
        )
    skipped = skipped or {}
    options = ExportOptions(io=request.io)
    if _calibrated(wanted):
        check_x, check_y = None, None
        if found.evaluation is not None:
            # Images apart from calibration that measure float fallback and calibration:
            # a run's validation split (then verified on its test split, which chose
            # nothing), or the evaluation images of --data / --eval-data.
            check_x, check_y = found.evaluation
        auto = fallback_auto(request.float_fallback)
        options = ExportOptions(
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
    kind = output_kind(_generated_outputs(source))
    notes = [*source.notes, *found.notes]
    if kind == LOGITS:
        notes.append(
            "the head gives logits (no softmax): verify scales its absolute tolerances to "
            "the range of the outputs and keeps top-1 agreement"
        )

    with staged_dir(out) as tmp:
        kept: dict[str, ArtifactEntry] = {}
        if previous is not None:
            kept = _link_previous(previous, tmp, replaced=set(wanted))
        entries = dict(kept)
        for done, artifact_id in enumerate(wanted):
            progress(Step("export", artifact_id, done, len(wanted)))
            spec = registry.get(artifact_id)
            calibrating = calibration_progress.set(_calibration_reporter(progress, artifact_id))
            try:
                result = spec.export(source.saved_model_dir, tmp, options)
            finally:
                calibration_progress.reset(calibrating)
            details = dict(result.details)
            warnings = list(result.warnings)
            if spec.calibrated:
                details["calibration"] = found.calibration_record
                warnings += calibration_warnings(found)
            if warnings:
                details["warnings"] = warnings
            details.update((annotate or {}).get(artifact_id, {}))
            details["exported"] = now_iso()
            details["command"] = request.command or _command(request)
            paths = result.extra_paths or (result.path,)
            files = [record for p in paths for record in describe_files(tmp, p)]
            entries[artifact_id] = ArtifactEntry(
                id=artifact_id,
                format=spec.format,
                precision=spec.precision,
                runtime=spec.runtime,
                path=result.path,
                files=files,
                inputs=result.inputs,
                outputs=result.outputs,
                tolerance=dict(spec.tolerance),
                details=details,
            )
        samples = previous.samples if previous is not None else []
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
            source={**source.origin, "fingerprint": fingerprint, "output": {"kind": kind}},
            eval_data=found.eval_data,
            versions=versions(),
            command=request.command or _command(request),
            created=now_iso(),
            samples=samples,
            export={
                "made": list(wanted),
                "skipped": skipped,
                "notes": notes,
                "warnings": list(source.warnings),
            },
        )
        manifest.save()
    return load_manifest(out)


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


# Graph bookkeeping that says nothing about what is computed (and carries generated names).
_PLUMBING_OPS = {
    "NoOp",
    "Identity",
    "ReadVariableOp",
    "Placeholder",
    "StatefulPartitionedCall",
    "PartitionedCall",
}
_NAMING_ATTRS = {"f", "shared_name", "container"}


def model_fingerprint(saved_model_dir: Path) -> str:
    """sha256 of what the model computes: its architecture and the weights it uses.

    - Weights: the values of the variables the serving function reads, each hashed and
      sorted, so the same weights saved by a run or converted from its .keras file give
      the same value. State the computation never reads (a Dropout or RandomFlip seed
      generator, which Keras 3 reseeds on every load; optimizer slots) does not count.
    - Architecture: every op of the serving function with its attributes and constants
      (a Rescaling factor, strides, an activation), as a sorted list; generated node and
      function names do not count.
    """
    from exporters.savedmodel import load_pivot

    pivot = load_pivot(saved_model_dir)
    digest = hashlib.sha256()
    digest.update(json.dumps([list(pivot.input_shape), pivot.num_classes]).encode())
    parts = []
    for variable in pivot.function.variables:
        value = np.asarray(variable.numpy())
        head = f"{value.dtype.str}{value.shape}".encode()
        parts.append(hashlib.sha256(head + value.tobytes()).hexdigest())
    for part in sorted(parts):
        digest.update(part.encode())
    for line in _architecture(pivot.function):
        digest.update(line.encode())
    return digest.hexdigest()


def _architecture(function: Any) -> list[str]:
    """The serving function's ops with hashed attributes, sorted (names left out)."""
    graph = function.graph.as_graph_def()
    nodes = [*graph.node, *(node for f in graph.library.function for node in f.node_def)]
    lines = []
    for node in nodes:
        if node.op in _PLUMBING_OPS:
            continue
        attrs = [
            f"{key}={hashlib.sha256(node.attr[key].SerializeToString(deterministic=True)).hexdigest()[:16]}"
            for key in sorted(node.attr)
            if not key.startswith("_") and key not in _NAMING_ATTRS
        ]
        lines.append(f"{node.op}|{','.join(attrs)}")
    return sorted(lines)


# --- provenance ------------------------------------------------------------------------


def versions() -> dict[str, str]:
    """Versions of what made the artifacts (read from package metadata, nothing imported)."""
    import platform

    from toolkit import __version__

    found = {"cnnx": __version__, "python": platform.python_version()}
    for name, dist in (
        ("tensorflow", "tensorflow"),
        ("tensorflowjs", "tensorflowjs"),
        ("ai_edge_litert", "ai-edge-litert"),
        ("keras", "keras"),
        ("numpy", "numpy"),
    ):
        try:
            found[name] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def _command(request: ExportRequest) -> str:
    parts = ["cnnx", "export"]
    if request.model is not None:
        parts += ["--model", str(request.model)]
    parts += ["--to", request.to]
    if request.quantize is not None:
        parts += ["--quantize", request.quantize]
    if request.tfjs_quantize is not None:
        parts += ["--tfjs-quantize", request.tfjs_quantize]
    if request.out is not None:
        parts += ["--out", str(request.out)]
    return " ".join(parts)
