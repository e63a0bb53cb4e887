"""What every command shares: error mapping, console, lazy imports.

Command modules import only typer and this module at top level, so `cnnx --help`
never pays for TensorFlow.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import traceback
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from toolkit.core import signals
from toolkit.core.atomic import disk_full
from toolkit.errors import (
    EXIT_INTERNAL,
    CnnxError,
    CnnxWarning,
    ResourceError,
    describe_internal,
)

# Off a terminal (CI logs, pipes) rich would wrap tables at 80 columns; report tables
# are wider than that and unreadable when cut.
# markup=False: names, labels and paths from files and folders are printed as they are;
# Rich markup in them ("[/]") would otherwise be parsed, or fail, mid-output.
console = Console(width=None if sys.stdout.isatty() else 160, markup=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int) -> typer.Exit:
    err_console.print(f"cnnx: error: {message}", markup=False)
    return typer.Exit(code)


def warn(message: str) -> None:
    err_console.print(f"cnnx: warning: {' '.join(message.split())}", markup=False)


def _show_warning(message: Warning | str, category: type[Warning], *args: Any, **kw: Any) -> None:
    if issubclass(category, CnnxWarning):
        warn(str(message))


def interrupted(number: int) -> typer.Exit:
    """The one line and exit code (130 or 143) of a SIGINT or SIGTERM."""
    signals.mark_reported()
    return fail(signals.message(number), signals.EXIT_CODES[signal.Signals(number)])


def machine_refusal(error: Exception) -> ResourceError | None:
    """A full disk or exhausted memory met where no writer or check mapped it (a library's
    cache, a plot's font file): the machine refused, which is exit 11, not a bug."""
    if disk_full(error):
        where = getattr(error, "filename", None)
        return ResourceError(
            "no space left on device" + (f" while writing {where}" if where else ""),
            "free disk space",
        )
    if isinstance(error, MemoryError):
        return ResourceError(f"out of memory: {error}", "close other programs or use less data")
    return None


def handles_errors(command: F) -> F:
    """Turn library errors into one line on stderr and the error's exit code; print the
    library's CnnxWarnings as `cnnx: warning:` lines."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("default", CnnxWarning)
                warnings.showwarning = _show_warning
                return command(*args, **kwargs)
        except typer.Exit:
            raise
        except CnnxError as error:
            if signals.received():  # a child killed by the same Ctrl+C failed first
                raise interrupted(signals.received() or signal.SIGINT) from None
            raise fail(error.one_line(), error.exit_code) from None
        except KeyboardInterrupt:
            raise interrupted(signals.received() or signal.SIGINT) from None
        except signals.Terminated:
            raise interrupted(signal.SIGTERM) from None
        except Exception as error:  # a bug: say so in one line, traceback on request
            if signals.received():
                raise interrupted(signals.received() or signal.SIGINT) from None
            refusal = machine_refusal(error)
            if refusal is not None:
                raise fail(refusal.one_line(), refusal.exit_code) from None
            if os.environ.get("CNNX_DEBUG"):
                traceback.print_exc(file=sys.stderr)
            raise fail(
                f"{describe_internal(error)} (rerun with CNNX_DEBUG=1 for the traceback)",
                EXIT_INTERNAL,
            ) from None

    return wrapper  # type: ignore[return-value]
