"""The per-layer error table of an int8 model (TensorFlow's quantization debugger).

Each quantized layer is run from the float input of the layer before, so a row is that
layer's own error, worst first by RMSE / scale as TensorFlow's guide ranks them.
`--debug-quant` writes it beside the model (CSV and Markdown); `--float-fallback auto`
uses it only to order the candidates it then measures (exporters/tflite_fallback.py).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from toolkit.core.atomic import write_text_atomic


def layer_table(debugger: Any) -> list[dict[str, Any]]:
    """Per-layer error of the int8 model, worst first (RMSE / scale, as TF's guide ranks)."""
    text = io.StringIO()
    debugger.layer_statistics_dump(text)
    text.seek(0)
    rows: list[dict[str, Any]] = []
    for row in csv.DictReader(text):
        scale = float(row["scale"])
        mse = float(row["mean_squared_error"])
        rows.append(
            {
                "op_name": row["op_name"],
                "tensor_name": row["tensor_name"],
                "tensor_idx": int(float(row["tensor_idx"])),
                "num_elements": int(float(row["num_elements"])),
                "scale": scale,
                "zero_point": int(float(row["zero_point"])),
                "rmse": math.sqrt(mse),
                "rmse_over_scale": math.sqrt(mse) / scale if scale else float("inf"),
                "max_abs_error": float(row["max_abs_error"]),
                "mean_error": float(row["mean_error"]),
            }
        )
    rows.sort(key=lambda r: r["rmse_over_scale"], reverse=True)
    return rows


def write_tables(rows: list[dict[str, Any]], target: Path) -> list[Path]:
    stem = target.with_suffix("")
    csv_path = stem.with_name(stem.name + ".quant_debug.csv")
    md_path = stem.with_name(stem.name + ".quant_debug.md")
    columns = list(rows[0]) if rows else ["op_name", "tensor_name"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(csv_path, buffer.getvalue())
    lines = [
        "# Per-layer int8 error",
        "",
        "Each quantized layer run from the float input of the layer before; worst first.",
        "`rmse/scale` above about 0.3 marks a layer worth keeping in float "
        "(`--float-fallback NAME`).",
        "",
        "| # | op | rmse/scale | rmse | max abs | scale | tensor |",
        "| ---: | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for rank, row in enumerate(rows, 1):
        lines.append(
            f"| {rank} | {row['op_name']} | {row['rmse_over_scale']:.3f} | {row['rmse']:.3g} | "
            f"{row['max_abs_error']:.3g} | {row['scale']:.3g} | `{row['tensor_name']}` |"
        )
    write_text_atomic(md_path, "\n".join(lines) + "\n")
    return [csv_path, md_path]
