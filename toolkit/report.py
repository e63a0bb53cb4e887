"""Reports: a rich table on the terminal, report.json (schema `cnnx.report/1`, documented
in docs/report.md), report.md and the PNG plots, written atomically into one folder.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from toolkit.atomic import staged_dir, write_json_atomic
from toolkit.errors import PathError

if TYPE_CHECKING:
    from toolkit.bench import BenchReport
    from toolkit.verify import VerifyReport

SCHEMA = "cnnx.report/1"
JSON_NAME = "report.json"
MD_NAME = "report.md"


# --- machine --------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_bytes() -> int | None:
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except (ImportError, OSError):
        return None


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _node_version() -> str | None:
    node = os.environ.get("CNNX_NODE") or shutil.which("node")
    if not node:
        return None
    try:
        done = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None


def machine_info() -> dict[str, Any]:
    """CPU model, cores, RAM, OS, Python and library versions, and the date (UTC).

    Reads package versions from the installed metadata, so it never imports TensorFlow.
    """
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": affinity,
        "ram_bytes": _ram_bytes(),
        "os": f"{platform.system()} {platform.release()}",
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cnnx": _version("cnnx"),
        "tensorflow": _version("tensorflow"),
        "keras": _version("keras"),
        "tensorflowjs": _version("tensorflowjs"),
        "ai_edge_litert": _version("ai-edge-litert"),
        "numpy": _version("numpy"),
        "node": _node_version(),
        "date": _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat(),
    }


# --- report.json ----------------------------------------------------------------------


def report_to_dict(report: BenchReport, plots: tuple[str, ...] = ()) -> dict[str, Any]:
    manifest = report.manifest
    artifacts = {
        row.artifact: {"format": row.format, "precision": row.precision, "size": row.size}
        for row in report.rows
    }
    for artifact_id, entry in manifest.artifacts.items():
        if artifact_id in artifacts:
            artifacts[artifact_id]["path"] = entry.path
    return {
        "schema": SCHEMA,
        "created": report.created,
        "command": report.config.command,
        "seconds": round(report.seconds, 3),
        "artifacts_dir": str(Path(report.config.artifacts_dir).resolve()),
        "machine": report.machine,
        "manifest": {
            "created": manifest.created,
            "source": manifest.source,
            "input": manifest.input.to_dict(),
            "labels": manifest.labels,
            "versions": manifest.versions,
        },
        "config": report.config.to_dict(),
        "data": {
            "source": report.evalset_source,
            "images": report.images,
            "labelled": report.labelled,
        },
        "artifacts": artifacts,
        "rows": [row.to_dict() for row in report.rows],
        "gates": {
            "limits": report.config.gates.to_dict(),
            "breaches": [b.to_dict() for b in report.breaches],
        },
        "status": {
            "ok": not (report.drifted or report.breaches or report.failed),
            "drifted": sorted({r.artifact for r in report.drifted}),
            "failed": [f"{r.artifact}|{r.label}" for r in report.failed],
            "skipped": [f"{r.artifact}|{r.label}" for r in report.skipped],
            "breaches": len(report.breaches),
        },
        "plots": list(plots),
    }


def write_report(
    report: BenchReport, out: Path, *, plots: bool = True
) -> tuple[Path, tuple[str, ...]]:
    """report.json, report.md and the plots into `out`, all or nothing."""
    out = Path(out)
    if out.is_file():
        raise PathError(f"--out {out} is a file", "name a folder for the report")
    if out.is_dir() and any(out.iterdir()) and not (out / JSON_NAME).is_file():
        raise PathError(
            f"--out {out} is not empty and holds no {JSON_NAME}",
            "name a new folder (the report folder is replaced as a whole)",
        )
    with staged_dir(out) as tmp:
        names: tuple[str, ...] = ()
        if plots:
            from toolkit.plots import write_plots

            names = write_plots(report, tmp)
        data = report_to_dict(report, names)
        write_json_atomic(tmp / JSON_NAME, data)
        (tmp / MD_NAME).write_text(report_markdown(data), encoding="utf-8")
    return out, names


# --- numbers as text ------------------------------------------------------------------


def fmt_size(size: int | None) -> str:
    if size is None:
        return "-"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / 1024 / 1024:.2f} MB"


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def fmt_pct(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value * 100:.{digits}f}%"


def fmt_num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}e}"


# --- terminal tables ------------------------------------------------------------------


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
    """The full reason of every row that is not ok, one line each, under the tables."""
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
    return lines


def render_bench(report: BenchReport) -> Group:
    """Two compact tables (speed, then parity and accuracy) and every problem in full."""
    speed = _table(
        f"speed: batch-1 latency in ms after {report.config.warmup} warm-up, "
        f"{report.config.runs} runs",
        ["artifact", "runtime", "size", "load", "first", "p50", "p90", "img/s", "memory"],
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
        lat = row.latency
        speed.add_row(
            row.artifact,
            row.label,
            fmt_size(row.size),
            fmt_ms(row.load_ms),
            fmt_ms(row.first_ms),
            fmt_ms(lat.p50 if lat else None),
            fmt_ms(lat.p90 if lat else None),
            "-" if row.throughput is None else f"{row.throughput:.0f}",
            fmt_size(row.memory_bytes),
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


# --- report.md ------------------------------------------------------------------------


def report_markdown(data: dict[str, Any]) -> str:
    """report.md from the report.json dict (so both always say the same)."""
    machine = data.get("machine", {})
    config = data.get("config", {})
    lines = [
        "# cnnx bench report",
        "",
        f"- created: {data.get('created')} in {data.get('seconds')} s",
        f"- artifacts: `{data.get('artifacts_dir')}`",
        f"- images: {data['data']['images']} ({data['data']['source']})",
        f"- machine: {machine.get('cpu')}, {machine.get('cores')} cores, {machine.get('os')}, "
        f"Python {machine.get('python')}, TensorFlow {machine.get('tensorflow')}, "
        f"LiteRT {machine.get('ai_edge_litert')}, Node {machine.get('node')}",
        *_device_lines(data["rows"]),
        f"- latency: batch 1, {config.get('warmup')} warm-up then {config.get('runs')} runs; "
        f"throughput at batch {config.get('batch')}",
        f"- status: {'ok' if data['status']['ok'] else 'NOT OK'}",
        "",
        "## Speed",
        "",
        _md_row(SPEED_HEADER),
        _md_row(["---"] * 3 + ["---:"] * (len(SPEED_HEADER) - 3)),
    ]
    for row in data["rows"]:
        lat = row.get("latency") or {}
        memory = row.get("memory") or {}
        status = "DRIFT" if row["status"] == "ok" and row.get("drifted") else row["status"]
        throughput = row.get("throughput")
        lines.append(
            _md_row(
                [
                    row["artifact"],
                    row["label"],
                    status,
                    fmt_size(row["size"]),
                    fmt_ms(row.get("load_ms")),
                    fmt_ms(row.get("first_ms")),
                    fmt_ms(lat.get("p50")),
                    fmt_ms(lat.get("p90")),
                    fmt_ms(lat.get("p99")),
                    fmt_ms(lat.get("std")),
                    fmt_ms(row.get("ipc_ms")),
                    "-" if throughput is None else f"{throughput:.0f}",
                    fmt_size(memory.get("bytes")),
                ]
            )
        )
    lines += [
        "",
        "## Parity and accuracy",
        "",
        _md_row(PARITY_HEADER),
        _md_row(["---"] * 2 + ["---:"] * (len(PARITY_HEADER) - 3) + ["---"]),
    ]
    for row in data["rows"]:
        m = row.get("metrics") or {}
        failed = [c for c in row.get("checks", []) if not c["passed"]]
        if row["status"] != "ok":
            result = f"{row['status']}: {row['reason']}"
        elif failed:
            result = "; ".join(
                f"{c['metric']} {c['value']} (limit {c['op']} {c['limit']})" for c in failed
            )
        else:
            result = "ok"
        cosine = m.get("cosine")
        lines.append(
            _md_row(
                [
                    row["artifact"],
                    row["label"],
                    fmt_pct(m.get("accuracy")),
                    fmt_pct(m.get("top5")),
                    fmt_pct(m.get("agreement")),
                    _num(m.get("max_abs")),
                    _num(m.get("mean_abs")),
                    "-" if cosine is None else f"{cosine:.6f}",
                    fmt_pct(m.get("accuracy_drop")),
                    result,
                ]
            )
        )
    breaches = data["gates"]["breaches"]
    lines += ["", "## Gates", ""]
    limits = {k: v for k, v in data["gates"]["limits"].items() if v is not None}
    lines.append(f"Limits: {limits or 'none'}")
    lines.append("")
    lines += [f"- BREACH: {b['message']}" for b in breaches] or ["No gate breached."]
    memory_sources = sorted(
        {str((r.get("memory") or {}).get("source")) for r in data["rows"] if r.get("memory")}
    )
    if memory_sources:
        lines += ["", "Memory is read as: " + "; ".join(memory_sources) + "."]
    if data.get("plots"):
        lines += ["", "## Plots", ""] + [f"![{name}]({name})" for name in data["plots"]]
    return "\n".join(lines) + "\n"


SPEED_HEADER = [
    "artifact", "runtime", "status", "size", "load ms", "first ms", "p50 ms", "p90 ms",
    "p99 ms", "std ms", "IPC ms", "img/s", "memory",
]  # fmt: skip
PARITY_HEADER = [
    "artifact", "runtime", "top-1", "top-5", "agreement", "max abs", "mean abs", "cosine",
    "acc. drop", "result",
]  # fmt: skip


def _device_lines(rows: list[dict[str, Any]]) -> list[str]:
    """One line per device reached with --remote (rows `litert@HOST`) that answered."""
    seen: dict[str, dict[str, Any]] = {}
    for row in rows:
        details = (row.get("runtime_info") or {}).get("details") or {}
        if "@" in row["runtime"] and details.get("machine") and row["runtime"] not in seen:
            seen[row["runtime"]] = details
    return [
        f"- device {runtime.partition('@')[2]}: {d.get('cpu')}, {d.get('cores')} cores, "
        f"{d.get('machine')}, {d.get('os')}, Python {d.get('python')}, LiteRT {d.get('litert')}, "
        f"numpy {d.get('numpy')}"
        for runtime, d in seen.items()
    ]


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |"


def _num(value: Any) -> str:
    if isinstance(value, int | float):
        return f"{value:.2e}"
    return "-" if value is None else str(value)
