"""`cnnx export --quantize auto`: the fastest artifact that stays within budget.

The target runtime decides the candidates. LiteRT (`--target litert`, the default of
`--to tflite`, or `rpi`: the emulated Pi 4's), from smallest and fastest to the float32
fallback: full int8, int8 with float fallback chosen by measurement, int16x8, dynamic
range, float16, float32. ONNX Runtime (`--target onnxruntime`, the default of `--to
onnx`): the static QDQ int8, float16 and float32 ONNX models. Each is converted into a
scratch folder, run in the target runtime (1 thread) on the validation split and
compared with the SavedModel under the budget (the artifact's own
verify tolerance, or `--min-agreement` / `--max-accuracy-drop` for all), and timed there
(p50 of single-image runs). The fastest that passes wins; p50 values within TIE of each
other are a tie and the smaller file wins. The winner alone is then exported into the
artifacts folder as an ordinary export would make it, and its manifest entry records the
decision: every candidate with its figures, the budget, why the winner won. The
trade-off table (`quantize_auto.md`) and plot (`quantize_auto.png`) go beside it, in
`tflite/` or `onnx/`. When nothing passes, nothing is written and VerificationFailed (exit 9)
carries the table.

Validation split, not test split: what chose the artifact must not be what `cnnx
verify` then judges it on. A source that names no dataset falls back to the eval set
verify would use.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from exporters import registry
from toolkit.core.progress import ProgressFn, Step, no_progress
from toolkit.errors import VerificationFailed
from toolkit.measure.evalset import EvalSet, load_eval_set

if TYPE_CHECKING:
    from toolkit.export.artifacts import BuildContext
    from toolkit.export.request import ExportRequest
    from toolkit.manifest import Manifest
    from toolkit.measure.matrix import Cell
    from toolkit.measure.rows import Speed
    from toolkit.runtimes import LoadedModel
    from toolkit.sources import Source

TIE = 0.05  # p50 within 5% of the fastest passing one: a tie, the smaller file wins
TIMED_RUNS = 100
WARMUP_RUNS = 5
# --target rpi: qemu runs LiteRT some 10-50 times slower than the host, so fewer images
# and runs; the agreement figures of this target are on the first PI_IMAGES images.
PI_IMAGES = 300
PI_RUNS = 30


class NothingPassed(VerificationFailed):
    """No candidate within budget (exit 9); carries the decision for the table."""

    def __init__(self, decision: Decision) -> None:
        from toolkit.autoquant.tradeoff import describe_budget

        best = max(
            (m for m in decision.candidates if m.agreement is not None),
            key=lambda m: m.agreement or 0.0,
            default=None,
        )
        closest = f" (best agreement: {best.spec.name} {best.agreement:.1%})" if best else ""
        super().__init__(
            f"--quantize auto: none of the {len(decision.candidates)} candidates stays within "
            f"the budget ({describe_budget(decision.budget)}){closest}; nothing was written",
            "loosen --min-agreement / --max-accuracy-drop, or retrain the model",
        )
        self.decision = decision


@dataclass(frozen=True)
class CandidateSpec:
    name: str
    artifact_id: str
    quantize: str  # the --quantize value that makes it
    fallback: bool = False  # int8 with --float-fallback auto


CANDIDATES = (
    CandidateSpec("int8", "tflite_int8", "int8"),
    CandidateSpec("int8+fallback", "tflite_int8", "int8", fallback=True),
    CandidateSpec("int16x8", "tflite_int16x8", "int16x8"),
    CandidateSpec("dynamic", "tflite_dynamic", "dynamic"),
    CandidateSpec("float16", "tflite_float16", "float16"),
    CandidateSpec("float32", "tflite_float32", "none"),
)
# --target onnxruntime: ONNX Runtime's own quantization tools on tf2onnx's graph.
ONNX_CANDIDATES = (
    CandidateSpec("int8", "onnx_int8", "int8"),
    CandidateSpec("float16", "onnx_float16", "float16"),
    CandidateSpec("float32", "onnx_float32", "none"),
)


def candidates_for(target: str) -> tuple[CandidateSpec, ...]:
    """The candidates a target runtime runs: the ONNX models, or the TFLite ones."""
    return ONNX_CANDIDATES if target == "onnxruntime" else CANDIDATES


@dataclass(frozen=True)
class Measured:
    """One candidate's figures in the target runtime."""

    spec: CandidateSpec
    status: str  # ok | drift | failed | same as int8
    size: int = 0
    p50_ms: float | None = None
    agreement: float | None = None
    accuracy_drop: float | None = None
    max_abs: float | None = None
    failed: tuple[str, ...] = ()  # the checks it failed, in words
    float_layers: tuple[str, ...] = ()  # int8+fallback: the layers kept in float

    @property
    def passed(self) -> bool:
        return self.status == "ok" and self.p50_ms is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidate": self.spec.name,
            "artifact": self.spec.artifact_id,
            "status": self.status,
            "passed": self.passed,
            "size": self.size,
            "p50_ms": self.p50_ms,
            "agreement": self.agreement,
            "accuracy_drop": self.accuracy_drop,
            "max_abs": self.max_abs,
            "failed_checks": list(self.failed),
            "float_layers": list(self.float_layers),
        }


@dataclass(frozen=True)
class Decision:
    candidates: tuple[Measured, ...]
    winner: Measured | None
    reason: str
    budget: dict[str, Any]
    target: str
    images: int
    on: str
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "winner": self.winner.spec.name if self.winner else None,
            "reason": self.reason,
            "budget": self.budget,
            "target": self.target,
            "format": "onnx" if self.target == "onnxruntime" else "tflite",
            "images": self.images if self.target != "rpi" else min(self.images, PI_IMAGES),
            "on": self.on,
            "tie_within": TIE,
            "timed_runs": TIMED_RUNS,
            "seconds": round(self.seconds, 1),
            "candidates": [m.to_dict() for m in self.candidates],
        }


def choose(measured: list[Measured]) -> tuple[Measured | None, str]:
    """The fastest passing candidate (ties within TIE: the smallest) and why it won."""
    passing = [m for m in measured if m.passed]
    if not passing:
        return None, "no candidate passed the budget"
    fastest = min(m.p50_ms or 0.0 for m in passing)
    tied = [m for m in passing if (m.p50_ms or 0.0) <= fastest * (1 + TIE)]
    winner = min(tied, key=lambda m: (m.size, m.p50_ms or 0.0))
    others = [m.spec.name for m in tied if m is not winner]
    if others:
        reason = (
            f"within budget and tied for fastest (p50 {winner.p50_ms:.3f} ms, within "
            f"{TIE:.0%} of {fastest:.3f} ms) with {', '.join(others)}; the smallest file"
        )
    else:
        reason = f"the fastest within budget (p50 {winner.p50_ms:.3f} ms)"
    failed = [m.spec.name for m in measured if not m.passed and m.status != "same as int8"]
    if failed:
        reason += f"; outside budget or not run: {', '.join(failed)}"
    return winner, reason


def budget_overrides(request: ExportRequest) -> dict[str, float]:
    given = {"min_agreement": request.min_agreement, "max_accuracy_drop": request.max_accuracy_drop}
    return {k: v for k, v in given.items() if v is not None}


def selection_set(manifest: Manifest, source: Source) -> EvalSet:
    """The validation split of the source's dataset, else what verify would use."""
    from toolkit.export.images import CHECK_IMAGES, run_dataset

    dataset = run_dataset(source)
    if dataset is None or not len(dataset.y_val):
        return load_eval_set(manifest)
    return EvalSet(
        images=source.input_spec.apply(dataset.x_val[:CHECK_IMAGES]).astype(np.float32),
        labels=dataset.y_val[:CHECK_IMAGES].astype(np.int64),
        class_names=list(manifest.labels),
        source="validation split",
    )


def speed_probe(model: LoadedModel, cell: Cell, evalset: EvalSet, load_ns: int) -> Speed:
    """The matrix probe of --quantize auto: batch-1 latency of the runtime's inference call
    (toolkit/measure/timing.py: quantizing the input and reading the output back are left out)."""
    from toolkit.measure.rows import Speed
    from toolkit.measure.timing import timing

    x1 = np.ascontiguousarray(evalset.images[:1])
    timed = timing(model, x1, TIMED_RUNS, WARMUP_RUNS, time.perf_counter_ns)
    return Speed(
        load_ms=load_ns / 1e6, latency=timed.latency, pre_ms=timed.pre_ms, post_ms=timed.post_ms
    )


def measure(
    manifest: Manifest,
    spec: CandidateSpec,
    evalset: EvalSet,
    reference: np.ndarray,
    budget: dict[str, float],
    target: str = "litert",
) -> Measured:
    """One cell of the run matrix: the candidate in the target runtime (litert or
    onnxruntime) x1, parity and latency (or the same on the emulated Pi for --target rpi)."""
    from toolkit.measure.matrix import Cell, run_cell
    from toolkit.measure.tolerances import ToleranceOverrides

    if target == "rpi":
        return measure_on_pi(manifest, (spec,), evalset, reference, budget)[0]
    entry = manifest.artifact(spec.artifact_id)
    cell = Cell(entry, target, {"threads": 1})
    overrides = (ToleranceOverrides(every=dict(budget)),)
    row = run_cell(manifest, cell, evalset, reference, overrides=overrides, probe=speed_probe)
    layers = tuple(entry.details.get("float_fallback", {}).get("nodes", ()))
    metrics, speed = row.metrics, row.speed
    if row.status not in ("ok", "drift") or metrics is None:
        return Measured(spec, "failed", entry.size, failed=(row.reason,))
    return Measured(
        spec,
        row.status,
        entry.size,
        speed.latency.p50 if speed is not None and speed.latency is not None else None,
        metrics.agreement,
        metrics.accuracy_drop,
        metrics.max_abs,
        tuple(c.describe() for c in row.failed_checks),
        layers,
    )


def measure_on_pi(
    manifest: Manifest,
    specs: tuple[CandidateSpec, ...],
    evalset: EvalSet,
    reference: np.ndarray,
    budget: dict[str, float],
) -> list[Measured]:
    """The candidates on the emulated Pi 4's LiteRT (toolkit/autoquant/pi_measure.py), 1
    thread, all in one guest run: starting Python and LiteRT under emulation costs seconds."""
    from toolkit.autoquant.pi_measure import run_on_emulated_pi
    from toolkit.errors import CnnxError
    from toolkit.measure.parity import check, compare
    from toolkit.measure.tolerances import ToleranceOverrides, tolerance_for

    entries = {spec.name: manifest.artifact(spec.artifact_id) for spec in specs}
    images = evalset.images[:PI_IMAGES]
    labels = evalset.labels[:PI_IMAGES] if evalset.labels is not None else None
    try:
        paths = {name: manifest.artifact_path(entry) for name, entry in entries.items()}
        ran = run_on_emulated_pi(paths, images, PI_RUNS, WARMUP_RUNS)
        metrics = {name: compare(ran[name][0], reference[:PI_IMAGES], labels) for name in ran}
    except CnnxError as error:
        if len(specs) > 1:  # a candidate the Pi cannot run fails alone: one run each
            return [measure_on_pi(manifest, (s,), evalset, reference, budget)[0] for s in specs]
        (spec,) = specs
        return [Measured(spec, "failed", entries[spec.name].size, failed=(error.one_line(),))]
    measured = []
    for spec in specs:
        entry, found = entries[spec.name], metrics[spec.name]
        checks = check(found, tolerance_for(entry, ToleranceOverrides(every=dict(budget))))
        failed = tuple(c.describe() for c in checks if not c.passed)
        measured.append(
            Measured(
                spec,
                "drift" if failed else "ok",
                entry.size,
                ran[spec.name][1],
                found.agreement,
                found.accuracy_drop,
                found.max_abs,
                failed,
                tuple(entry.details.get("float_fallback", {}).get("nodes", ())),
            )
        )
    return measured


def export(request: ExportRequest, progress: ProgressFn = no_progress) -> Manifest:
    """The export a request asks for: with `quantize="auto"` this search, otherwise the
    plain export. `cnnx export` and `api.export` both come through here.

    `progress` hears of each step of the search (task "auto": the candidates' build, each
    measurement, the winner's export) and of the exports within it (toolkit.export.artifacts).
    With `gpu_answer`, LiteRT's GPU accelerator is asked about each new .tflite and its
    answer is recorded in the manifest (toolkit.measure.gpu_answer.manifest_details)."""
    from toolkit.export.artifacts import export as export_artifacts
    from toolkit.export.request import AUTO
    from toolkit.measure.gpu_answer import manifest_details

    builder = auto_build if request.quantize == AUTO else None
    inspector = manifest_details if request.gpu_answer else None
    return export_artifacts(request, builder=builder, progress=progress, inspector=inspector)


def auto_build(context: BuildContext) -> Manifest:
    """Build, measure and choose; export the winner into context.out with the decision."""
    from toolkit.export.artifacts import build

    request, source, progress = context.request, context.source, context.progress
    target = request.auto_target
    candidates = candidates_for(target)
    started = time.perf_counter()
    steps = len(candidates) + 2  # build the candidates, measure each, export the winner
    progress(Step("auto", "building the candidates", 0, steps))
    budget = budget_overrides(request)
    plain_ids = [registry.REFERENCE_ID] + [c.artifact_id for c in candidates if not c.fallback]
    base = replace(
        request,
        quantize=None,
        float_fallback=(),
        samples=0,
        min_agreement=None,
        max_accuracy_drop=None,
        calibration_check=False,  # the winner's own export measures it
    )
    scratch = replace(context, request=base, previous=None, inspector=None)  # the winner's own
    plain = build(replace(scratch, out=context.scratch / "candidates"), plain_ids)
    evalset = selection_set(plain, source)
    from toolkit.measure.matrix import reference_outputs

    reference, model = reference_outputs(plain, evalset)
    model.close()
    on_pi: dict[str, Measured] = {}
    if target == "rpi":  # every plain candidate in one emulated run
        progress(Step("auto", "measuring the candidates on the emulated Pi", 1, steps))
        plain_specs = tuple(c for c in candidates if not c.fallback)
        on_pi = {
            m.spec.name: m for m in measure_on_pi(plain, plain_specs, evalset, reference, budget)
        }
    measured: list[Measured] = []
    for done, spec in enumerate(candidates, start=1):
        progress(Step("auto", f"measuring {spec.name}", done, steps))
        if spec.name in on_pi:
            measured.append(on_pi[spec.name])
            continue
        if not spec.fallback:
            measured.append(measure(plain, spec, evalset, reference, budget, target))
            continue
        if measured[0].passed:  # plain int8 passes: the fallback search keeps it as is
            measured.append(Measured(spec, "same as int8", measured[0].size))
            continue
        with_fallback = build(
            replace(
                scratch,
                out=context.scratch / "fallback",
                request=replace(base, quantize="int8", float_fallback=("auto",)),
            ),
            [registry.REFERENCE_ID, spec.artifact_id],
        )
        measured.append(measure(with_fallback, spec, evalset, reference, budget, target))
    winner, reason = choose(measured)
    shown_budget: dict[str, Any] = dict(budget)  # empty: each artifact's verify tolerance
    decision = Decision(
        tuple(measured),
        winner,
        reason,
        shown_budget,
        target,
        len(evalset),
        evalset.source,
        time.perf_counter() - started,
    )
    if winner is None:
        raise NothingPassed(decision)
    final = replace(
        base,
        samples=request.samples,
        calibration_check=request.calibration_check,
        quantize=winner.spec.quantize,
        float_fallback=("auto",) if winner.spec.fallback else (),
    )
    progress(Step("auto", f"exporting {winner.spec.name}", steps - 1, steps))
    manifest = build(
        replace(context, request=final),
        [registry.REFERENCE_ID, winner.spec.artifact_id],
        annotate={winner.spec.artifact_id: {"quantize_auto": decision.to_dict()}},
    )
    progress(Step("auto", f"chose {winner.spec.name}", steps, steps))
    from toolkit.autoquant.tradeoff import write_tradeoff

    write_tradeoff(manifest.root, decision.to_dict())
    return manifest
