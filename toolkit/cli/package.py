"""Package an artifacts folder for a device or the web: a folder and a zip.

rpi: int8 (uint8 input) + float32 models, classify.py, requirements, setup.sh, test images.

android: float32 + int8 models with TFLite metadata (normalization, labels), Kotlin snippets.

web: the static page on TF.js, LiteRT.js, both, ONNX Runtime Web or all three
(--engine). Bundles read only manifest.json and check every sha256.

On a terminal, a progress bar shows the stage being built (models, metadata, the
self-test, the zip); none when stdout is a pipe or a file.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from toolkit.cli.common import console, handles_errors
from toolkit.cli.options import Wait
from toolkit.cli.progress import progress_bars
from toolkit.packaging import BUNDLE_TARGETS

NAME = "package"


Target = StrEnum("Target", [(v, v) for v in BUNDLE_TARGETS])  # type: ignore[misc]


class Engine(StrEnum):
    tfjs = "tfjs"
    litertjs = "litertjs"
    both = "both"
    onnx = "onnx"
    all = "all"


@handles_errors
def command(
    target: Annotated[Target, typer.Option("--target", "-t", help="Which bundle to build.")],
    artifacts_dir: Annotated[
        Path | None,
        typer.Argument(help="Artifacts folder with manifest.json (default: ./artifacts)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Bundle folder (default: ./bundles/TARGET)."),
    ] = None,
    make_zip: Annotated[
        bool, typer.Option("--zip/--no-zip", help="Also write OUT.zip beside the folder.")
    ] = True,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing bundle (never merged).")
    ] = False,
    engine: Annotated[
        Engine | None,
        typer.Option(
            "--engine",
            help="web only: the page's engine and artifacts: tfjs (TF.js models, the "
            "default), litertjs (the .tflite files on LiteRT.js), both, onnx (the .onnx "
            "files on ONNX Runtime Web) or all.",
        ),
    ] = None,
    wait: Wait = False,
) -> None:
    """Package an artifacts folder for android, rpi (Raspberry Pi) or web."""
    from toolkit.core.locate import artifacts_dir as locate_artifacts
    from toolkit.packaging import package

    source = locate_artifacts(artifacts_dir)
    with progress_bars() as progress:
        folder = package(
            target.value,
            source,
            out,
            force=force,
            make_zip=make_zip,
            engine=engine.value if engine else None,
            progress=progress,
            wait=wait,
        )
    line = Text.assemble((target.value, "bold"), f" bundle: {folder}")
    console.print(line, highlight=False, soft_wrap=True)
    zip_path = folder.with_suffix(".zip")
    if make_zip and zip_path.is_file():
        size = zip_path.stat().st_size
        console.print(f"zip: {zip_path} ({size / 1024:.1f} KiB)", highlight=False, soft_wrap=True)
    readme = folder / "README.md"
    if readme.is_file():
        console.print(f"next: read {readme}", highlight=False, soft_wrap=True)
