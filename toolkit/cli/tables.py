"""Terminal tables of bench and verify (rich): the CLI's view of the rows.

Compact: artifact ids and runtime labels are never cut short, numbers give way first.
Every row that is not ok gets its full reason on a line of its own under the tables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from toolkit.bench.recommend import BROWSER_RUNTIMES
from toolkit.bench.report import (
    JSON_NAME,
    MD_NAME,
    fmt_ms,
    fmt_num,
    fmt_pct,
    fmt_percent,
    fmt_rate,
    fmt_size,
    software_gpu_note,
)
from toolkit.measure.rows import Speed

if TYPE_CHECKING:
    from toolkit.bench.run import BenchReport
    from toolkit.measure.verify import VerifyReport

SPEED_COLUMNS = [
    "artifact", "runtime", "size", "load", "first", "p50", "p90", "img/s", "memory",
    "GFLOP/s", "% peak",
]  # fmt: skip


def _table(title: str, columns: list[str], left: int, rows: Any = ()) -> Table:
    """A compact table: the first `left` columns left-aligned, numbers right-aligned.
    Artifact ids and runtime labels are never cut short; numbers give way first."""
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    widths = [
        max([len(r.artifact) for r in rows], default=0),
        max([len(r.label) for r in rows], default=0),
    ]
    for i, name in enumerate(columns):
        table.add_column(
            name,
            justify="left" if i < left or name == "result" else "right",
            no_wrap=True,
            min_width=max(len(name), widths[i] if i < len(widths) else 0),
        )
    return table


def _verdict(status: str, checks: Any) -> Text:
    """One word for a row: ok, DRIFT (with the metrics), failed, error or skipped."""
    failed = [c.metric for c in checks if not c.passed]
    if status == "failed":
        return Text(status, style="bold red")
    if status == "skipped":
        return Text("skipped", style="yellow")
    if failed:
        return Text("DRIFT", style="bold red")
    return Text("ok", style="green")


def _problems(rows: Any) -> list[Text]:
    """The full reason of every row that is not ok, one line each, under the tables, and
    what an ok row's checks note (flips that are near-ties)."""
    lines = []
    for row in rows:
        failed = [c for c in row.checks if not c.passed]
        if row.status in ("failed", "skipped"):
            style = "yellow" if row.status == "skipped" else "red"
            lines.append(
                Text(f"{row.artifact} on {row.label}: {row.status}: {row.reason}", style=style)
            )
        elif failed:
            detail = "; ".join(c.describe() for c in failed)
            lines.append(Text(f"{row.artifact} on {row.label}: {detail}", style="red"))
        elif notes := [c.note for c in row.checks if c.note]:  # near-ties on generated pictures
            lines.append(Text(f"{row.artifact} on {row.label}: {'; '.join(notes)}", style="dim"))
    return lines


def render_bench(report: BenchReport) -> Group:
    """Two compact tables (speed, then parity and accuracy) and every problem in full."""
    work = f"; {report.work.flops / 1e6:.2f} MFLOP per image" if report.work else ""
    speed = _table(
        f"speed: batch-1 latency in ms after {report.config.warmup} warm-up, "
        f"{report.config.runs} runs{work}",
        SPEED_COLUMNS,
        left=2,
        rows=report.rows,
    )
    parity = _table(
        f"accuracy and parity with the SavedModel on {report.evalset_source}",
        ["artifact", "runtime", "top-1", "top-5", "agree", "max abs", "drop", "result"],
        left=2,
        rows=report.rows,
    )
    for row in report.rows:
        s = row.speed or Speed()
        lat = s.latency
        speed.add_row(
            row.artifact,
            row.label,
            fmt_size(row.size),
            fmt_ms(s.load_ms),
            fmt_ms(s.first_ms),
            fmt_ms(lat.p50 if lat else None),
            fmt_ms(lat.p90 if lat else None),
            "-" if s.throughput is None else f"{s.throughput:.0f}",
            fmt_size(s.memory_bytes),
            fmt_rate(s.gflops),
            fmt_percent(s.peak_percent),
        )
        m = row.metrics
        parity.add_row(
            row.artifact,
            row.label,
            fmt_pct(m.accuracy if m else None, 1),
            fmt_pct(m.top5 if m else None, 1),
            fmt_pct(m.agreement if m else None, 1),
            fmt_num(m.max_abs if m else None, 1),
            fmt_pct(m.accuracy_drop if m else None, 1),
            _verdict(row.status, row.checks),
        )
    parts: list[Any] = [speed, parity, *_problems(report.rows)]
    software = software_gpu_note([row.to_dict() for row in report.rows])
    if software:
        parts.append(Text(software, style="yellow"))
    recommendation = report.recommendation
    if any(row.runtime in BROWSER_RUNTIMES for row in report.rows):
        style = "bold" if recommendation.artifact else "yellow"
        parts.append(Text(recommendation.sentence, style=style))
    for breach in report.breaches:
        parts.append(Text(f"gate: {breach.message}", style="bold red"))
    if report.written_to:
        plots = f", {len(report.plots)} plots" if report.plots else ""
        parts.append(Text(f"report: {report.written_to}/ ({JSON_NAME}, {MD_NAME}{plots})"))
    return Group(*parts)


def render_verify(report: VerifyReport) -> Group:
    table = _table(
        f"cnnx verify on {report.data_source}",
        [
            "artifact",
            "runtime",
            "agree",
            "max abs",
            "mean abs",
            "top-1",
            "drop",
            "result",
        ],
        left=2,
        rows=report.rows,
    )
    for row in report.rows:
        m = row.metrics
        table.add_row(
            row.artifact,
            row.label,
            fmt_pct(m.agreement if m else None, 1),
            fmt_num(m.max_abs if m else None, 1),
            fmt_num(m.mean_abs if m else None, 1),
            fmt_pct(m.accuracy if m else None, 1),
            fmt_pct(m.accuracy_drop if m else None, 1),
            _verdict(row.status, row.checks),
        )
    verdict = (
        Text("all artifacts within tolerance", style="green")
        if report.ok
        else Text(
            f"{len(report.drifted)} row(s) drifted, {len(report.errors)} could not run",
            style="bold red",
        )
    )
    return Group(table, *_problems(report.rows), verdict)
