"""The verify run: every artifact against the SavedModel, on the same preprocessed images.

The reference is the SavedModel run in TensorFlow on the CPU; each artifact runs in each
runtime that can run it, is compared (toolkit/parity.py) and checked against its
tolerance (toolkit/tolerances.py) on the eval set (toolkit/evalset.py). Every failure
becomes a row (none stops the others) so the whole table can be printed before
`VerifyReport.raise_for_failures()` raises.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.errors import ArtifactError, CnnxError, RuntimeUnavailable, VerificationFailed
from toolkit.evalset import EvalSet, load_eval_set
from toolkit.manifest import ArtifactEntry, Manifest
from toolkit.parity import Check, Metrics, check, compare, reference_checks
from toolkit.runtimes import RUNTIMES, LoadedModel, RuntimeSkipped, load, runtimes_for
from toolkit.tolerances import REFERENCE_ID, Tolerance, ToleranceOverrides, tolerance_for

REFERENCE_RUNTIME = "tf"
VERIFY_RUNTIMES = ("tf", "litert", "tfjs-node")  # the browser is opt-in: it is slow to start


@dataclass(frozen=True)
class ParityRow:
    """One artifact in one runtime configuration."""

    artifact: str
    runtime: str  # registry name
    label: str  # e.g. "litert/xnnpack x2"
    precision: str
    format: str
    status: str  # ok | drift | failed (the runtime could not run it) | skipped
    reason: str = ""
    metrics: Metrics | None = None
    checks: tuple[Check, ...] = ()
    tolerance: Tolerance | None = None
    runtime_info: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    error_code: int = 0  # exit code of the error behind a failed row (7: the artifact itself)

    @property
    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "artifact": self.artifact,
            "runtime": self.runtime,
            "label": self.label,
            "precision": self.precision,
            "format": self.format,
            "status": self.status,
            "reason": self.reason,
            "metrics": self.metrics.to_dict() if self.metrics else None,
            "checks": [c.to_dict() for c in self.checks],
            "tolerance": self.tolerance.to_dict() if self.tolerance else None,
            "runtime_info": self.runtime_info,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class VerifyReport:
    rows: tuple[ParityRow, ...]
    images: int
    data_source: str
    class_names: list[str]
    labelled: bool

    @property
    def drifted(self) -> list[ParityRow]:
        return [r for r in self.rows if r.status == "drift"]

    @property
    def errors(self) -> list[ParityRow]:
        return [r for r in self.rows if r.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.drifted and not self.errors

    def failure_summary(self) -> str:
        parts = [
            f"{r.artifact} on {r.label}: " + ", ".join(c.describe() for c in r.failed_checks)
            for r in self.drifted
        ]
        parts += [f"{r.artifact} on {r.label}: {r.reason}" for r in self.errors]
        return "; ".join(parts)

    def raise_for_failures(self) -> None:
        """VerificationFailed (exit 9) naming each drifted artifact and metric; a runtime
        that could not run with nothing drifted is RuntimeUnavailable (exit 8)."""
        if self.drifted:
            names = sorted({r.artifact for r in self.drifted})
            raise VerificationFailed(
                f"{len(names)} artifact(s) drifted past tolerance: {self.failure_summary()}",
                "see docs/verify.md to read the metrics or loosen a tolerance",
            )
        if self.errors and all(r.error_code == ArtifactError.exit_code for r in self.errors):
            # A missing file or a hash mismatch is the artifact's fault, not the runtime's.
            raise ArtifactError(
                f"{len(self.errors)} artifact(s) damaged: {self.failure_summary()}",
                "re-export them with cnnx export",
            )
        if self.errors:
            raise RuntimeUnavailable(
                f"{len(self.errors)} runtime row(s) could not run: {self.failure_summary()}",
                "fix the runtime or leave it out with --runtimes",
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "data": self.data_source,
            "labelled": self.labelled,
            "classes": self.class_names,
            "ok": self.ok,
            "rows": [r.to_dict() for r in self.rows],
        }


@dataclass(frozen=True)
class VerifyConfig:
    artifacts_dir: Path
    artifacts: tuple[str, ...] = ()  # empty: every artifact in the manifest
    runtimes: tuple[str, ...] = VERIFY_RUNTIMES
    data: Path | None = None
    limit: int | None = None
    device: str = "cpu"
    backends: tuple[str, ...] = ()  # TF.js backends; empty: each runtime's defaults
    threads: int | None = None  # LiteRT threads for parity (results do not depend on it)
    overrides: tuple[ToleranceOverrides, ...] = ()
    min_reference_accuracy: float | None = None
    timeout: float | None = None


def selected_entries(manifest: Manifest, ids: tuple[str, ...]) -> list[ArtifactEntry]:
    """The named entries, or every entry of the manifest in the artifact table's order."""
    from exporters.registry import display_rank

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


def runtime_options(device: str, timeout: float | None) -> dict[str, Any]:
    """The options every runtime of a run gets; a timeout only when one was asked for."""
    return {"device": device, **({"timeout": timeout} if timeout else {})}


def reference_extra(
    manifest: Manifest, evalset: EvalSet, min_accuracy: float | None
) -> Callable[[np.ndarray], list[Check]]:
    """The extra checks of the SavedModel's own row: its accuracy is sane (see reference_checks)."""

    def extra(outputs: np.ndarray) -> list[Check]:
        return reference_checks(
            outputs, evalset.labels, evalset.class_names, recorded_accuracy(manifest), min_accuracy
        )

    return extra


def recorded_accuracy(manifest: Manifest) -> float | None:
    """The test accuracy training recorded, when the manifest carries it."""
    for holder in (manifest.source.get("metrics"), manifest.source):
        if isinstance(holder, dict):
            value = holder.get("test_accuracy")
            if isinstance(value, int | float) and 0 <= value <= 1:
                return float(value)
    return None


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


def run_parity(
    manifest: Manifest,
    entry: ArtifactEntry,
    runtime: str,
    options: dict[str, Any],
    evalset: EvalSet,
    reference: np.ndarray,
    tolerance: Tolerance,
    extra_checks: Callable[[np.ndarray], list[Check]] | None = None,
) -> ParityRow:
    """Load, predict on the eval set, compare. Never raises for a runtime's failure:
    it becomes an error (or skipped) row."""
    start = time.perf_counter()
    base: dict[str, Any] = {
        "artifact": entry.id,
        "runtime": runtime,
        "precision": entry.precision,
        "format": entry.format,
    }
    label = variant_label(runtime, options)
    model: LoadedModel | None = None
    try:
        model = load(runtime, manifest, entry, **options)
        label = model.info.label
        outputs = model.predict(evalset.images)
        metrics = compare(outputs, reference, evalset.labels)
        checks = check(metrics, tolerance) + (extra_checks(outputs) if extra_checks else [])
        status = "ok" if all(c.passed for c in checks) else "drift"
        info = model.info.to_dict()
        return ParityRow(
            **base,
            label=label,
            status=status,
            metrics=metrics,
            checks=tuple(checks),
            tolerance=tolerance,
            runtime_info=info,
            seconds=time.perf_counter() - start,
        )
    except RuntimeSkipped as error:
        return ParityRow(
            **base, label=label, status="skipped", reason=error.one_line(), tolerance=tolerance
        )
    except CnnxError as error:
        return ParityRow(
            **base,
            label=label,
            status="failed",
            reason=error.one_line(),
            tolerance=tolerance,
            seconds=time.perf_counter() - start,
            error_code=error.exit_code,
        )
    finally:
        if model is not None:
            model.close()


def verify(config: VerifyConfig, manifest: Manifest | None = None) -> VerifyReport:
    """Every selected artifact in every selected runtime against the SavedModel."""
    from toolkit.manifest import load_manifest

    manifest = manifest or load_manifest(config.artifacts_dir)
    entries = selected_entries(manifest, config.artifacts)
    evalset = load_eval_set(manifest, config.data, config.limit)
    reference, ref_model = reference_outputs(manifest, evalset)
    ref_model.close()
    common = runtime_options(config.device, config.timeout)
    rows: list[ParityRow] = []
    for entry in entries:
        tolerance = tolerance_for(entry, *config.overrides)
        for runtime in runtimes_for(entry, config.runtimes):
            extra = None
            if entry.id == REFERENCE_ID and runtime == REFERENCE_RUNTIME:
                extra = reference_extra(manifest, evalset, config.min_reference_accuracy)
            for variant in variants(runtime, config.backends, (config.threads,)):
                rows.append(
                    run_parity(
                        manifest,
                        entry,
                        runtime,
                        {**common, **variant},
                        evalset,
                        reference,
                        tolerance,
                        extra,
                    )
                )
    return VerifyReport(
        rows=tuple(rows),
        images=len(evalset),
        data_source=evalset.source,
        class_names=evalset.class_names,
        labelled=evalset.labels is not None,
    )
