"""Progress reports of the long steps (export, calibration, verify, bench, bundles).

The library never prints: a long step takes an optional `progress` callback and calls it
with a `Step` as it goes. The CLI renders them as Rich progress bars on a terminal and
drops them otherwise (toolkit/cli/progress.py); a script may pass its own callback.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    """Where one long step stands: `done` of `total` units of `task`.

    task:   which step ("export", "calibration", "verify", "bench", "bundle"); each
            task is one bar, its label changes as it moves on.
    label:  what is being done now (an artifact id, "litert tflite_int8", a file).
    done:   units finished (artifacts, images, rows, files); 0 when the unit starts.
    total:  units in the step.
    """

    task: str
    label: str
    done: int
    total: int


ProgressFn = Callable[[Step], None]


def no_progress(step: Step) -> None:
    """The default callback: reports go nowhere."""
