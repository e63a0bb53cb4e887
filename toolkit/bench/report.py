"""The report, the last stage of bench: report.json (schema `cnnx.report/1`, documented
in docs/report.md), report.md and the PNG plots (toolkit/bench/plots.py), written atomically
into one folder.

It takes plain data, the report.json dict that `BenchReport.to_dict()` builds (rows from
another machine can join it as dicts), and imports nothing from the stages before it.
The terminal tables are the CLI's (toolkit/cli/tables.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from toolkit.core.atomic import staged_dir, write_json_atomic
from toolkit.errors import PathError

SCHEMA = "cnnx.report/1"
JSON_NAME = "report.json"
MD_NAME = "report.md"


# --- files ---------------------------------------------------------------------------


def write_report(
    data: dict[str, Any], out: Path, *, plots: bool = True
) -> tuple[Path, tuple[str, ...]]:
    """report.json, report.md and the plots of `data` (a report.json dict) into `out`,
    all or nothing. Returns the folder and the plot file names written."""
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
            from toolkit.bench.plots import write_plots

            names = write_plots(data, tmp)
        data = {**data, "plots": list(names)}
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


def fmt_rate(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if value < 1 else f"{value:.2f}" if value < 100 else f"{value:.0f}"


def fmt_percent(value: float | None) -> str:
    """An already-scaled percentage (12.5 -> '12.5%')."""
    return "-" if value is None else f"{value:.1f}%"


def fmt_pct(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value * 100:.{digits}f}%"


def fmt_num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}e}"


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
        f"- latency: batch 1, {config.get('warmup')} warm-up then {config.get('runs')} runs of "
        f"the inference call alone (pre and post: input handed over, output read back); "
        f"throughput at batch {config.get('batch')}",
        f"- work: {_work_line(data.get('work'), machine.get('peak'))}",
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
                    fmt_ms(row.get("pre_ms")),
                    fmt_ms(row.get("post_ms")),
                    fmt_ms(row.get("ipc_ms")),
                    "-" if throughput is None else f"{throughput:.0f}",
                    fmt_size(memory.get("bytes")),
                    fmt_rate(row.get("gflops")),
                    fmt_percent(row.get("peak_percent")),
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
    software = software_gpu_note(data["rows"])
    lines += ["", software] if software else []
    lines += _browser_section(data)
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


# Devices of rows a software GPU drew (SwiftShader, llvmpipe...): their figures are a CPU's.
SOFTWARE_DEVICES = ("swiftshader", "software")


def software_gpu_note(rows: list[dict[str, Any]]) -> str:
    """One sentence naming the rows (report dicts) that ran on a software GPU, or ''."""
    labels = sorted(
        {
            r["label"]
            for r in rows
            if (r.get("runtime_info") or {}).get("device") in SOFTWARE_DEVICES
        }
    )
    if not labels:
        return ""
    return (
        f"Software GPU ({', '.join(labels)}): parity is real, latency is the CPU's "
        "emulating a GPU, not a GPU figure, and never recommended."
    )


BROWSER_HEADER = [
    "artifact", "runtime", "engine", "backend", "build", "threads", "isolated", "gpu",
    "p50 ms", "result",
]  # fmt: skip


def _browser_section(data: dict[str, Any]) -> list[str]:
    """The recommendation, then what each browser row really ran on (engine, backend,
    wasm build, threads, cross-origin isolation, the WebGPU adapter or WebGL renderer)."""
    recommendation = data.get("recommendation")
    if not recommendation:
        return []
    browser = [r for r in data["rows"] if r["runtime"] in recommendation["browser_runtimes"]]
    lines = ["", "## In the browser", "", recommendation["sentence"]]
    if not browser:
        return lines
    lines += ["", _md_row(BROWSER_HEADER), _md_row(["---"] * 8 + ["---:", "---"])]
    for row in browser:
        info = row.get("runtime_info") or {}
        details = info.get("details") or {}
        gpu = details.get("gpu_name") or "-"
        if details.get("gpu_software"):
            gpu += " (software)"
        isolated = details.get("cross_origin_isolated")
        result = "DRIFT" if row.get("drifted") else row["status"]
        lines.append(
            _md_row(
                [
                    row["artifact"],
                    row["label"],
                    details.get("engine", "-"),
                    info.get("backend", "-"),
                    details.get("wasm_build") or ("simd" if details.get("wasm_simd") else "-"),
                    info.get("threads") or "-",
                    "-" if isolated is None else ("yes" if isolated else "no"),
                    gpu,
                    fmt_ms((row.get("latency") or {}).get("p50")),
                    result if row["status"] == "ok" else f"{result}: {row['reason']}",
                ]
            )
        )
    return lines


SPEED_HEADER = [
    "artifact", "runtime", "status", "size", "load ms", "first ms", "p50 ms", "p90 ms",
    "p99 ms", "std ms", "pre ms", "post ms", "IPC ms", "img/s", "memory", "GFLOP/s", "% peak",
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


def _work_line(work: Any, peak: Any) -> str:
    if not isinstance(work, dict):
        return "not counted"
    text = (
        f"{work['flops'] / 1e6:.2f} MFLOP ({work['macs'] / 1e6:.2f} M MACs) per image, "
        f"{work['source']}"
    )
    if isinstance(peak, dict):
        text += (
            f"; machine peak {peak['gflops_1_thread']:.1f} GFLOP/s on 1 thread, "
            f"{peak['gflops_all_threads']:.1f} on {peak['threads_all']} ({peak['kernel']})"
        )
    return text


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |"


def _num(value: Any) -> str:
    if isinstance(value, int | float):
        return f"{value:.2e}"
    return "-" if value is None else str(value)
