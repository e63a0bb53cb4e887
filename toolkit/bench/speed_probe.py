"""What bench measures on a loaded model, before the matrix's parity run: the first
inference, latency (toolkit/measure/timing.py), throughput, memory (toolkit/bench/memory.py) and the
work per second against this machine's peak (toolkit/bench/flops.py, toolkit/bench/machine.py).

    probe = SpeedProbe(runs, warmup, batch, timer, manifest, work, peak)
    run_matrix(manifest, cells, evalset, probe=probe)   # each row gets a Speed
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from toolkit.bench.flops import Work
from toolkit.bench.machine import peak_for
from toolkit.bench.memory import read_memory
from toolkit.errors import CnnxError
from toolkit.manifest import Manifest
from toolkit.measure.evalset import EvalSet
from toolkit.measure.matrix import Cell
from toolkit.measure.rows import Speed
from toolkit.measure.timing import (
    LatencyStats,
    Timer,
    Timing,
    latency_samples,
    self_timing,
    throughput,
    timer_name,
    timing,
)
from toolkit.runtimes import LoadedModel

INTERLEAVED_BLOCKS = 5  # of runs timed from here and by the runtime's own clock, alternating


@dataclass(frozen=True)
class SpeedProbe:
    """Bench's measurement of one loaded model, before the matrix's parity run."""

    runs: int  # timed batch-1 runs
    warmup: int  # untimed runs before them
    batch: int  # throughput batch
    timer: Timer
    manifest: Manifest
    work: Work | None
    peak: dict[str, Any] | None

    def __call__(self, model: LoadedModel, cell: Cell, evalset: EvalSet, load_ns: int) -> Speed:
        timer = self.timer
        x1 = np.ascontiguousarray(evalset.images[:1])
        start = timer()
        model.predict(x1)
        first_ns = timer() - start
        timed, outer = self._latency(model, x1)
        latency = timed.latency
        ipc = outer.p50 - latency.p50 if outer is not None else None
        images_per_s = throughput(model, evalset.images, self.batch, timer)
        memory_bytes, memory_source = None, "not measured for this runtime (docs/report.md)"
        try:
            reading = read_memory(
                model, self.manifest, cell.entry, cell.runtime, cell.options,
                runs=self.warmup + self.runs, batch=self.batch,
            )  # fmt: skip
            if reading is not None:
                memory_bytes, memory_source = reading.bytes, reading.source
        except CnnxError as error:  # a figure missing is not a failed row
            memory_source = f"not measured: {error.one_line()}"
        gflops, percent = self._efficiency(latency, model)
        return Speed(
            load_ms=load_ns / 1e6,
            first_ms=first_ns / 1e6,
            latency=latency,
            latency_outer=outer,
            ipc_ms=ipc,
            pre_ms=timed.pre_ms,
            post_ms=timed.post_ms,
            throughput=images_per_s,
            throughput_batch=self.batch,
            throughput_note="batch-1 model, rows looped" if model.info.max_batch == 1 else "",
            memory_bytes=memory_bytes,
            memory_source=memory_source,
            gflops=gflops,
            peak_percent=percent,
        )

    def _latency(self, model: LoadedModel, x1: np.ndarray) -> tuple[Timing, LatencyStats | None]:
        """The timed runs (toolkit/measure/timing.py). A runtime with a clock of its own (Node,
        the browser) gives the latency, pre_ms and post_ms (its engine's run alone), and
        Python's clock around predict() the outer one with the pipe, taken in
        alternating blocks so a burst of load falls on both."""
        timer = self.timer
        blocks = min(self.runs, INTERLEAVED_BLOCKS)
        sizes = [self.runs // blocks + (i < self.runs % blocks) for i in range(blocks)]
        latency_samples(model, x1, 0, self.warmup, timer)
        first = model.self_timed(x1, sizes[0])
        if first is None:
            return timing(model, x1, self.runs, 0, timer), None
        inner = [first]
        outer: list[int] = []
        for i, size in enumerate(sizes):
            outer += latency_samples(model, x1, size, 0, timer)
            if i and (more := model.self_timed(x1, size)) is not None:
                inner.append(more)
        return self_timing(inner, model.info.runtime), LatencyStats.from_ns(
            outer, f"{timer_name(timer)} around predict()"
        )

    def _efficiency(
        self, latency: LatencyStats, model: LoadedModel
    ) -> tuple[float | None, float | None]:
        if self.work is None or latency.p50 <= 0:
            return None, None
        gflops = self.work.flops / (latency.p50 * 1e6)
        if self.peak is None:
            return gflops, None
        threads = model.info.threads or model.info.details.get("threads")
        return gflops, 100 * gflops / peak_for(
            self.peak, threads if isinstance(threads, int) else None
        )
