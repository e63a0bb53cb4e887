"""PNG plots of a bench report (matplotlib, Agg: no display needed), drawn from the
report.json dict alone.

- latency.png: batch-1 p50 (bar) and p90 (whisker) of every artifact in every runtime
- size_accuracy.png: artifact size against top-1 accuracy
- per_class.png: per-class accuracy change of each quantized artifact against the
  SavedModel, in percentage points
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from exporters.registry import BY_ID, REFERENCE_ID, format_rank

Report = dict[str, Any]  # a report.json dict (toolkit/bench/report.py)

LATENCY = "latency.png"
SIZE_ACCURACY = "size_accuracy.png"
PER_CLASS = "per_class.png"
MAX_PLOTTED_CLASSES = 200
DPI = 110


def write_plots(report: Report, folder: Path) -> tuple[str, ...]:
    """Write every plot the report has data for; returns the file names written."""
    import matplotlib

    matplotlib.use("Agg")
    written = []
    for name, draw in (
        (LATENCY, _latency),
        (SIZE_ACCURACY, _size_accuracy),
        (PER_CLASS, _per_class),
    ):
        if draw(report, Path(folder) / name):
            written.append(name)
    return tuple(written)


def _latency(report: Report, path: Path) -> bool:
    import matplotlib.pyplot as plt

    rows = [r for r in report["rows"] if r["status"] == "ok" and r.get("latency")]
    if not rows:
        return False
    labels = [f"{r['artifact']}  {r['label']}" for r in rows]
    p50 = np.array([r["latency"]["p50"] for r in rows])
    p90 = np.array([r["latency"]["p90"] for r in rows])
    colors = [_color(r["format"]) for r in rows]
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(rows) + 1.4))
    y = np.arange(len(rows))
    ax.barh(y, p50, color=colors, xerr=[np.zeros_like(p50), p90 - p50], capsize=2)
    ax.set_yticks(y, labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("batch-1 latency, ms (bar p50, whisker p90; log scale)")
    ax.set_title("Latency per artifact and runtime")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return True


def _size_accuracy(report: Report, path: Path) -> bool:
    import matplotlib.pyplot as plt

    points: dict[str, tuple[int, float, str]] = {}
    for row in report["rows"]:
        accuracy = (row.get("metrics") or {}).get("accuracy")
        if row["status"] == "ok" and accuracy is not None:
            points.setdefault(row["artifact"], (row["size"], accuracy, row["format"]))
    if not points:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for artifact, (size, accuracy, fmt) in points.items():
        ax.scatter(size / 1024, accuracy * 100, color=_color(fmt), s=40)
        ax.annotate(
            artifact,
            (size / 1024, accuracy * 100),
            fontsize=7,
            xytext=(4, 3),
            textcoords="offset points",
        )
    ax.set_xscale("log")
    ax.set_xlabel("size, KB (log scale)")
    ax.set_ylabel("top-1 accuracy, %")
    ax.set_title(f"Size against accuracy ({report['data']['images']} images)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return True


def _per_class(report: Report, path: Path) -> bool:
    import matplotlib.pyplot as plt

    def per_class(row: dict[str, Any]) -> np.ndarray | None:
        values = (row.get("metrics") or {}).get("per_class_accuracy")
        return None if not values else np.array([np.nan if v is None else v for v in values])

    reference = next(
        (
            per_class(r)
            for r in report["rows"]
            if r["artifact"] == REFERENCE_ID and per_class(r) is not None
        ),
        None,
    )
    if reference is None:
        return False
    series: dict[str, np.ndarray] = {}
    for row in report["rows"]:
        values = per_class(row)
        if not quantized(row["artifact"], row["precision"]) or row["status"] != "ok":
            continue
        if row["artifact"] in series or values is None:
            continue
        series[row["artifact"]] = (values - reference) * 100
    if not series:
        return False
    classes = report["manifest"]["labels"]
    if len(classes) > MAX_PLOTTED_CLASSES:
        return False  # one bar per class stops being readable (and fitting in memory)
    x = np.arange(len(classes))
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(7, 0.6 * len(classes) + 2), 4.5))
    for i, (artifact, delta) in enumerate(series.items()):
        ax.bar(x + i * width - 0.4 + width / 2, delta, width, label=artifact)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(x, classes, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("accuracy change, percentage points")
    ax.set_title("Per-class accuracy of quantized artifacts against the SavedModel")
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return True


PALETTE = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860")


def _color(fmt: str) -> str:
    """One colour per format, in the artifact table's order of formats."""
    return PALETTE[format_rank(fmt) % len(PALETTE)]


def quantized(artifact_id: str, precision: str) -> bool:
    spec = BY_ID.get(artifact_id)
    return spec.quantized if spec is not None else precision != "float32"
