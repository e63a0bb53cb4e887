"""Serve the web demo with the exported models on 127.0.0.1 (Ctrl+C stops it).

The page reads the labels, the input spec and the artifacts from the folder's
manifest.json: the TF.js models run on TF.js, the .tflite files on LiteRT.js, both from
web_demo/node_modules (no CDN). Append ?model=ID, ?engine=tfjs|litertjs and ?backend=NAME
to the URL to choose. Exit 11 when the port is taken.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from toolkit.cli.common import console, handles_errors

NAME = "serve"


@handles_errors
def command(
    artifacts_dir: Annotated[
        Path | None,
        typer.Argument(
            help="Artifacts folder with manifest.json and a TF.js or TFLite export "
            "[default: ./artifacts]",
            show_default=False,
        ),
    ] = None,
    port: Annotated[
        int, typer.Option("--port", "-p", help="Port to listen on; 0 picks a free one.")
    ] = 8000,
    host: Annotated[
        str,
        typer.Option("--host", help="Address to bind; the default keeps the demo on this machine."),
    ] = "127.0.0.1",
) -> None:
    """Serve the web demo for ARTIFACTS_DIR until interrupted."""
    from toolkit.core.locate import artifacts_dir as locate_artifacts
    from toolkit.manifest import load_manifest
    from toolkit.web.page import ENGINE_FORMATS, ENGINE_NAMES
    from toolkit.web.server import make_server

    folder = locate_artifacts(artifacts_dir)
    server = make_server(folder, host=host, port=port)
    manifest = load_manifest(folder)
    for engine, fmt in ENGINE_FORMATS.items():
        ids = sorted(k for k, e in manifest.artifacts.items() if e.format == fmt)
        if ids:
            console.print(f"{ENGINE_NAMES[engine]}: {', '.join(ids)}", highlight=False)
    console.print(f"Serving {folder} ({len(manifest.labels)} classes)", highlight=False)
    console.print(f"Open {server.url}", highlight=False, soft_wrap=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        console.print("Stopped.")
    finally:
        server.close()
