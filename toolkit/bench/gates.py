"""CI gates of a bench: size, latency and accuracy limits, and regressions against an
earlier report. A breach exits 10 after the report is written (BenchReport)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.bench.report import SCHEMA
from toolkit.core.limits import read_json
from toolkit.errors import PathError, UsageError
from toolkit.measure.rows import Row
from toolkit.measure.tolerances import REFERENCE_ID

DEFAULT_MAX_REGRESSION = 20.0  # percent of baseline p50 latency
ACCURACY_REGRESSION = 0.005  # half a point of accuracy or agreement below the baseline


@dataclass(frozen=True)
class Gates:
    """CI limits; a breach exits 10 after the report is written. None: not checked."""

    max_size_kb: float | None = None  # every shipped artifact (not the SavedModel reference)
    max_latency_ms: float | None = None  # batch-1 p50 of every ok row
    max_accuracy_drop: float | None = None  # fraction: 0.01 is one point
    baseline: Path | None = None  # an earlier report.json
    max_regression: float = DEFAULT_MAX_REGRESSION  # percent slower p50 than the baseline

    def __post_init__(self) -> None:
        for name in ("max_size_kb", "max_latency_ms", "max_accuracy_drop"):
            value = getattr(self, name)
            if value is not None and (not math.isfinite(value) or value < 0):
                raise UsageError(f"--{name.replace('_', '-')} must be >= 0, got {value}")
        if self.max_regression < 0:
            raise UsageError(f"--max-regression must be >= 0, got {self.max_regression}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_size_kb": self.max_size_kb,
            "max_latency_ms": self.max_latency_ms,
            "max_accuracy_drop": self.max_accuracy_drop,
            "baseline": str(self.baseline) if self.baseline else None,
            "max_regression": self.max_regression,
        }


@dataclass(frozen=True)
class Breach:
    kind: str  # size | latency | accuracy_drop | regression
    artifact: str
    label: str
    metric: str
    value: float
    limit: float
    message: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def check_gates(rows: tuple[Row, ...], gates: Gates) -> list[Breach]:
    breaches: list[Breach] = []
    sized: set[str] = set()
    for row in rows:
        if (
            gates.max_size_kb is not None
            and row.artifact != REFERENCE_ID
            and row.artifact not in sized
        ):
            sized.add(row.artifact)
            kb = row.size / 1024
            if kb > gates.max_size_kb:
                breaches.append(
                    Breach(
                        "size",
                        row.artifact,
                        row.label,
                        "size_kb",
                        kb,
                        gates.max_size_kb,
                        f"{row.artifact} is {kb:.1f} KB > --max-size-kb {gates.max_size_kb:g}",
                    )
                )
        if not row.ran:
            continue
        if (
            gates.max_latency_ms is not None
            and row.latency
            and row.latency.p50 > gates.max_latency_ms
        ):
            breaches.append(
                Breach(
                    "latency",
                    row.artifact,
                    row.label,
                    "p50_ms",
                    row.latency.p50,
                    gates.max_latency_ms,
                    f"{row.artifact} on {row.label} p50 {row.latency.p50:.3f} ms > "
                    f"--max-latency-ms {gates.max_latency_ms:g}",
                )
            )
        drop = row.metrics.accuracy_drop if row.metrics else None
        if (
            gates.max_accuracy_drop is not None
            and drop is not None
            and drop > gates.max_accuracy_drop + 1e-12
        ):
            breaches.append(
                Breach(
                    "accuracy_drop",
                    row.artifact,
                    row.label,
                    "accuracy_drop",
                    drop,
                    gates.max_accuracy_drop,
                    f"{row.artifact} on {row.label} lost {drop * 100:.2f} points of accuracy > "
                    f"--max-accuracy-drop {gates.max_accuracy_drop * 100:g} points",
                )
            )
    if gates.baseline is not None:
        breaches += baseline_breaches(rows, read_baseline(gates.baseline), gates.max_regression)
    return breaches


def read_baseline(path: Path) -> dict[str, dict[str, Any]]:
    """Rows of an earlier report.json keyed by 'artifact|label'."""
    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    if not path.exists():
        raise PathError(f"--baseline {path} does not exist", "pass an earlier report.json")
    data = read_json(path, "--baseline", UsageError)  # regular file, size and depth limits
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        seen = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise UsageError(
            f"--baseline {path} is not a cnnx report (schema {seen!r}, expected {SCHEMA!r})"
        )
    rows = data.get("rows")
    if not isinstance(rows, list):
        raise UsageError(f"--baseline {path} has no rows")
    return {f"{r.get('artifact')}|{r.get('label')}": r for r in rows if isinstance(r, dict)}


def baseline_breaches(
    rows: tuple[Row, ...], baseline: dict[str, dict[str, Any]], max_regression: float
) -> list[Breach]:
    breaches: list[Breach] = []
    for row in rows:
        old = baseline.get(row.key)
        if not row.ran or old is None or old.get("status") != "ok":
            continue
        old_p50 = (old.get("latency") or {}).get("p50")
        if isinstance(old_p50, int | float) and old_p50 > 0 and row.latency is not None:
            slower = (row.latency.p50 / old_p50 - 1) * 100
            if slower > max_regression:
                breaches.append(
                    Breach(
                        "regression",
                        row.artifact,
                        row.label,
                        "p50_ms",
                        row.latency.p50,
                        old_p50,
                        f"{row.artifact} on {row.label} p50 {row.latency.p50:.3f} ms is "
                        f"{slower:.0f}% slower than the baseline's {old_p50:.3f} ms "
                        f"(--max-regression {max_regression:g}%)",
                    )
                )
        old_metrics = old.get("metrics") or {}
        if row.metrics is None:
            continue
        for name in ("accuracy", "agreement"):
            new_value = getattr(row.metrics, name)
            old_value = old_metrics.get(name)
            if (
                isinstance(old_value, int | float)
                and new_value is not None
                and new_value < old_value - ACCURACY_REGRESSION
            ):
                breaches.append(
                    Breach(
                        "regression",
                        row.artifact,
                        row.label,
                        name,
                        new_value,
                        old_value,
                        f"{row.artifact} on {row.label} {name} {new_value * 100:.2f}% fell "
                        f"from the baseline's {old_value * 100:.2f}%",
                    )
                )
    return breaches
