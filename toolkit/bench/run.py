"""Bench: the run matrix (toolkit/measure/matrix.py) with speed on top. For every
artifact in every runtime configuration, on the same preprocessed images: size, load,
first inference, latency (toolkit/measure/timing.py), throughput, memory
(toolkit/bench/memory.py), work and efficiency (toolkit/bench/flops.py,
toolkit/bench/machine.py), all taken by toolkit/bench/speed_probe.py; accuracy and
parity; and the CI gates (toolkit/bench/gates.py).

    report = run_bench(BenchConfig(artifacts_dir=Path("artifacts")))  # measures, writes nothing
    report = bench(config)       # the same, then report.json, report.md, plots (bench/report.py)
    report.raise_for_status()    # exit 9 / 10 / 8

`run_bench` is the library entry for measuring candidates: give it the artifacts,
runtimes and options (and the manifest and eval set when you have them) and read
`report.rows`. A runtime that fails gives a failed row and the others go on; a GPU asked
for where there is none gives a skipped row.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from toolkit.bench.flops import Work, graph_work
from toolkit.bench.gates import Breach, Gates, check_gates, read_baseline
from toolkit.bench.machine import machine_info, machine_peak
from toolkit.bench.recommend import Recommendation, recommend
from toolkit.bench.report import SCHEMA
from toolkit.bench.speed_probe import SpeedProbe
from toolkit.core.limits import check_batch_memory
from toolkit.core.progress import ProgressFn, no_progress
from toolkit.errors import (
    ArtifactError,
    GateFailed,
    RuntimeUnavailable,
    UsageError,
    VerificationFailed,
)
from toolkit.graph.artifact_policy import check_artifact_graphs
from toolkit.manifest import Manifest, load_manifest
from toolkit.measure.evalset import EvalSet, load_eval_set
from toolkit.measure.matrix import plan, run_matrix, runtime_options, selected_entries
from toolkit.measure.rows import Row
from toolkit.measure.timing import Timer
from toolkit.measure.tolerances import REFERENCE_ID, ToleranceOverrides
from toolkit.remote.rows import RemoteBench
from toolkit.remote.ssh import SshTarget

# Both browser engines, so the recommendation compares them; litertjs-node on request.
BENCH_RUNTIMES = (
    "tf",
    "litert",
    "onnxruntime",
    "tfjs-node",
    "browser",
    "litertjs",
    "onnxruntime-web",
)
DEFAULT_RUNS = 100
DEFAULT_WARMUP = 10
DEFAULT_BATCH = 32


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
    unsafe: bool = False  # run graphs the graph-op policy refuses (with a warning)
    wait: bool = False  # another bench writes the report folder: wait instead of failing

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


@dataclass(frozen=True)
class BenchReport:
    rows: tuple[Row, ...]
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
    work: Work | None = None  # FLOPs per inference, from the graph

    @property
    def drifted(self) -> list[Row]:
        return [r for r in self.rows if r.status == "drift"]

    @property
    def recommendation(self) -> Recommendation:
        """The fastest browser engine, backend and artifact that passed parity."""
        return recommend(self.rows)

    @property
    def failed(self) -> list[Row]:
        return [r for r in self.rows if r.status == "failed"]

    @property
    def skipped(self) -> list[Row]:
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
                "fix the runtime or device, or leave it out (--runtimes, --remote)",
            )

    def to_dict(self, plots: tuple[str, ...] = ()) -> dict[str, Any]:
        """report.json (schema in docs/report.md): the plain data the report writes."""
        manifest = self.manifest
        artifacts = {
            row.artifact: {"format": row.format, "precision": row.precision, "size": row.size}
            for row in self.rows
        }
        for artifact_id, entry in manifest.artifacts.items():
            if artifact_id in artifacts:
                artifacts[artifact_id]["path"] = entry.path
        return {
            "schema": SCHEMA,
            "created": self.created,
            "command": self.config.command,
            "seconds": round(self.seconds, 3),
            "artifacts_dir": str(Path(self.config.artifacts_dir).resolve()),
            "machine": self.machine,
            "manifest": {
                "created": manifest.created,
                "source": manifest.source,
                "input": manifest.input.to_dict(),
                "labels": manifest.labels,
                "versions": manifest.versions,
            },
            "config": self.config.to_dict(),
            "data": {
                "source": self.evalset_source,
                "images": self.images,
                "labelled": self.labelled,
            },
            "work": self.work.to_dict() if self.work else None,
            "artifacts": artifacts,
            "rows": [row.to_dict(speed=True) for row in self.rows],
            "recommendation": self.recommendation.to_dict(),
            "gates": {
                "limits": self.config.gates.to_dict(),
                "breaches": [b.to_dict() for b in self.breaches],
            },
            "status": {
                "ok": not (self.drifted or self.breaches or self.failed),
                "drifted": sorted({r.artifact for r in self.drifted}),
                "failed": [f"{r.artifact}|{r.label}" for r in self.failed],
                "skipped": [f"{r.artifact}|{r.label}" for r in self.skipped],
                "breaches": len(self.breaches),
            },
            "plots": list(plots),
        }


def _work(manifest: Manifest) -> Work | None:
    """The graph's work, or None when it cannot be counted (the rows say so by omission)."""
    if REFERENCE_ID not in manifest.artifacts:
        return None
    try:
        return graph_work(manifest.artifact_path(manifest.artifact(REFERENCE_ID), check=False))
    except ArtifactError:
        return None


def _remote(config: BenchConfig) -> RemoteBench | None:
    """What the --remote devices run, or None without any (toolkit/remote/rows.py)."""
    if not config.remotes:
        return None
    return RemoteBench(
        targets=config.remotes,
        ssh_config=config.ssh_config,
        artifacts=config.artifacts,
        threads=config.threads,
        runs=config.runs,
        timeout=config.timeout,
        overrides=config.overrides,
    )


def run_bench(
    config: BenchConfig,
    manifest: Manifest | None = None,
    evalset: EvalSet | None = None,
    progress: ProgressFn = no_progress,
) -> BenchReport:
    """Measure every selected artifact in every selected runtime (no files written).

    `progress` hears of each row as it starts (task "bench"; toolkit.measure.matrix.run_matrix).
    """
    from toolkit.core.provenance import now_iso

    started = time.perf_counter()
    manifest = manifest or load_manifest(config.artifacts_dir)
    entries = selected_entries(manifest, config.artifacts)
    check_artifact_graphs(manifest, entries, unsafe=config.unsafe)
    if config.gates.baseline is not None:
        read_baseline(config.gates.baseline)  # a bad baseline fails before minutes of work
    remote = _remote(config)
    if remote is not None:
        remote.check(manifest)  # a missing --ssh-config file or nothing to run there fails now
    evalset = evalset or load_eval_set(manifest, config.data, config.limit)
    check_batch_memory(config.batch, manifest.input.shape, len(manifest.labels))
    machine = machine_info()
    peak = machine_peak()
    if peak is not None:
        machine["peak"] = peak
    work = _work(manifest)
    cells = plan(
        entries,
        config.runtimes,
        backends=config.backends,
        threads=config.threads,
        common=runtime_options(config.device, config.timeout, config.unsafe),
    )
    result = run_matrix(
        manifest,
        cells,
        evalset,
        overrides=config.overrides,
        min_reference_accuracy=config.min_reference_accuracy,
        probe=SpeedProbe(
            config.runs, config.warmup, config.batch, config.timer, manifest, work, peak
        ),
        timer=config.timer,
        progress=progress,
        task="bench",
        unsafe=config.unsafe,
    )
    rows = result.rows
    if remote is not None:
        from toolkit.remote.rows import remote_rows

        remote = replace(remote, flops=work.flops if work else None)
        rows += tuple(remote_rows(manifest, result.evalset, result.reference, remote))
    return BenchReport(
        rows=rows,
        config=config,
        manifest=manifest,
        evalset_source=evalset.source,
        images=len(evalset),
        labelled=evalset.labels is not None,
        breaches=tuple(check_gates(rows, config.gates)),
        created=now_iso(),
        seconds=time.perf_counter() - started,
        machine=machine,
        work=work,
    )


ARTIFACTS_FOLDER = "artifacts folder"
INSIDE_ARTIFACTS_OK = frozenset({ARTIFACTS_FOLDER})


def artifacts_folder_reads(manifest: Manifest) -> dict[str, Path | None]:
    """What a reader of an artifacts folder reads: the folder (a report may sit inside
    it, under INSIDE_ARTIFACTS_OK), its manifest, every artifact and the samples."""
    reads: dict[str, Path | None] = {
        ARTIFACTS_FOLDER: manifest.root,
        "manifest": manifest.path,
        "samples": manifest.root / "samples",
    }
    for entry in manifest.artifacts.values():
        reads[f"artifact {entry.id}"] = manifest.root / entry.path
    return reads


def bench(config: BenchConfig, progress: ProgressFn = no_progress) -> BenchReport:
    """Run the bench and write report.json, report.md and the plots (atomically).

    Returns the report with `written_to` set; call `raise_for_status()` afterwards for
    the exit code (the report is on disk either way).
    """
    from toolkit.bench.report import write_report
    from toolkit.core.writelock import output_lock, refuse_overlap

    reads = {
        **artifacts_folder_reads(load_manifest(config.artifacts_dir)),
        "data folder": config.data,
        "baseline report": config.gates.baseline,
    }
    refuse_overlap(config.report_dir, reads, inside_ok=INSIDE_ARTIFACTS_OK)
    with output_lock(config.report_dir, wait=config.wait):
        report = run_bench(config, progress=progress)
        written, plots = write_report(report.to_dict(), config.report_dir, plots=config.plots)
    return replace(report, written_to=written, plots=plots)
