"""Train a CNN and write a run folder: model, SavedModel, curves, labels, run.json.

--data takes `shapes` (the embedded synthetic set, the default), `cifar10` (Keras
download, or offline from --data-path: cifar-10-python.tar.gz or its extracted folder)
or a folder with one subfolder of images per class. The run lands in
runs/<data>-<arch>-<UTC time> unless --out names it; `cnnx export` finds the newest.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from toolkit.cli.common import console, handles_errors
from toolkit.cli.options import Wait
from toolkit.train.models import ARCHS

if TYPE_CHECKING:
    from rich.progress import TaskID

    from toolkit.train.config import TrainEvent, TrainResult

NAME = "train"


Arch = enum.StrEnum("Arch", [(v, v) for v in ARCHS])  # type: ignore[misc]


class Strategy(enum.StrEnum):
    none = "none"
    mirrored = "mirrored"
    multiworker = "multiworker"


@handles_errors
def command(
    data: Annotated[
        str,
        typer.Option("--data", "-d", help="shapes, cifar10, or a folder of class subfolders."),
    ] = "shapes",
    data_path: Annotated[
        Path | None,
        typer.Option("--data-path", help="cifar10 offline: the .tar.gz or its extracted folder."),
    ] = None,
    size: Annotated[
        int | None,
        typer.Option(
            "--size",
            min=1,
            help="Images: shapes draws this many [10000]; others are capped [all].",
            show_default=False,
        ),
    ] = None,
    image_size: Annotated[
        int, typer.Option("--image-size", min=18, max=1024, help="Square input size (pixels).")
    ] = 32,
    grayscale: Annotated[
        bool, typer.Option("--grayscale", help="Train on one channel (gray) images.")
    ] = False,
    arch: Annotated[Arch, typer.Option("--arch", "-a", help="Network.")] = Arch("seed"),
    epochs: Annotated[
        int | None,
        typer.Option(
            "--epochs", "-e", min=1, show_default=False, help="Passes over the training set [8]."
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option("--batch-size", min=1, show_default=False, help="Images per step [64]."),
    ] = None,
    learning_rate: Annotated[
        float | None,
        typer.Option(
            "--learning-rate", min=1e-7, show_default=False, help="Adam's learning rate [0.002]."
        ),
    ] = None,
    width: Annotated[
        float, typer.Option("--width", min=0.01, max=16, help="Scale filters and dense units.")
    ] = 1.0,
    seed: Annotated[int, typer.Option("--seed", help="Seeds data order and weights.")] = 0,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Run folder [default: runs/<data>-<arch>-<UTC time>]",
            show_default=False,
        ),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option("--resume", help="Continue training a run folder or .keras model."),
    ] = None,
    strategy: Annotated[
        Strategy,
        typer.Option(
            "--strategy",
            help="tf.distribute: mirrored (local devices) or multiworker (cluster from TF_CONFIG).",
        ),
    ] = Strategy.none,
    deterministic: Annotated[
        bool, typer.Option("--deterministic", help="TF op determinism (slower, bit-exact).")
    ] = False,
    worker_timeout: Annotated[
        float,
        typer.Option(
            "--worker-timeout",
            min=1,
            max=86400,
            help="multiworker: seconds to wait for every worker to join, and for each step.",
        ),
    ] = 300.0,
    wait: Wait = False,
) -> None:
    """Train a CNN (default: the seed CNN on the embedded shapes set) into a run folder."""
    from dataclasses import replace

    from toolkit.data import parse_data_arg
    from toolkit.train.config import TrainConfig
    from toolkit.train.training import train

    options: dict[str, object] = {"seed": seed, "image_size": image_size}
    if size is not None:
        options["size"] = size
    if grayscale:
        options["channels"] = 1
    spec = parse_data_arg(data, data_path=data_path, **options)
    config = TrainConfig(
        data=spec,
        arch=arch.value,
        width=width,
        seed=seed,
        out=out,
        resume=resume,
        strategy=strategy.value,
        deterministic=deterministic,
        worker_timeout=worker_timeout,
        wait=wait,
    )
    if epochs is not None:
        config = replace(config, epochs=epochs)
    if batch_size is not None:
        config = replace(config, batch_size=batch_size)
    if learning_rate is not None:
        config = replace(config, learning_rate=learning_rate)

    with ProgressView(config.epochs) as view:
        result = train(config, progress=view.update)
    _print(result)


class ProgressView:
    """A rich progress bar per epoch, with the running loss and accuracy."""

    def __init__(self, epochs: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.epochs = epochs
        self.progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[metrics]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.task: TaskID | None = None

    def __enter__(self) -> ProgressView:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, event: TrainEvent) -> None:
        label = f"{event.epoch}/{event.epochs}"
        if event.kind == "data":
            left = int(event.logs.get("left_out", 0))
            why = f"; left out {left:,} files (run.json data_summary.left_out: why)" if left else ""
            console.print(
                f"data: {event.logs['train']:,} training images, {event.logs['test']:,} test{why}"
            )
        elif event.kind == "cluster":
            rank, workers = int(event.logs["rank"]), int(event.logs["workers"])
            role = "the chief, writes the run" if rank == 0 else "saves nothing"
            console.print(f"cluster: {workers} workers joined; this is worker {rank} ({role})")
        elif event.kind == "epoch_start":
            self.task = self.progress.add_task("", total=event.steps, epoch=label, metrics="")
        elif event.kind in ("batch", "epoch_end") and self.task is not None:
            logs = event.logs
            text = f"loss {logs.get('loss', float('nan')):.4f} acc {logs.get('accuracy', 0):.3f}"
            if "val_accuracy" in logs:
                text += f"  val_loss {logs['val_loss']:.4f} val_acc {logs['val_accuracy']:.3f}"
            self.progress.update(self.task, completed=event.step, metrics=text)


def _print(result: TrainResult) -> None:
    from rich.table import Table

    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("test accuracy", f"{result.test_accuracy:.4f}")
    table.add_row("test loss", f"{result.test_loss:.4f}")
    table.add_row("val accuracy", f"{result.val_accuracy:.4f}")
    table.add_row("train accuracy", f"{result.train_accuracy:.4f}")
    table.add_row("epochs", str(result.epochs))
    table.add_row("parameters", f"{result.params:,}")
    table.add_row("training time", f"{result.seconds:.1f} s")
    console.print(table)
    if not result.wrote_run:
        console.print(f"done: the chief of the {result.workers} workers wrote the run folder")
        return
    console.print(f"run saved to {result.run_dir}", soft_wrap=True)
    console.print(f"next: cnnx export --model {result.run_dir}", soft_wrap=True)
