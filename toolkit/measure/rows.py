"""Rows: what the run matrix measured for one artifact in one runtime configuration.

Plain frozen data with `to_dict` / `from_dict`, so a row measured elsewhere (another
machine, another process) joins the others as it is: verify, bench, the gates and the
report read rows, never how they were made. A row always has its parity half (status,
metrics, checks); bench adds a `Speed`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from toolkit.measure.parity import Check, Metrics
from toolkit.measure.timing import LatencyStats
from toolkit.measure.tolerances import Tolerance


@dataclass(frozen=True)
class Speed:
    """What bench measured on top of parity. Times in ms; None: not measured."""

    load_ms: float | None = None  # wall time of load(), seen from here
    first_ms: float | None = None  # the first batch-1 inference after load
    latency: LatencyStats | None = None  # the inference call, by the runtime's clock if it has one
    latency_outer: LatencyStats | None = None  # the same calls timed from Python (with IPC)
    ipc_ms: float | None = None  # latency_outer.p50 - latency.p50
    pre_ms: float | None = None  # input quantized and handed over, outside `latency`
    post_ms: float | None = None  # output read back and dequantized, outside `latency`
    throughput: float | None = None  # images per second at `throughput_batch`
    throughput_batch: int | None = None
    throughput_note: str = ""
    memory_bytes: int | None = None
    memory_source: str = ""
    gflops: float | None = None  # the graph's FLOPs per inference / latency p50
    peak_percent: float | None = None  # gflops against this machine's measured peak

    def to_dict(self) -> dict[str, Any]:
        return {
            "load_ms": _round(self.load_ms),
            "first_ms": _round(self.first_ms),
            "latency": self.latency.to_dict() if self.latency else None,
            "latency_outer": self.latency_outer.to_dict() if self.latency_outer else None,
            "ipc_ms": _round(self.ipc_ms),
            "pre_ms": _round(self.pre_ms, 5),
            "post_ms": _round(self.post_ms, 5),
            "throughput": _round(self.throughput),
            "throughput_batch": self.throughput_batch,
            "throughput_note": self.throughput_note,
            "memory": {"bytes": self.memory_bytes, "source": self.memory_source}
            if self.memory_bytes is not None
            else None,
            "gflops": _round(self.gflops),
            "peak_percent": _round(self.peak_percent, 2),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Speed:
        memory = data.get("memory") or {}
        latency, outer = data.get("latency"), data.get("latency_outer")
        return cls(
            load_ms=data.get("load_ms"),
            first_ms=data.get("first_ms"),
            latency=LatencyStats.from_dict(latency) if latency else None,
            latency_outer=LatencyStats.from_dict(outer) if outer else None,
            ipc_ms=data.get("ipc_ms"),
            pre_ms=data.get("pre_ms"),
            post_ms=data.get("post_ms"),
            throughput=data.get("throughput"),
            throughput_batch=data.get("throughput_batch"),
            throughput_note=data.get("throughput_note", ""),
            memory_bytes=memory.get("bytes"),
            memory_source=memory.get("source", ""),
            gflops=data.get("gflops"),
            peak_percent=data.get("peak_percent"),
        )


@dataclass(frozen=True)
class Row:
    """One artifact in one runtime configuration."""

    artifact: str
    runtime: str  # runtime registry name (a remote row may say where: "litert@pi")
    label: str  # e.g. "litert x2", "tfjs-node/wasm"
    precision: str
    format: str
    size: int = 0  # bytes of the artifact's files
    # ok | drift (a check failed) | failed (the runtime could not run it) | skipped
    status: str = "ok"
    reason: str = ""
    metrics: Metrics | None = None  # parity and accuracy on the eval set
    checks: tuple[Check, ...] = ()
    tolerance: Tolerance | None = None
    runtime_info: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0  # wall time of the whole row
    error_code: int = 0  # exit code of the error behind a failed row (7: the artifact)
    speed: Speed | None = None

    @property
    def ran(self) -> bool:
        """The runtime ran it to the end (its figures are real), within tolerance or not."""
        return self.status in ("ok", "drift")

    @property
    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    @property
    def drifted(self) -> bool:
        return any(not c.passed for c in self.checks)

    @property
    def key(self) -> str:
        return f"{self.artifact}|{self.label}"

    @property
    def latency(self) -> LatencyStats | None:
        return self.speed.latency if self.speed else None

    def to_dict(self, *, speed: bool = False) -> dict[str, Any]:
        """The row as JSON; `speed` adds bench's fields (None where not measured)."""
        data: dict[str, Any] = {
            "artifact": self.artifact,
            "runtime": self.runtime,
            "label": self.label,
            "precision": self.precision,
            "format": self.format,
            "size": self.size,
            # Bench reports (schema cnnx.report/1) say a drifted row ran: "ok", drifted.
            "status": "ok" if speed and self.status == "drift" else self.status,
            "reason": self.reason,
        }
        if speed:
            data.update((self.speed or Speed()).to_dict())
        data.update(
            {
                "metrics": self.metrics.to_dict() if self.metrics else None,
                "checks": [c.to_dict() for c in self.checks],
                "drifted": self.drifted,
                "tolerance": self.tolerance.to_dict() if self.tolerance else None,
                "runtime_info": self.runtime_info,
                "seconds": round(self.seconds, 3),
            }
        )
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Row:
        """A row from its JSON (`to_dict`), e.g. one measured on another machine."""
        metrics = data.get("metrics")
        tolerance = data.get("tolerance")
        status = str(data["status"])
        if status == "ok" and data.get("drifted"):
            status = "drift"
        return cls(
            artifact=str(data["artifact"]),
            runtime=str(data["runtime"]),
            label=str(data["label"]),
            precision=str(data["precision"]),
            format=str(data["format"]),
            size=int(data.get("size") or 0),
            status=status,
            reason=str(data.get("reason", "")),
            metrics=_metrics(metrics) if metrics else None,
            checks=tuple(_check(c) for c in data.get("checks", [])),
            tolerance=Tolerance(**tolerance) if tolerance else None,
            runtime_info=dict(data.get("runtime_info") or {}),
            seconds=float(data.get("seconds") or 0.0),
            speed=Speed.from_dict(data) if "latency" in data else None,
        )


def _metrics(data: dict[str, Any]) -> Metrics:
    values: dict[str, Any] = {f.name: data.get(f.name) for f in fields(Metrics)}
    per_class = values.get("per_class_accuracy")
    if per_class is not None:
        values["per_class_accuracy"] = tuple(per_class)
    return Metrics(**values)


def _check(data: dict[str, Any]) -> Check:
    return Check(
        str(data["metric"]),
        float(data["value"]),
        float(data["limit"]),
        str(data["op"]),
        bool(data["passed"]),
        str(data.get("note", "")),
    )


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)
