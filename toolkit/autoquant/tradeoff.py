"""The --quantize auto trade-off, beside the model: a Markdown table and a plot.

`quantize_auto.md` lists every candidate (result, p50, size, agreement, accuracy drop,
the checks it failed) and why the winner won; `quantize_auto.png` plots p50 against
agreement, marker area by file size, the winner ringed, failures grey. Both go in the
candidates' format folder: `tflite/` or `onnx/`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# The decision as recorded in the manifest (toolkit.autoquant.search.Decision.to_dict()):
# these functions read that record, so they can redraw from a manifest alone.
Decision = dict[str, Any]

TABLE = "quantize_auto.md"
PLOT = "quantize_auto.png"


def tradeoff_files(decision: Decision) -> tuple[str, str]:
    """The table and the plot, relative to the artifacts folder."""
    folder = decision.get("format", "tflite")  # a decision recorded before ONNX: TFLite
    return f"{folder}/{TABLE}", f"{folder}/{PLOT}"


def describe_budget(budget: dict[str, Any]) -> str:
    """'agreement >= 99.0%, accuracy drop <= 0.5%', or each artifact's own tolerance."""
    parts = []
    if budget.get("min_agreement") is not None:
        parts.append(f"agreement >= {budget['min_agreement']:.1%}")
    if budget.get("max_accuracy_drop") is not None:
        parts.append(f"accuracy drop <= {budget['max_accuracy_drop']:.1%}")
    return ", ".join(parts) or "each artifact's verify tolerance"


def render_table(decision: Decision) -> str:
    """The trade-off table as Markdown (also the text of exit 9)."""
    lines = [
        f"| candidate | result | p50 ms ({decision['target']} x1) | size | agreement "
        "| accuracy drop | why |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for m in decision["candidates"]:
        mark = "**winner**" if decision["winner"] == m["candidate"] else m["status"]
        lines.append(
            f"| {m['candidate']} | {mark} | {_num(m['p50_ms'], '.3f')} | "
            f"{m['size'] / 1024:.1f} KiB | {_pct(m['agreement'])} | {_pct(m['accuracy_drop'])} "
            f"| {'; '.join(m['failed_checks'])} |"
        )
    return "\n".join(lines)


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def write_tradeoff(root: Path, decision: Decision) -> None:
    from toolkit.core.atomic import write_text_atomic

    text = [
        "# --quantize auto: the trade-off",
        "",
        f"On {decision['images']} images of the {decision['on']}, in {decision['target']} "
        f"with 1 thread; budget: {describe_budget(decision['budget'])}.",
        "",
        render_table(decision),
        "",
        f"Winner: {decision['winner'] or 'none'}: {decision['reason']}.",
        "",
    ]
    table, plot = tradeoff_files(decision)
    write_text_atomic(root / table, "\n".join(text))
    tradeoff_plot(root / plot, decision)


def tradeoff_plot(path: Path, decision: Decision) -> None:
    """p50 against agreement, marker area by file size; the winner ringed, failures grey."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from toolkit.core.atomic import write_bytes_atomic

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    largest = max((m["size"] for m in decision["candidates"]), default=1) or 1
    for n, m in enumerate(decision["candidates"]):
        if m["p50_ms"] is None or m["agreement"] is None:
            continue  # failed to run, or the same model as plain int8
        x, y = float(m["p50_ms"]), 100 * float(m["agreement"])
        area = 60 + 600 * m["size"] / largest
        ax.scatter(x, y, s=area, color="tab:green" if m["passed"] else "tab:grey", alpha=0.6)
        if decision["winner"] == m["candidate"]:
            ax.scatter(x, y, s=area + 120, facecolors="none", edgecolors="black")
        label = f"{m['candidate']} ({m['size'] / 1024:.0f} KiB)"
        # Alternate above and below: float16 and float32 often sit on the same spot.
        offset = (8, 5 if n % 2 == 0 else -12)
        ax.annotate(label, (x, y), textcoords="offset points", xytext=offset, fontsize=8)
    floor = decision["budget"].get("min_agreement")
    if isinstance(floor, float):
        ax.axhline(100 * floor, color="tab:red", linestyle="--", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlabel(f"p50 latency, ms, log scale ({decision['target']} x1, batch 1)")
    ax.set_ylabel("top-1 agreement with the SavedModel, %")
    ax.set_title(
        f"--quantize auto on the {decision['on']}: green within budget, ringed: the winner;\n"
        "marker area: file size",
        fontsize=9,
    )
    fig.tight_layout()
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    write_bytes_atomic(path, buffer.getvalue())
