"""Describe a model or artifact: format, inputs/outputs, shapes, dtypes, size, parameters.

PATH may be a cnnx run folder, an artifacts folder (manifest.json), a .keras or .h5
file, a SavedModel folder, a .tflite file or a TF.js model (folder or model.json). The
preprocessing on record (run.json or manifest.json) is shown too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from toolkit.cli.common import console, handles_errors
from toolkit.cli.options import Unsafe

if TYPE_CHECKING:
    from toolkit.info import Info

NAME = "info"


@handles_errors
def command(
    path: Annotated[Path, typer.Argument(help="Model file or folder, run or artifacts folder.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    unsafe: Unsafe = False,
) -> None:
    """Describe a model or artifact: format, tensors, shapes, dtypes, size, preprocessing."""
    from toolkit.info import describe

    info = describe(path, unsafe=unsafe)
    if as_json:
        typer.echo(json.dumps(info.to_dict(), indent=2))
        return
    render(info)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _shape(shape: list[int]) -> str:
    return "[" + ", ".join("?" if d < 0 else str(d) for d in shape) + "]"


def render(info: Info) -> None:
    from rich.table import Table

    head = Table(show_header=False, box=None, pad_edge=False)
    head.add_column(style="bold")
    head.add_column()
    head.add_row("path", info.path)
    head.add_row("format", info.format)
    head.add_row("size", f"{_size(info.size)} ({info.size:,} bytes)")
    if info.params is not None:
        head.add_row("parameters", f"{info.params:,}")
    if info.preprocessing:
        head.add_row("preprocessing", preprocessing_line(info.preprocessing))
    if info.labels:
        shown = ", ".join(info.labels[:12]) + (" ..." if len(info.labels) > 12 else "")
        head.add_row("labels", f"{len(info.labels)}: {shown}")
    for key, value in info.details.items():
        if key != "artifacts" and value not in (None, {}, []):
            head.add_row(key, _plain(value))
    console.print(head)

    tensors = Table(title="tensors", title_justify="left")
    for column in ("", "name", "shape", "dtype", "quantization"):
        tensors.add_column(column)
    for role, items in (("input", info.inputs), ("output", info.outputs)):
        for t in items:
            q = t.get("quantization")
            quant = f"scale {q['scale']:.6g}, zero point {q['zero_point']}" if q else "-"
            tensors.add_row(role, t["name"], _shape(t["shape"]), t["dtype"], quant)
    console.print(tensors)

    artifacts = info.details.get("artifacts")
    if artifacts:
        table = Table(title="artifacts", title_justify="left")
        for column in ("id", "format", "precision", "runtime", "size", "path"):
            table.add_column(column)
        for key, row in artifacts.items():
            table.add_row(
                key,
                row["format"],
                row["precision"],
                row["runtime"],
                _size(row["size"]),
                row["path"],
            )
        console.print(table)
        for key, row in artifacts.items():
            if "gpu" in row:  # recorded by cnnx export --gpu-answer
                console.print(f"{key} on the GPU: {row['gpu']}", highlight=False, markup=False)


def preprocessing_line(spec: dict[str, Any]) -> str:
    from toolkit.data.inputspec import InputSpec
    from toolkit.errors import CnnxError

    try:
        return InputSpec.from_dict(spec).describe()
    except CnnxError:
        return _plain(spec)


def _plain(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_plain(v)}" for k, v in value.items() if v is not None)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(_plain(v) for v in value)
    return str(value)
