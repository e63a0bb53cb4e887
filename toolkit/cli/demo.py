"""Run the whole pipeline on the embedded shapes dataset into one folder (./cnnx-demo).

Each step prints as it starts: generate data, train the seed CNN, save the SavedModel
pivot, export every format, verify and bench every artifact on TensorFlow, LiteRT,
TF.js in Node and in headless Chromium, and build the web, Raspberry Pi and Android
bundles; on a terminal, training, export, bench and packaging draw progress bars.
Everything lands in the work folder: runs/, artifacts/ (with report/), bundles/ and
demo.json. Exits 9 if an artifact drifted, 8 if a runtime failed.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from toolkit.cli.common import console, handles_errors

NAME = "demo"


@handles_errors
def command(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Work folder for runs/, artifacts/, bundles/.")
    ] = Path("cnnx-demo"),
    epochs: Annotated[
        int | None,
        typer.Option("--epochs", "-e", min=1, help="Training epochs [8].", show_default=False),
    ] = None,
    size: Annotated[
        int | None,
        typer.Option("--size", min=50, help="Images to draw [10000].", show_default=False),
    ] = None,
    width: Annotated[
        float, typer.Option("--width", min=0.01, max=16, help="Scale the CNN's filters.")
    ] = 1.0,
) -> None:
    """Run the whole pipeline on the embedded dataset into ./cnnx-demo."""
    from dataclasses import replace

    from toolkit.cli.progress import progress_bars
    from toolkit.cli.train import ProgressView
    from toolkit.core.progress import ProgressFn, no_progress
    from toolkit.data import DataSpec
    from toolkit.demo import DemoConfig, Step, run_demo

    config = DemoConfig(work_dir=out, width=width)
    if epochs is not None:
        config = replace(config, epochs=epochs)
    if size is not None:
        config = replace(config, data=DataSpec(size=size))

    view = ProgressView(config.epochs)
    training = False
    bars = contextlib.ExitStack()  # the current step's progress bars
    current: list[ProgressFn] = [no_progress]

    def on_step(step: Step, index: int, total: int) -> None:
        # Each step's bars live only through that step, so the next step's title is not
        # held back behind them; training draws its own view (epochs, loss, accuracy).
        nonlocal training
        bars.close()
        current[0] = no_progress
        if training:
            view.__exit__()
            training = False
        console.rule(Text(f"{index}/{total} {step.title}", style="bold"), align="left")
        if step.name == "train":
            view.__enter__()
            training = True
        else:
            current[0] = bars.enter_context(progress_bars())

    try:
        results, ctx = run_demo(
            config,
            on_step=on_step,
            on_train=view.update,
            progress=lambda report: current[0](report),
        )
    finally:
        bars.close()
        if training:
            view.__exit__()
    if ctx.bench_report is not None:
        from toolkit.cli.tables import render_bench

        console.print(render_bench(ctx.bench_report))
    console.rule(Text("done", style="bold"), align="left")
    for result in results:
        details = ", ".join(
            f"{k}={v}" for k, v in result.summary.items() if not isinstance(v, list | dict)
        )
        console.print(f"{result.name:<8} {result.seconds:6.1f} s  {details}", soft_wrap=True)
    console.print(f"everything is in {out}/ (demo.json lists each step)", soft_wrap=True)
    if ctx.bench_report is not None:
        console.print(f"report: {ctx.bench_report.written_to}", soft_wrap=True)
    for target, where in ctx.outputs.get("package", {}).get("bundles", {}).items():
        console.print(f"bundle {target:<8} {where}", soft_wrap=True)
    console.print(
        f"web demo: run `cnnx serve {out}/artifacts`, then open http://127.0.0.1:8000/",
        soft_wrap=True,
    )
    if ctx.bench_report is not None:
        ctx.bench_report.raise_for_status()  # drift or a failed runtime: non-zero exit
