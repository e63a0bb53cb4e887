"""Bench: size, load, first inference, latency, throughput, memory and accuracy of every
artifact in every runtime, on the same preprocessed images, plus parity and CI gates.

One call does it all for `cnnx bench` and `cnnx demo`:

    report = bench(BenchConfig(artifacts_dir=Path("artifacts")))   # runs and writes report/
    console.print(render_bench(report))                             # toolkit.report
    report.raise_for_status()                                       # exit 9 / 10 / 8

A runtime that fails gives a failed row and the others go on; a GPU asked for where there
is none gives a skipped row. The timer is swappable (`BenchConfig.timer`, default
`time.perf_counter_ns`). Runtimes that time inference with their own clock (Node, the
browser) report that latency, and the latency seen from Python beside it: their
difference is the IPC overhead.
"""

from __future__ import annotations

import json
import math
import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.errors import (
    CnnxError,
    GateFailed,
    PathError,
    RuntimeUnavailable,
    UsageError,
    VerificationFailed,
)
from toolkit.evalset import EvalSet, load_eval_set
from toolkit.manifest import ArtifactEntry, Manifest, load_manifest
from toolkit.parity import Check, Metrics, check, compare
from toolkit.remote.ssh import SshTarget
from toolkit.runtimes import LoadedModel, RuntimeSkipped, load, runtimes_for
from toolkit.tolerances import REFERENCE_ID, ToleranceOverrides, tolerance_for
from toolkit.verify import (
    REFERENCE_RUNTIME,
    reference_extra,
    reference_outputs,
    runtime_options,
    selected_entries,
    variant_label,
    variants,
)

Timer = Callable[[], int]  # nanoseconds
BENCH_RUNTIMES = ("tf", "litert", "tfjs-node", "browser")  # litertjs, litertjs-node: on request
DEFAULT_RUNS = 100
DEFAULT_WARMUP = 10
DEFAULT_BATCH = 32
THROUGHPUT_REPEATS = 3
DEFAULT_MAX_REGRESSION = 20.0  # percent of baseline p50 latency
ACCURACY_REGRESSION = 0.005  # half a point of accuracy or agreement below the baseline


# --- configuration --------------------------------------------------------------------


@dataclass(frozen=True)
class Gates:
    """CI limits; a breach exits 10 after the report is written. None: not checked."""

    max_size_kb: float | None = None  # every shipped artifact (not the SavedModel reference)
    max_latency_ms: float | None = None  # batch-1 p50 of every ok row
    max_accuracy_drop: float | None = None  # fraction: 0.01 is one point
    baseline: Path | None = None  # an earlier report.json
    max_regression: float = DEFAULT_MAX_REGRESSION  # percent slower p50 than the baseline

    def __post_init__(self) -> None:
        for name in ("max_size_kb", "max_latency_ms", "max_accuracy_drop"):
            value = getattr(self, name)
            if value is not None and (not math.isfinite(value) or value < 0):
                raise UsageError(f"--{name.replace('_', '-')} must be >= 0, got {value}")
        if self.max_regression < 0:
            raise UsageError(f"--max-regression must be >= 0, got {self.max_regression}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_size_kb": self.max_size_kb,
            "max_latency_ms": self.max_latency_ms,
            "max_accuracy_drop": self.max_accuracy_drop,
            "baseline": str(self.baseline) if self.baseline else None,
            "max_regression": self.max_regression,
        }


@dataclass(frozen=True)
class BenchConfig:
    artifacts_dir: Path
    artifacts: tuple[str, ...] = ()  # empty: every artifact in the manifest
    runtimes: tuple[str, ...] = BENCH_RUNTIMES
    device: str = "cpu"
    threads: tuple[int, ...] = (1, 2)  # LiteRT thread counts
    backends: tuple[str, ...] = ()  # TF.js backends; empty: each runtime's defaults
    runs: int = DEFAULT_RUNS
    warmup: int = DEFAULT_WARMUP
    batch: int = DEFAULT_BATCH  # throughput batch
    data: Path | None = None
    limit: int | None = None
    overrides: tuple[ToleranceOverrides, ...] = ()
    min_reference_accuracy: float | None = None
    gates: Gates = field(default_factory=Gates)
    out: Path | None = None  # default ARTIFACTS_DIR/report
    plots: bool = True
    timeout: float | None = None
    remotes: tuple[SshTarget, ...] = ()  # devices benched over SSH (toolkit/remote/)
    ssh_config: Path | None = None  # another ssh config file for them
    timer: Timer = time.perf_counter_ns
    command: str = ""

    def __post_init__(self) -> None:
        if self.runs < 1:
            raise UsageError(f"--runs must be at least 1, got {self.runs}")
        if self.warmup < 0:
            raise UsageError(f"--warmup must be >= 0, got {self.warmup}")
        if self.batch < 1:
            raise UsageError(f"--batch must be at least 1, got {self.batch}")
        if any(t < 1 for t in self.threads) or not self.threads:
            raise UsageError(f"--threads must list counts >= 1, got {list(self.threads)}")

    @property
    def report_dir(self) -> Path:
        return self.out if self.out is not None else Path(self.artifacts_dir) / "report"

    def to_dict(self) -> dict[str, Any]:
        return {
            "artifacts": list(self.artifacts),
            "runtimes": list(self.runtimes),
            "device": self.device,
            "threads": list(self.threads),
            "backends": list(self.backends),
            "runs": self.runs,
            "warmup": self.warmup,
            "batch": self.batch,
            "data": str(self.data) if self.data else None,
            "limit": self.limit,
            "remotes": [target.url for target in self.remotes],
            "timer": getattr(self.timer, "__qualname__", str(self.timer)),
            "gates": self.gates.to_dict(),
        }


# --- results --------------------------------------------------------------------------


@dataclass(frozen=True)
class LatencyStats:
    """Batch-1 latency over `runs` calls after warm-up, in milliseconds."""

    runs: int
    p50: float
    p90: float
    p99: float
    mean: float
    std: float
    min: float
    source: str  # which clock measured it

    @classmethod
    def from_ns(cls, samples: list[int], source: str) -> LatencyStats:
        ms = np.asarray(samples, dtype=np.float64) / 1e6
        p50, p90, p99 = (float(v) for v in np.percentile(ms, [50, 90, 99]))
        return cls(
            len(ms), p50, p90, p99, float(ms.mean()), float(ms.std()), float(ms.min()), source
        )

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class BenchRow:
    artifact: str
    runtime: str
    label: str
    precision: str
    format: str
    size: int  # bytes of the artifact's files
    status: str  # ok | failed (the runtime could not run it) | skipped
    reason: str = ""
    load_ms: float | None = None  # wall time of load(), seen from here
    first_ms: float | None = None  # the first batch-1 inference after load
    latency: LatencyStats | None = None  # inference, by the runtime's clock when it has one
    latency_outer: LatencyStats | None = None  # the same calls timed from Python (with IPC)
    ipc_ms: float | None = None  # latency_outer.p50 - latency.p50
    throughput: float | None = None  # images per second at `throughput_batch`
    throughput_batch: int | None = None
    throughput_note: str = ""
    memory_bytes: int | None = None
    memory_source: str = ""
    metrics: Metrics | None = None  # parity and accuracy on the eval set
    checks: tuple[Check, ...] = ()
    runtime_info: dict[str, Any] = field(default_factory=dict)

    @property
    def drifted(self) -> bool:
        return any(not c.passed for c in self.checks)

    @property
    def key(self) -> str:
        return f"{self.artifact}|{self.label}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "artifact": self.artifact,
            "runtime": self.runtime,
            "label": self.label,
            "precision": self.precision,
            "format": self.format,
            "size": self.size,
            "status": self.status,
            "reason": self.reason,
            "load_ms": _round(self.load_ms),
            "first_ms": _round(self.first_ms),
            "latency": self.latency.to_dict() if self.latency else None,
            "latency_outer": self.latency_outer.to_dict() if self.latency_outer else None,
            "ipc_ms": _round(self.ipc_ms),
            "throughput": _round(self.throughput),
            "throughput_batch": self.throughput_batch,
            "throughput_note": self.throughput_note,
            "memory": {"bytes": self.memory_bytes, "source": self.memory_source}
            if self.memory_bytes is not None
            else None,
            "metrics": self.metrics.to_dict() if self.metrics else None,
            "checks": [c.to_dict() for c in self.checks],
            "drifted": self.drifted,
            "runtime_info": self.runtime_info,
        }


@dataclass(frozen=True)
class Breach:
    kind: str  # size | latency | accuracy_drop | regression
    artifact: str
    label: str
    metric: str
    value: float
    limit: float
    message: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class BenchReport:
    rows: tuple[BenchRow, ...]
    config: BenchConfig
    manifest: Manifest
    evalset_source: str
    images: int
    labelled: bool
    breaches: tuple[Breach, ...] = ()
    created: str = ""
    seconds: float = 0.0
    written_to: Path | None = None
    plots: tuple[str, ...] = ()
    machine: dict[str, Any] = field(default_factory=dict)

    @property
    def drifted(self) -> list[BenchRow]:
        return [r for r in self.rows if r.status == "ok" and r.drifted]

    @property
    def failed(self) -> list[BenchRow]:
        return [r for r in self.rows if r.status == "failed"]

    @property
    def skipped(self) -> list[BenchRow]:
        return [r for r in self.rows if r.status == "skipped"]

    def raise_for_status(self) -> None:
        """After the report is written: drift exits 9, a gate 10, a failed runtime 8."""
        where = f" (report: {self.written_to})" if self.written_to else ""
        if self.drifted:
            parts = [
                f"{r.artifact} on {r.label}: "
                + ", ".join(c.describe() for c in r.checks if not c.passed)
                for r in self.drifted
            ]
            raise VerificationFailed(f"artifacts drifted past tolerance: {'; '.join(parts)}{where}")
        if self.breaches:
            raise GateFailed(
                f"{len(self.breaches)} gate(s) breached: "
                + "; ".join(b.message for b in self.breaches)
                + where
            )
        if self.failed:
            parts = [f"{r.artifact} on {r.label}: {r.reason}" for r in self.failed]
            raise RuntimeUnavailable(
                f"{len(parts)} row(s) failed: {'; '.join(parts)}{where}",
                "fix the runtime or leave it out with --runtimes",
            )


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


# --- measuring one row ----------------------------------------------------------------


def _rss() -> int | None:
    try:
        import psutil

        return int(psutil.Process(os.getpid()).memory_info().rss)
    except (ImportError, OSError):
        return None


def _timed(timer: Timer, call: Callable[[], Any]) -> tuple[Any, int]:
    start = timer()
    result = call()
    return result, timer() - start


def latency_samples(
    model: LoadedModel, x1: np.ndarray, runs: int, warmup: int, timer: Timer
) -> list[int]:
    """Batch-1 latencies (ns) of `model.predict` after `warmup` calls: the harness's own loop."""
    predict = model.predict
    for _ in range(warmup):
        predict(x1)
    samples = []
    for _ in range(runs):
        start = timer()
        predict(x1)
        samples.append(timer() - start)
    return samples


def measure(
    manifest: Manifest,
    entry: ArtifactEntry,
    runtime: str,
    options: dict[str, Any],
    evalset: EvalSet,
    reference: np.ndarray,
    config: BenchConfig,
    extra_checks: Callable[[np.ndarray], list[Check]] | None = None,
) -> BenchRow:
    """One artifact in one runtime configuration. Never raises for the runtime's failure."""
    timer = config.timer
    base: dict[str, Any] = {
        "artifact": entry.id,
        "runtime": runtime,
        "label": variant_label(runtime, options),
        "precision": entry.precision,
        "format": entry.format,
        "size": entry.size,
    }
    model: LoadedModel | None = None
    try:
        rss_before = _rss()
        model, load_ns = _timed(timer, lambda: load(runtime, manifest, entry, **options))
        assert model is not None
        base["label"] = model.info.label
        x1 = np.ascontiguousarray(evalset.images[:1])
        _, first_ns = _timed(timer, lambda: model.predict(x1))  # type: ignore[union-attr]
        rss_after = _rss()
        outer = latency_samples(model, x1, config.runs, config.warmup, timer)
        latency_outer = LatencyStats.from_ns(outer, f"{_timer_name(timer)} around predict()")
        inner = model.self_timed(x1, config.runs)
        latency, ipc = latency_outer, None
        if inner:
            latency = LatencyStats.from_ns(inner, f"{model.info.runtime} clock inside the runtime")
            ipc = latency_outer.p50 - latency.p50
        throughput, note = _throughput(model, evalset, config)
        outputs = model.predict(evalset.images)
        metrics = compare(outputs, reference, evalset.labels)
        checks = check(metrics, tolerance_for(entry, *config.overrides))
        if extra_checks is not None:
            checks += extra_checks(outputs)
        memory = model.memory()
        if memory is not None:
            memory_bytes, memory_source = memory.bytes, memory.source
        elif rss_before is not None and rss_after is not None:
            memory_bytes = max(0, rss_after - rss_before)
            memory_source = "RSS growth of this process across load and first inference (psutil)"
        else:
            memory_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            memory_source = "ru_maxrss of this process (peak of the whole run)"
        return BenchRow(
            **base,
            status="ok",
            load_ms=load_ns / 1e6,
            first_ms=first_ns / 1e6,
            latency=latency,
            latency_outer=latency_outer if inner else None,
            ipc_ms=ipc,
            throughput=throughput,
            throughput_batch=config.batch,
            throughput_note=note,
            memory_bytes=memory_bytes,
            memory_source=memory_source,
            metrics=metrics,
            checks=tuple(checks),
            runtime_info=model.info.to_dict(),
        )
    except RuntimeSkipped as error:
        return BenchRow(**base, status="skipped", reason=error.one_line())
    except CnnxError as error:
        return BenchRow(**base, status="failed", reason=error.one_line())
    finally:
        if model is not None:
            model.close()


def _throughput(model: LoadedModel, evalset: EvalSet, config: BenchConfig) -> tuple[float, str]:
    """Images per second at the configured batch (the best of a few repeats)."""
    rows = evalset.images[: config.batch]
    if len(rows) < config.batch:  # a small eval set: repeat images to fill the batch
        rows = np.resize(rows, (config.batch, *rows.shape[1:])).astype(np.float32)
    rows = np.ascontiguousarray(rows)
    model.predict(rows)  # warm the larger shape (resizes, kernel selection)
    best = math.inf
    for _ in range(THROUGHPUT_REPEATS):
        _, ns = _timed(config.timer, lambda: model.predict(rows))
        best = min(best, ns)
    note = "batch-1 model, rows looped" if model.info.max_batch == 1 else ""
    return config.batch / (best / 1e9), note


def _timer_name(timer: Timer) -> str:
    return getattr(timer, "__qualname__", "timer")


# --- gates ----------------------------------------------------------------------------


def check_gates(rows: tuple[BenchRow, ...], gates: Gates) -> list[Breach]:
    breaches: list[Breach] = []
    sized: set[str] = set()
    for row in rows:
        if (
            gates.max_size_kb is not None
            and row.artifact != REFERENCE_ID
            and row.artifact not in sized
        ):
            sized.add(row.artifact)
            kb = row.size / 1024
            if kb > gates.max_size_kb:
                breaches.append(
                    Breach(
                        "size",
                        row.artifact,
                        row.label,
                        "size_kb",
                        kb,
                        gates.max_size_kb,
                        f"{row.artifact} is {kb:.1f} KB > --max-size-kb {gates.max_size_kb:g}",
                    )
                )
        if row.status != "ok":
            continue
        if (
            gates.max_latency_ms is not None
            and row.latency
            and row.latency.p50 > gates.max_latency_ms
        ):
            breaches.append(
                Breach(
                    "latency",
                    row.artifact,
                    row.label,
                    "p50_ms",
                    row.latency.p50,
                    gates.max_latency_ms,
                    f"{row.artifact} on {row.label} p50 {row.latency.p50:.3f} ms > "
                    f"--max-latency-ms {gates.max_latency_ms:g}",
                )
            )
        drop = row.metrics.accuracy_drop if row.metrics else None
        if (
            gates.max_accuracy_drop is not None
            and drop is not None
            and drop > gates.max_accuracy_drop + 1e-12
        ):
            breaches.append(
                Breach(
                    "accuracy_drop",
                    row.artifact,
                    row.label,
                    "accuracy_drop",
                    drop,
                    gates.max_accuracy_drop,
                    f"{row.artifact} on {row.label} lost {drop * 100:.2f} points of accuracy > "
                    f"--max-accuracy-drop {gates.max_accuracy_drop * 100:g} points",
                )
            )
    if gates.baseline is not None:
        breaches += baseline_breaches(rows, read_baseline(gates.baseline), gates.max_regression)
    return breaches


def read_baseline(path: Path) -> dict[str, dict[str, Any]]:
    """Rows of an earlier report.json keyed by 'artifact|label'."""
    from toolkit.report import SCHEMA

    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PathError(
            f"--baseline {path} does not exist", "pass an earlier report.json"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UsageError(f"--baseline {path} is not a readable JSON report: {error}") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        seen = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise UsageError(
            f"--baseline {path} is not a cnnx report (schema {seen!r}, expected {SCHEMA!r})"
        )
    rows = data.get("rows")
    if not isinstance(rows, list):
        raise UsageError(f"--baseline {path} has no rows")
    return {f"{r.get('artifact')}|{r.get('label')}": r for r in rows if isinstance(r, dict)}


def baseline_breaches(
    rows: tuple[BenchRow, ...], baseline: dict[str, dict[str, Any]], max_regression: float
) -> list[Breach]:
    breaches: list[Breach] = []
    for row in rows:
        old = baseline.get(row.key)
        if row.status != "ok" or old is None or old.get("status") != "ok":
            continue
        old_p50 = (old.get("latency") or {}).get("p50")
        if isinstance(old_p50, int | float) and old_p50 > 0 and row.latency is not None:
            slower = (row.latency.p50 / old_p50 - 1) * 100
            if slower > max_regression:
                breaches.append(
                    Breach(
                        "regression",
                        row.artifact,
                        row.label,
                        "p50_ms",
                        row.latency.p50,
                        old_p50,
                        f"{row.artifact} on {row.label} p50 {row.latency.p50:.3f} ms is "
                        f"{slower:.0f}% slower than the baseline's {old_p50:.3f} ms "
                        f"(--max-regression {max_regression:g}%)",
                    )
                )
        old_metrics = old.get("metrics") or {}
        if row.metrics is None:
            continue
        for name in ("accuracy", "agreement"):
            new_value = getattr(row.metrics, name)
            old_value = old_metrics.get(name)
            if (
                isinstance(old_value, int | float)
                and new_value is not None
                and new_value < old_value - ACCURACY_REGRESSION
            ):
                breaches.append(
                    Breach(
                        "regression",
                        row.artifact,
                        row.label,
                        name,
                        new_value,
                        old_value,
                        f"{row.artifact} on {row.label} {name} {new_value * 100:.2f}% fell "
                        f"from the baseline's {old_value * 100:.2f}%",
                    )
                )
    return breaches


# --- the whole bench ------------------------------------------------------------------


def run_bench(config: BenchConfig, manifest: Manifest | None = None) -> BenchReport:
    """Measure every selected artifact in every selected runtime (no files written)."""
    from toolkit.manifest import now_iso
    from toolkit.report import machine_info

    started = time.perf_counter()
    manifest = manifest or load_manifest(config.artifacts_dir)
    entries = selected_entries(manifest, config.artifacts)
    if config.gates.baseline is not None:
        read_baseline(config.gates.baseline)  # a bad baseline fails before minutes of work
    if config.remotes:
        from toolkit.remote.rows import clients, remote_models

        clients(config)  # a missing --ssh-config file or nothing to run there fails here too
        remote_models(manifest, config.artifacts)
    evalset = load_eval_set(manifest, config.data, config.limit)
    reference, ref_model = reference_outputs(manifest, evalset)
    ref_model.close()
    common = runtime_options(config.device, config.timeout)
    rows: list[BenchRow] = []
    for entry in entries:
        names = runtimes_for(entry, config.runtimes)
        for runtime in names:
            extra = None
            if entry.id == REFERENCE_ID and runtime == REFERENCE_RUNTIME:
                extra = reference_extra(manifest, evalset, config.min_reference_accuracy)
            for variant in variants(runtime, config.backends, config.threads):
                rows.append(
                    measure(
                        manifest,
                        entry,
                        runtime,
                        {**common, **variant},
                        evalset,
                        reference,
                        config,
                        extra,
                    )
                )
    if config.remotes:
        from toolkit.remote.rows import remote_rows

        rows += remote_rows(manifest, evalset, reference, config)
    frozen = tuple(rows)
    return BenchReport(
        rows=frozen,
        config=config,
        manifest=manifest,
        evalset_source=evalset.source,
        images=len(evalset),
        labelled=evalset.labels is not None,
        breaches=tuple(check_gates(frozen, config.gates)),
        created=now_iso(),
        seconds=time.perf_counter() - started,
        machine=machine_info(),
    )


def bench(config: BenchConfig) -> BenchReport:
    """Run the bench and write report.json, report.md and the plots (atomically).

    Returns the report with `written_to` set; call `raise_for_status()` afterwards for
    the exit code (the report is on disk either way).
    """
    from toolkit.report import write_report

    report = run_bench(config)
    written, plots = write_report(report, config.report_dir, plots=config.plots)
    return replace(report, written_to=written, plots=plots)
