"""What a training is asked to do and what it reports: the config, progress events and
result, shared by the in-process training (toolkit/train/training.py) and the multi-worker
supervisor (toolkit/train/multiworker.py) without either importing the other's module."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from toolkit.core.locate import RUNS_DIR
from toolkit.core.provenance import utc_stamp
from toolkit.data import DataSpec
from toolkit.errors import UsageError
from toolkit.train.models import ARCHS

STRATEGIES = ("none", "mirrored", "multiworker")

# Defaults measured on a 2-core machine: the seed CNN on 10,000 shapes reaches >90%
# test accuracy in well under two minutes (benchmarks/train_bench.py records it).
DEFAULT_EPOCHS = 8
DEFAULT_BATCH_SIZE = 64
DEFAULT_LEARNING_RATE = 2e-3
DEFAULT_WORKER_TIMEOUT = 300.0  # seconds: time to start a worker by hand on another machine


@dataclass(frozen=True)
class TrainConfig:
    data: DataSpec = field(default_factory=DataSpec)
    arch: str = "seed"
    epochs: int = DEFAULT_EPOCHS
    batch_size: int = DEFAULT_BATCH_SIZE
    learning_rate: float = DEFAULT_LEARNING_RATE
    width: float = 1.0
    seed: int = 0
    out: Path | None = None  # None: runs/<data>-<arch>-<UTC timestamp> under runs_dir
    runs_dir: Path = RUNS_DIR
    resume: Path | None = None  # a run folder or .keras file to continue from
    strategy: str = "none"
    deterministic: bool = False  # TF op determinism: reproducible bits, somewhat slower
    # multiworker: how long to wait for every worker to join, and for the next step,
    # before giving up (a dead or never-started worker otherwise hangs the others).
    worker_timeout: float = DEFAULT_WORKER_TIMEOUT
    wait: bool = False  # another cnnx writes the same run folder: wait instead of failing

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise UsageError(f"unknown architecture {self.arch!r}", f"use one of {ARCHS}")
        if self.epochs < 1:
            raise UsageError(f"--epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1, got {self.batch_size}")
        if not 0 < self.learning_rate < 10:
            raise UsageError(f"--learning-rate must be within (0, 10), got {self.learning_rate}")
        if self.strategy not in STRATEGIES:
            raise UsageError(f"unknown strategy {self.strategy!r}", f"use one of {STRATEGIES}")
        if not 0 < self.worker_timeout <= 86400:
            raise UsageError(
                f"--worker-timeout must be within (0, 86400] seconds, got {self.worker_timeout}"
            )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["data"] = self.data.to_dict()
        for key in ("out", "runs_dir", "resume"):
            data[key] = str(data[key]) if data[key] is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """The inverse of to_dict (a multi-worker run sends its config to a subprocess)."""
        values = dict(data)
        values["data"] = DataSpec.from_dict(values["data"])
        for key in ("out", "runs_dir", "resume"):
            values[key] = Path(values[key]) if values.get(key) is not None else None
        values["runs_dir"] = values["runs_dir"] or RUNS_DIR
        return cls(**values)


@dataclass(frozen=True)
class TrainEvent:
    """One progress report: kind is data, epoch_start, batch, epoch_end, test or saved."""

    kind: str
    epoch: int = 0  # 1-based
    epochs: int = 0
    step: int = 0  # 1-based within the epoch
    steps: int = 0
    logs: dict[str, float] = field(default_factory=dict)


ProgressFn = Callable[[TrainEvent], None]


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    test_accuracy: float
    test_loss: float
    val_accuracy: float
    train_accuracy: float
    epochs: int
    seconds: float
    params: int
    history: dict[str, list[float]]
    workers: int = 1  # processes that trained it (multiworker: the TF_CONFIG cluster)
    wrote_run: bool = True  # False on a worker that is not the chief: the chief wrote it


def default_run_dir(config: TrainConfig) -> Path:
    stamp = utc_stamp()
    base = Path(config.runs_dir) / f"{config.data.name}-{config.arch}-{stamp}"
    candidate, n = base, 1
    while candidate.exists():  # two runs in the same second
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate
