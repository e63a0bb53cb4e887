"""What every command shares: error mapping, console, lazy imports.

Command modules import only typer and this module at top level, so `cnnx --help`
never pays for TensorFlow.
"""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from toolkit.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, CnnxError, describe_internal

# Off a terminal (CI logs, pipes) rich would wrap tables at 80 columns; report tables
# are wider than that and unreadable when cut.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int) -> typer.Exit:
    err_console.print(f"cnnx: error: {message}", markup=False)
    return typer.Exit(code)


def handles_errors(command: F) -> F:
    """Turn library errors into one line on stderr and the error's exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except typer.Exit:
            raise
        except CnnxError as error:
            raise fail(error.one_line(), error.exit_code) from None
        except KeyboardInterrupt:
            raise fail("interrupted; nothing half-written was kept", EXIT_INTERRUPTED) from None
        except Exception as error:  # a bug: say so in one line, traceback on request
            if os.environ.get("CNNX_DEBUG"):
                traceback.print_exc(file=sys.stderr)
            raise fail(
                f"{describe_internal(error)} (rerun with CNNX_DEBUG=1 for the traceback)",
                EXIT_INTERNAL,
            ) from None

    return wrapper  # type: ignore[return-value]
