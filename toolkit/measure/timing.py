"""Timing: what the latency figures hold, and the loops that take them.

The timed region is the runtime's inference call and nothing else. A model that splits
an inference (`LoadedModel.stages`, LiteRT and TensorFlow) is timed around `run` only;
handing the input over (quantize, copy in) and reading the output back (copy out,
dequantize) are timed apart and reported as `pre_ms` and `post_ms`, so an int8 model's
numpy quantization never counts as LiteRT's time. A model without stages is timed
around `predict`. Runtimes in another process (Node, the browser) time themselves by the
same rule (`LoadedModel.self_timed`, web_demo/timed_loop.js) and bench reports the
pipe's cost beside it.

The timer is swappable (`Timer`, nanoseconds; default `time.perf_counter_ns`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from toolkit.runtimes import LoadedModel, SelfTimed

Timer = Callable[[], int]  # nanoseconds
THROUGHPUT_REPEATS = 3


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
    source: str  # which clock measured what

    @classmethod
    def from_ns(cls, samples: list[int], source: str) -> LatencyStats:
        ms = np.asarray(samples, dtype=np.float64) / 1e6
        p50, p90, p99 = (float(v) for v in np.percentile(ms, [50, 90, 99]))
        return cls(
            len(ms), p50, p90, p99, float(ms.mean()), float(ms.std()), float(ms.min()), source
        )

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyStats:
        return cls(**{f.name: data[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class Timing:
    """The timed runs of one model on one batch-1 input."""

    latency: LatencyStats  # the inference call alone (or predict, without stages)
    pre_ms: float | None = None  # median: input quantized and handed to the runtime
    post_ms: float | None = None  # median: output read back and dequantized


def timer_name(timer: Timer) -> str:
    return getattr(timer, "__qualname__", "timer")


def latency_samples(
    model: LoadedModel, x1: np.ndarray, runs: int, warmup: int, timer: Timer
) -> list[int]:
    """Batch-1 latencies (ns) after `warmup` untimed calls: the harness's own loop."""
    return time_inference(model, x1, runs, warmup, timer)[0]


def time_inference(
    model: LoadedModel, x1: np.ndarray, runs: int, warmup: int, timer: Timer
) -> tuple[list[int], list[int], list[int]]:
    """(inference, pre, post) samples in ns; pre and post are empty without stages."""
    stages = model.stages(x1)
    if stages is None:
        predict = model.predict
        for _ in range(warmup):
            predict(x1)
        samples = []
        for _ in range(runs):
            start = timer()
            predict(x1)
            samples.append(timer() - start)
        return samples, [], []
    prepare, run, finish = stages.prepare, stages.run, stages.finish
    prepared = prepare()
    for _ in range(warmup):
        result = run(prepared)
    inference = []
    for _ in range(runs):  # back to back, as an application's steady loop and a bare one
        start = timer()
        result = run(prepared)
        inference.append(timer() - start)
    # Handing over and reading back are timed in loops of their own: done between the
    # timed calls, they touch other memory and leave the runtime's worker threads idle
    # in between, and the next call pays for both (an int8 model's p50 sat 2-3% above a
    # bare invoke() loop that way, and level with it timed back to back).
    pre, post = [], []
    for _ in range(runs):
        start = timer()
        prepare()
        pre.append(timer() - start)
    for _ in range(runs):
        start = timer()
        finish(result)
        post.append(timer() - start)
    return inference, pre, post


def timing(model: LoadedModel, x1: np.ndarray, runs: int, warmup: int, timer: Timer) -> Timing:
    inference, pre, post = time_inference(model, x1, runs, warmup, timer)
    clock = timer_name(timer)
    what = "the inference call" if pre else "predict()"
    return Timing(
        LatencyStats.from_ns(inference, f"{clock} around {what}"),
        _median_ms(pre),
        _median_ms(post),
    )


def self_timing(parts: list[SelfTimed], runtime: str) -> Timing:
    """The Timing of runs a runtime timed itself (Node, a page), over one or more calls."""
    samples = [ns for part in parts for ns in part.samples]
    block = max(part.block for part in parts)
    step = max(part.clock_step_ns for part in parts) / 1e3
    how = f"blocks of {block} runs, " if block > 1 else ""
    latency = LatencyStats.from_ns(
        samples, f"{runtime} clock around the engine's run ({how}clock step {step:g} us)"
    )
    return Timing(
        replace(latency, runs=sum(part.runs for part in parts)),
        _median_ms([ns for part in parts for ns in part.pre]),
        _median_ms([ns for part in parts for ns in part.post]),
    )


def _median_ms(samples: list[int]) -> float | None:
    return float(np.median(samples)) / 1e6 if samples else None


def throughput(model: LoadedModel, images: np.ndarray, batch: int, timer: Timer) -> float:
    """Images per second through `predict` at `batch` rows (the best of a few repeats)."""
    rows = images[:batch]
    if len(rows) < batch:  # a small eval set: repeat images to fill the batch
        rows = np.resize(rows, (batch, *rows.shape[1:])).astype(np.float32)
    rows = np.ascontiguousarray(rows)
    model.predict(rows)  # warm the larger shape (resizes, kernel selection)
    best = math.inf
    for _ in range(THROUGHPUT_REPEATS):
        start = timer()
        model.predict(rows)
        best = min(best, timer() - start)
    return batch / (max(best, 1) / 1e9)
