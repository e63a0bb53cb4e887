"""`cnnx demo`: the whole pipeline on the embedded dataset, one step after another.

The pipeline is a list of steps; each reads and extends a shared context. A later stage
(export, bench, package, a serve hint) is one Step appended to STEPS. Everything lands
in one work folder: runs/, artifacts/, bundles/ and demo.json (what each step did).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.core.atomic import write_json_atomic
from toolkit.core.locate import ARTIFACTS_DIR, BUNDLES_DIR, RUNS_DIR
from toolkit.core.progress import ProgressFn, no_progress
from toolkit.data import DataSpec, load_dataset
from toolkit.errors import PathError
from toolkit.train.config import DEFAULT_EPOCHS, TrainConfig, TrainEvent
from toolkit.train.training import train

DEFAULT_WORK_DIR = Path("cnnx-demo")


@dataclass(frozen=True)
class DemoConfig:
    work_dir: Path = DEFAULT_WORK_DIR
    data: DataSpec = field(default_factory=DataSpec)
    arch: str = "seed"
    epochs: int = DEFAULT_EPOCHS
    width: float = 1.0
    seed: int = 0


@dataclass
class DemoContext:
    """What the steps share: the config, the folders, and what earlier steps produced."""

    config: DemoConfig
    on_train: Callable[[TrainEvent], None] | None = None
    progress: ProgressFn = no_progress  # export, bench and package report here
    run_dir: Path | None = None
    bench_report: Any = None  # toolkit.bench.run.BenchReport, once the bench step ran
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def runs_dir(self) -> Path:
        return self.config.work_dir / RUNS_DIR

    @property
    def artifacts_dir(self) -> Path:
        return self.config.work_dir / ARTIFACTS_DIR

    @property
    def bundles_dir(self) -> Path:
        return self.config.work_dir / BUNDLES_DIR


@dataclass(frozen=True)
class Step:
    name: str
    title: str
    run: Callable[[DemoContext], dict[str, Any]]  # returns a summary recorded in demo.json


@dataclass(frozen=True)
class StepResult:
    name: str
    title: str
    seconds: float
    summary: dict[str, Any]


def _data(ctx: DemoContext) -> dict[str, Any]:
    dataset = load_dataset(ctx.config.data)
    return dataset.summary()


def _train(ctx: DemoContext) -> dict[str, Any]:
    cfg = ctx.config
    result = train(
        TrainConfig(
            data=cfg.data,
            arch=cfg.arch,
            epochs=cfg.epochs,
            width=cfg.width,
            seed=cfg.seed,
            runs_dir=ctx.runs_dir,
        ),
        progress=ctx.on_train,
    )
    ctx.run_dir = result.run_dir
    return {
        "run": str(result.run_dir),
        "test_accuracy": round(result.test_accuracy, 4),
        "seconds": round(result.seconds, 1),
    }


def _saved(ctx: DemoContext) -> dict[str, Any]:
    """Check the run folder holds the pivot SavedModel the later stages start from."""
    assert ctx.run_dir is not None
    from toolkit.info import describe

    info = describe(ctx.run_dir)
    return {"saved_model": str(ctx.run_dir / "saved_model"), "size": info.size}


def _export(ctx: DemoContext) -> dict[str, Any]:
    from toolkit.export.artifacts import ExportRequest, export

    # force: the demo folder is the demo's own; a rerun replaces the last model's artifacts.
    request = ExportRequest(model=ctx.run_dir, to="all", out=ctx.artifacts_dir, force=True)
    manifest = export(request, progress=ctx.progress)
    return {"artifacts": sorted(manifest.artifacts), "folder": str(ctx.artifacts_dir)}


# The demo measures every runtime once: fewer repetitions, one thread count (a second
# row of the same runtime repeats its parity on every image, for a figure the tour does
# not need) and one browser backend (wasm, the page's default) than a full `cnnx bench`.
def _bench(ctx: DemoContext) -> dict[str, Any]:
    from toolkit.bench.run import BenchConfig, bench

    config = BenchConfig(
        artifacts_dir=ctx.artifacts_dir,
        runs=50,
        warmup=5,
        threads=(1,),
        backends=("wasm",),
        command="cnnx demo",
    )
    report = bench(config, ctx.progress)
    ctx.bench_report = report
    statuses = [row.status for row in report.rows]
    return {
        "report": str(report.written_to),
        "rows": len(statuses),
        "ok": statuses.count("ok"),
        "images": report.images,
    }


def _bundles(ctx: DemoContext) -> dict[str, Any]:
    from toolkit.errors import RuntimeUnavailable
    from toolkit.packaging import BUNDLE_TARGETS, package

    made: dict[str, str] = {}
    for target in BUNDLE_TARGETS:
        try:
            folder = package(
                target,
                ctx.artifacts_dir,
                ctx.bundles_dir / target,
                force=True,
                progress=ctx.progress,
            )
            made[target] = str(folder)
        except RuntimeUnavailable as error:  # e.g. no metadata-writer env: say so, go on
            made[target] = f"skipped: {error.one_line()}"
    return {"bundles": made}


# The pipeline, in order. Each stage is one line.
STEPS: list[Step] = [
    Step("data", "Generate the shapes dataset", _data),
    Step("train", "Train the seed CNN", _train),
    Step("save", "Check the saved model (the SavedModel pivot)", _saved),
    Step("export", "Export every format (TFLite x4, TF.js x4, ONNX x3)", _export),
    Step("bench", "Verify and bench every artifact on every runtime", _bench),
    Step("package", "Build the web, Raspberry Pi and Android bundles", _bundles),
]


def run_demo(
    config: DemoConfig,
    *,
    on_step: Callable[[Step, int, int], None] | None = None,
    on_train: Callable[[TrainEvent], None] | None = None,
    progress: ProgressFn = no_progress,
    steps: list[Step] | None = None,
) -> tuple[list[StepResult], DemoContext]:
    """Run every step in order into config.work_dir; demo.json records what each did."""
    work = Path(config.work_dir)
    if work.exists() and not work.is_dir():
        raise PathError(f"demo folder {work} is a file", "choose another --out")
    work.mkdir(parents=True, exist_ok=True)
    ctx = DemoContext(config=config, on_train=on_train, progress=progress)
    chosen = STEPS if steps is None else steps
    results: list[StepResult] = []
    for index, step in enumerate(chosen, start=1):
        if on_step is not None:
            on_step(step, index, len(chosen))
        started = time.perf_counter()
        summary = step.run(ctx)
        ctx.outputs[step.name] = summary
        results.append(StepResult(step.name, step.title, time.perf_counter() - started, summary))
        write_json_atomic(
            work / "demo.json",
            {
                "steps": [
                    {"name": r.name, "title": r.title, "seconds": round(r.seconds, 2), **r.summary}
                    for r in results
                ]
            },
        )
    return results, ctx
