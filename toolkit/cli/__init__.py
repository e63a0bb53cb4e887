"""The `cnnx` command line. Each command lives in its own module of this package."""

from __future__ import annotations

import inspect
import signal
from typing import Annotated, Any

import typer
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

from toolkit import __version__
from toolkit.cli import bench, demo, doctor, export, info, package, serve, train, verify
from toolkit.cli.common import fail
from toolkit.core import signals
from toolkit.core.atomic import remove_private_paths
from toolkit.core.children import adopt_orphans
from toolkit.core.quiet import silence_tensorflow
from toolkit.errors import EXIT_CODES

silence_tensorflow()

EPILOG = "Exit codes: " + "; ".join(f"{code} {text}" for code, text in EXIT_CODES.items())


def paragraphs(doc: str | None) -> str:
    """A docstring as help text: each paragraph on one line, so the terminal wraps it
    at its own width instead of at the source's line breaks."""
    blocks = inspect.cleandoc(doc or "").split("\n\n")
    return "\n\n".join(escape(" ".join(block.split())) for block in blocks if block.strip())


def _plain_help(params: list[Any]) -> list[Any]:
    """Help texts are plain text, not Rich markup: a `[default: ...]` or `[user@]` in
    them is shown as written. On/off flags take no value: show no `<bool>` for them."""
    for param in params:
        if getattr(param, "help", None) and not getattr(param, "_help_escaped", False):
            param.help = escape(param.help)
            param._help_escaped = True
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


class Command(TyperCommand):
    def get_params(self, ctx: Any) -> list[Any]:
        return _plain_help(super().get_params(ctx))


class Group(TyperGroup):
    def get_params(self, ctx: Any) -> list[Any]:
        return _plain_help(super().get_params(ctx))


app = typer.Typer(
    name="cnnx",
    help="Export Keras/TensorFlow image classifiers to TFLite, TF.js and ONNX, and prove the "
    "exports still give the same answers, fast.",
    epilog=EPILOG,
    no_args_is_help=True,
    cls=Group,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


for module in (train, export, bench, verify, serve, package, info, demo, doctor):
    app.command(name=module.NAME, help=paragraphs(module.__doc__), epilog=EPILOG, cls=Command)(
        module.command
    )


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
    """The `cnnx` command. After SIGINT or SIGTERM it exits 130 or 143 with one line,
    without TensorFlow's teardown (see toolkit/core/signals.py)."""
    signals.install()
    adopt_orphans()  # a grandchild whose parent dies stays below cnnx, to be ended with it
    try:
        app()
    except signals.Terminated:
        code = 143
    except KeyboardInterrupt:
        code = 130
    except SystemExit:
        number = signals.received()
        if number is None:
            raise
        code = signals.EXIT_CODES[signal.Signals(number)]
    else:
        return
    number = signals.received() or (signal.SIGTERM if code == 143 else signal.SIGINT)
    if not signals.reported():
        fail(signals.message(number), code)
    remove_private_paths()  # whatever the unwinding could not reach (a C++ call, a finalizer)
    signals.exit_now(code)
