"""The run matrix: artifacts x runtimes x options, each loaded, run on the same
preprocessed images and compared with the reference, one row per cell.

Verify and bench are both this loop. Bench passes a `Probe`, called between load and
the parity run, that adds timing, throughput and memory to the row (toolkit/bench/run.py);
verify passes none. Nothing here writes a file or prints, and no runtime's failure
escapes: it becomes a failed (or skipped) row, and the other cells go on.

    cells = plan(manifest, selected_entries(manifest, ()), ("tf", "litert"), threads=(1, 2))
    result = run_matrix(manifest, cells, load_eval_set(manifest))   # -> MatrixResult
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from exporters.registry import REFERENCE, display_rank
from toolkit.core.progress import ProgressFn, Step, no_progress
from toolkit.errors import ArtifactError, CnnxError
from toolkit.manifest import ArtifactEntry, Manifest
from toolkit.measure.evalset import EvalSet
from toolkit.measure.parity import Check, check, compare, reference_checks
from toolkit.measure.rows import Row, Speed
from toolkit.measure.timing import Timer
from toolkit.measure.tolerances import (
    REFERENCE_ID,
    ToleranceOverrides,
    for_outputs,
    output_scale,
    tolerance_for,
)
from toolkit.runtimes import (
    RUNTIMES,
    LoadedModel,
    PicturesFn,
    RuntimeSkipped,
    load,
    runtimes_for,
)

REFERENCE_RUNTIME = REFERENCE.runtimes[0]  # the SavedModel in TensorFlow, on the CPU


@dataclass(frozen=True)
class Cell:
    """One artifact in one runtime with its options (threads, backend, device, timeout)."""

    entry: ArtifactEntry
    runtime: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The row's label before the runtime loads (and when it cannot)."""
        return variant_label(self.runtime, self.options)

    @property
    def is_reference(self) -> bool:
        return self.entry.id == REFERENCE_ID and self.runtime == REFERENCE_RUNTIME


class Probe(Protocol):
    """Measures a loaded model before the parity run (bench's timing, memory, ...)."""

    def __call__(self, model: LoadedModel, cell: Cell, evalset: EvalSet, load_ns: int) -> Speed: ...


@dataclass(frozen=True)
class MatrixResult:
    rows: tuple[Row, ...]
    evalset: EvalSet
    reference: np.ndarray  # the SavedModel's probabilities on the eval set (CPU)


def selected_entries(manifest: Manifest, ids: tuple[str, ...]) -> list[ArtifactEntry]:
    """The named entries, or every entry of the manifest in the artifact table's order."""
    if not ids:
        return [manifest.artifacts[k] for k in sorted(manifest.artifacts, key=display_rank)]
    return [manifest.artifact(i) for i in ids]


def variants(
    runtime: str, backends: tuple[str, ...], threads: tuple[int | None, ...]
) -> list[dict[str, Any]]:
    """The option sets one runtime is run with (its backends or thread counts)."""
    spec = RUNTIMES[runtime]
    if spec.variant_option == "backend":
        chosen = (
            [b for b in backends if b in spec.supported_variants]
            if backends
            else list(spec.default_variants)
        )
        return [{"backend": b} for b in chosen]
    if spec.variant_option == "threads":
        return [{"threads": t} for t in threads]
    return [{}]


def variant_label(runtime: str, options: dict[str, Any]) -> str:
    """A row's label before the runtime loads (and when it cannot): 'tfjs-node/wasm x2'."""
    text = runtime
    if options.get("backend"):
        text += f"/{options['backend']}"
    if options.get("device", "cpu") != "cpu":
        text += f"@{options['device']}"
    if options.get("threads"):
        text += f" x{options['threads']}"
    return text


def runtime_options(device: str, timeout: float | None, unsafe: bool = False) -> dict[str, Any]:
    """The options every runtime of a run gets; a timeout only when one was asked for;
    `unsafe`: load graphs the graph-op policy refuses (with a warning)."""
    return {"device": device, "unsafe": unsafe, **({"timeout": timeout} if timeout else {})}


def plan(
    entries: Iterable[ArtifactEntry],
    runtimes: tuple[str, ...],
    *,
    backends: tuple[str, ...] = (),
    threads: tuple[int | None, ...] = (None,),
    common: dict[str, Any] | None = None,
) -> list[Cell]:
    """Every entry in every runtime (of `runtimes`) that runs it, in each variant."""
    return [
        Cell(entry, runtime, {**(common or {}), **variant})
        for entry in entries
        for runtime in runtimes_for(entry, runtimes)
        for variant in variants(runtime, backends, threads)
    ]


def recorded_accuracy(manifest: Manifest) -> float | None:
    """The test accuracy training recorded, when the manifest carries it."""
    for holder in (manifest.source.get("metrics"), manifest.source):
        if isinstance(holder, dict):
            value = holder.get("test_accuracy")
            if isinstance(value, int | float) and 0 <= value <= 1:
                return float(value)
    return None


def reference_extra(
    manifest: Manifest, evalset: EvalSet, min_accuracy: float | None
) -> Callable[[np.ndarray], list[Check]]:
    """The extra checks of the SavedModel's own row: its accuracy is sane (see reference_checks)."""

    def extra(outputs: np.ndarray) -> list[Check]:
        return reference_checks(
            outputs, evalset.labels, evalset.class_names, recorded_accuracy(manifest), min_accuracy
        )

    return extra


def reference_outputs(
    manifest: Manifest, evalset: EvalSet, **options: Any
) -> tuple[np.ndarray, LoadedModel]:
    """The SavedModel's outputs on the eval set (TensorFlow, CPU) and the loaded model."""
    if REFERENCE_ID not in manifest.artifacts:
        raise ArtifactError(
            f"{manifest.path} has no {REFERENCE_ID!r} artifact: nothing to compare against",
            "export with cnnx export --to all (the SavedModel is the reference)",
        )
    model = load(
        REFERENCE_RUNTIME, manifest, manifest.artifact(REFERENCE_ID), device="cpu", **options
    )
    try:
        return model.predict(evalset.images), model
    except BaseException:
        model.close()
        raise


def run_cell(
    manifest: Manifest,
    cell: Cell,
    evalset: EvalSet,
    reference: np.ndarray,
    *,
    overrides: tuple[ToleranceOverrides, ...] = (),
    extra_checks: Callable[[np.ndarray], list[Check]] | None = None,
    probe: Probe | None = None,
    timer: Timer = time.perf_counter_ns,
    pictures: PicturesFn = lambda done, total: None,
) -> Row:
    """Load, (probe,) predict on the eval set, compare, check. Never raises for a
    runtime's failure: it becomes a failed (or skipped) row. `pictures(done, total)`
    hears how far the prediction got."""
    started = time.perf_counter()
    entry = cell.entry
    tolerance = for_outputs(
        tolerance_for(entry, *overrides, runtime=cell.runtime), manifest, reference
    )
    row = Row(
        artifact=entry.id,
        runtime=cell.runtime,
        label=cell.label,
        precision=entry.precision,
        format=entry.format,
        size=entry.size,
        tolerance=tolerance,
    )
    model: LoadedModel | None = None
    try:
        start = timer()
        model = load(cell.runtime, manifest, entry, **cell.options)
        load_ns = timer() - start
        row = replace(row, label=model.info.label)
        speed = probe(model, cell, evalset, load_ns) if probe is not None else None
        outputs = model.predict_reporting(evalset.images, pictures)
        ties = output_scale(manifest, reference) if evalset.generated else None
        metrics = compare(outputs, reference, evalset.labels, ties)
        checks = check(metrics, tolerance) + (extra_checks(outputs) if extra_checks else [])
        return replace(
            row,
            status="ok" if all(c.passed for c in checks) else "drift",
            metrics=metrics,
            checks=tuple(checks),
            runtime_info=model.info.to_dict(),
            seconds=time.perf_counter() - started,
            speed=speed,
        )
    except RuntimeSkipped as error:
        return replace(row, status="skipped", reason=error.one_line())
    except CnnxError as error:
        return replace(
            row,
            status="failed",
            reason=error.one_line(),
            seconds=time.perf_counter() - started,
            error_code=error.exit_code,
        )
    finally:
        if model is not None:
            model.close()


def _pictures_step(progress: ProgressFn, label: str) -> PicturesFn:
    """The pictures of one row as steps of their own bar (task "pictures")."""
    return lambda done, total: progress(Step("pictures", label, done, total))


def run_matrix(
    manifest: Manifest,
    cells: Iterable[Cell],
    evalset: EvalSet,
    *,
    overrides: tuple[ToleranceOverrides, ...] = (),
    min_reference_accuracy: float | None = None,
    probe: Probe | None = None,
    timer: Timer = time.perf_counter_ns,
    progress: ProgressFn = no_progress,
    task: str = "verify",
    unsafe: bool = False,
) -> MatrixResult:
    """Every cell against the SavedModel's CPU outputs on `evalset`, in order.

    `progress` hears of each row as it starts (`task`, "ARTIFACT on RUNTIME", rows done)
    and once all are done, and of each row's pictures as they go (task "pictures").
    Raises only for what stops every cell (no reference, a reference that cannot run).
    """
    cells = list(cells)
    progress(Step(task, f"reference outputs ({REFERENCE_RUNTIME})", 0, len(cells)))
    reference, model = reference_outputs(manifest, evalset, unsafe=unsafe)
    model.close()
    extra = reference_extra(manifest, evalset, min_reference_accuracy)
    rows = []
    for done, cell in enumerate(cells):
        label = f"{cell.entry.id} on {cell.label}"
        progress(Step(task, label, done, len(cells)))
        rows.append(
            run_cell(
                manifest,
                cell,
                evalset,
                reference,
                overrides=overrides,
                extra_checks=extra if cell.is_reference else None,
                probe=probe,
                timer=timer,
                pictures=_pictures_step(progress, label),
            )
        )
    progress(Step(task, f"{len(cells)} rows", len(cells), len(cells)))
    return MatrixResult(tuple(rows), evalset, reference)
