"""Options that several commands share, declared once so they read and parse alike.

Each alias is a complete `Annotated` parameter type: a command writes
`artifacts: ArtifactIds = None` and gets the same flag, help text and default as every
other command that takes it. Typer copies the option object per command, so sharing
one is safe.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer


class Device(enum.StrEnum):
    cpu = "cpu"
    gpu = "gpu"


def split_names(text: str | None) -> tuple[str, ...]:
    """A comma-separated option as its non-blank items: ' a, b,,' -> ('a', 'b')."""
    return tuple(p.strip() for p in (text or "").split(",") if p.strip())


ArtifactsDir = Annotated[
    Path | None,
    typer.Argument(
        help="Artifacts folder with manifest.json [default: ./artifacts]", show_default=False
    ),
]
ArtifactIds = Annotated[
    str | None,
    typer.Option(
        "--artifacts",
        "-a",
        help="Artifact ids, comma-separated [default: all]",
        show_default=False,
    ),
]
Limit = Annotated[
    int | None,
    typer.Option("--limit", min=1, help="Use only the first N images.", show_default=False),
]
Backends = Annotated[
    str | None,
    typer.Option(
        "--backends",
        help="Backends: TF.js wasm, cpu, webgl, webgpu; LiteRT.js wasm, wasm-threaded, "
        "webgpu [default: each runtime's].",
        show_default=False,
    ),
]
DeviceOption = Annotated[Device, typer.Option("--device", help="Device of the TensorFlow runtime.")]
Unsafe = Annotated[
    bool,
    typer.Option(
        "--unsafe",
        help="Load and run models holding code or graph ops outside the safe list "
        "(file, network, process access); only for models you trust.",
    ),
]
Wait = Annotated[
    bool,
    typer.Option("--wait", help="If another cnnx is writing the same output folder, wait for it."),
]
