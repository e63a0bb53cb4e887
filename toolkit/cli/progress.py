"""Rich progress bars for the library's progress reports (toolkit.core.progress.Step).

One bar per task (export, calibration, verify, bench, bundle) with what it is doing now,
units done, elapsed time and an estimate of the time left. Only on a terminal: under
--json, or when stdout is a pipe or a file (CI logs), the callback drops every report.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING

from toolkit.cli.common import console

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from toolkit.core.progress import ProgressFn, Step


@contextlib.contextmanager
def progress_bars(*, quiet: bool = False) -> Iterator[ProgressFn]:
    """A progress callback drawing on the terminal while the block runs."""
    from toolkit.core.progress import no_progress

    if quiet or not console.is_terminal:
        yield no_progress
        return
    with _terminal_copy() as terminal:
        view = _Bars(terminal)
        try:
            yield view.update
        finally:
            view.progress.stop()


@contextlib.contextmanager
def _terminal_copy() -> Iterator[IO[str]]:
    """stdout through a descriptor of its own: converters run with descriptors 1 and 2
    pointed at a file (exporters/quiet.py), and the bars must stay on the terminal."""
    try:
        descriptor = os.dup(console.file.fileno())
    except (AttributeError, OSError, io.UnsupportedOperation):
        yield console.file  # not a real file (a test's capture): draw on it directly
        return
    with os.fdopen(descriptor, "w", encoding="utf-8", errors="replace") as terminal:
        yield terminal


class _Bars:
    def __init__(self, terminal: IO[str]) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        bars = Console(file=terminal, force_terminal=True, width=console.width)
        self.progress: Progress = Progress(
            TextColumn("[bold]{task.description:<11}"),
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[label]}"),
            console=bars,
            # Python-level prints stay where they were: a converter's banner must still
            # land in exporters.quiet's capture, not on the terminal through the bars.
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self.tasks: dict[str, TaskID] = {}
        self.done: dict[str, int] = {}
        self.labels: dict[str, str] = {}

    def update(self, step: Step) -> None:
        task = self.tasks.get(step.task)
        if task is None:
            self.progress.start()  # at the first report, not while TensorFlow loads
            self.tasks[step.task] = self.progress.add_task(
                step.task, total=step.total, completed=step.done, label=step.label
            )
        elif step.done < self.done[step.task]:  # started over (calibration runs twice)
            self.progress.reset(task, total=step.total, completed=step.done, label=step.label)
        else:
            self.progress.update(task, total=step.total, completed=step.done, label=step.label)
        if step.label != self.labels.get(step.task):
            # A new unit (artifact, row) is drawn at once, however short: the timed
            # refresh (10 a second) would skip a row that takes milliseconds.
            self.progress.refresh()
        self.done[step.task] = step.done
        self.labels[step.task] = step.label
