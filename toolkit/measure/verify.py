"""The verify run: every artifact against the SavedModel, on the same preprocessed images.

The reference is the SavedModel run in TensorFlow on the CPU; each artifact runs in each
runtime that can run it through the run matrix (toolkit/measure/matrix.py), compared
(toolkit/measure/parity.py) and checked against its tolerance (toolkit/measure/tolerances.py) on the
eval set (toolkit/measure/evalset.py). Every failure becomes a row (none stops the others) so
the whole table can be printed before `VerifyReport.raise_for_failures()` raises.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.core.progress import ProgressFn, no_progress
from toolkit.errors import ArtifactError, RuntimeUnavailable, VerificationFailed
from toolkit.graph.artifact_policy import check_artifact_graphs
from toolkit.manifest import Manifest
from toolkit.measure.evalset import load_eval_set
from toolkit.measure.matrix import plan, run_matrix, runtime_options, selected_entries
from toolkit.measure.reference_kernels import Witness, kernel_witnesses, with_reference_kernels
from toolkit.measure.rows import Row
from toolkit.measure.tolerances import ToleranceOverrides

# The browser is opt-in: it is slow to start.
VERIFY_RUNTIMES = ("tf", "litert", "onnxruntime", "tfjs-node")


@dataclass(frozen=True)
class VerifyReport:
    rows: tuple[Row, ...]
    images: int
    data_source: str
    class_names: list[str]
    labelled: bool
    witnesses: tuple[Witness, ...] = ()  # --reference-kernels: where a drift comes from

    @property
    def drifted(self) -> list[Row]:
        return [r for r in self.rows if r.status == "drift"]

    @property
    def errors(self) -> list[Row]:
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
            "kernel_witness": [w.to_dict() for w in self.witnesses],
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
    reference_kernels: bool = False  # also run TFLite on LiteRT's reference kernels
    unsafe: bool = False  # run graphs the graph-op policy refuses (with a warning)


def verify(
    config: VerifyConfig, manifest: Manifest | None = None, progress: ProgressFn = no_progress
) -> VerifyReport:
    """Every selected artifact in every selected runtime against the SavedModel.

    `progress` hears of each row as it starts (task "verify"; toolkit.measure.matrix.run_matrix).
    """
    from toolkit.manifest import load_manifest

    manifest = manifest or load_manifest(config.artifacts_dir)
    entries = selected_entries(manifest, config.artifacts)
    check_artifact_graphs(manifest, entries, unsafe=config.unsafe)
    cells = plan(
        entries,
        config.runtimes,
        backends=config.backends,
        threads=(config.threads,),
        common=runtime_options(config.device, config.timeout, config.unsafe),
    )
    if config.reference_kernels:
        cells = with_reference_kernels(cells)
    result = run_matrix(
        manifest,
        cells,
        load_eval_set(manifest, config.data, config.limit),
        overrides=config.overrides,
        min_reference_accuracy=config.min_reference_accuracy,
        progress=progress,
        unsafe=config.unsafe,
    )
    evalset = result.evalset
    return VerifyReport(
        rows=result.rows,
        images=len(evalset),
        data_source=evalset.source,
        class_names=evalset.class_names,
        labelled=evalset.labels is not None,
        witnesses=tuple(kernel_witnesses(result.rows)),
    )
