"""The `cnnx` command line. Each command lives in its own module of this package."""

from __future__ import annotations

from typing import Annotated

import typer

from toolkit import __version__
from toolkit.cli import bench, demo, doctor, export, info, package, serve, train, verify
from toolkit.errors import EXIT_CODES
from toolkit.quiet import silence_tensorflow

silence_tensorflow()

EPILOG = "Exit codes: " + "; ".join(f"{code} {text}" for code, text in EXIT_CODES.items())

app = typer.Typer(
    name="cnnx",
    help="Export Keras/TensorFlow image classifiers to TFLite and TF.js, and prove the "
    "exports still give the same answers, fast.",
    epilog=EPILOG,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

for module in (train, export, bench, verify, serve, package, info, demo, doctor):
    app.command(name=module.NAME, help=module.__doc__, epilog=EPILOG)(module.command)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cnnx {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """cnnx: train or load a CNN, export it, and verify and bench every artifact."""


def main() -> None:
    app()
