"""One way to run `cnnx` in a test: in this process, or as a real process.

`cnnx(*args)` runs the command line in this test process by default: a command that
needs TensorFlow then costs no fresh interpreter and no second TensorFlow import (seconds
each on a 2-core machine). It goes through the same Typer app, option parsing and error
mapping as the `cnnx` script, so it gives the same exit code, stdout and one-line stderr.
What only a real process has is asked for with `process=True`: signal handling and exit
codes 130/143 (toolkit/__main__.py installs them before anything is imported),
import-time behaviour (`cnnx --help` without TensorFlow), a terminal, and locks held
between processes; `spawn` starts one to signal or race. This module holds no tests.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import traceback
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

# `python -m toolkit`: the same entry point as the `cnnx` console script.
CLI = (sys.executable, "-m", "toolkit")


class Done(NamedTuple):
    """What a finished `cnnx` gave back: subprocess.CompletedProcess's fields, which also
    unpack as `code, stdout, stderr = cnnx(...)`."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """stdout then stderr, for a text that may be on either."""
        return self.stdout + self.stderr


def cnnx(
    *args: Any,
    cwd: Path | str | None = None,
    env: Mapping[str, str | None] | None = None,
    process: bool = False,
    timeout: float = 600,
) -> Done:
    """Run `cnnx ARGS` and wait for it. `env` adds variables (None removes one) for this
    call only; `process=True` runs it as a real `python -m toolkit` process (the only
    kind `timeout` can stop)."""
    argv = [str(a) for a in args]
    if process:
        done = subprocess.run(
            [*CLI, *argv],
            cwd=cwd,
            env=_environment(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Done(done.returncode, done.stdout, done.stderr)
    if any(name.startswith("CNNX_FAULT") for name in env or {}):
        # The fault hook kills or stops the process it runs in: here, the test run.
        raise ValueError("a fault injected with CNNX_FAULT_* needs process=True")
    return _in_process(argv, cwd, env)


def spawn(
    *args: Any,
    cwd: Path | str | None = None,
    env: Mapping[str, str | None] | None = None,
    **popen: Any,
) -> subprocess.Popen[Any]:
    """Start `cnnx ARGS` as a real process and return at once (to signal it, race it, or
    read it while it runs). Output is piped as text unless `popen` says otherwise."""
    options: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    options.update(popen)
    argv = [str(a) for a in args]
    return subprocess.Popen([*CLI, *argv], cwd=cwd, env=_environment(env), **options)


def _environment(env: Mapping[str, str | None] | None) -> dict[str, str]:
    merged = {**os.environ, **(env or {})}
    return {name: value for name, value in merged.items() if value is not None}


def _in_process(
    argv: list[str], cwd: Path | str | None, env: Mapping[str, str | None] | None
) -> Done:
    from typer.testing import CliRunner

    from toolkit.cli import app

    with _working_directory(cwd), _warnings_as_a_process():
        result = CliRunner().invoke(app, argv, env=env, catch_exceptions=True)
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        # What escaped the CLI's own error mapping: the real process would print Python's
        # traceback and exit 1, and so does this.
        info = result.exc_info or (type(result.exception), result.exception, None)
        stderr += "".join(traceback.format_exception(*info))
        return Done(1, result.stdout, stderr)
    return Done(result.exit_code, result.stdout, stderr)


@contextlib.contextmanager
def _warnings_as_a_process() -> Iterator[None]:
    """Python's own warning filters and printer for the call, as a fresh interpreter has
    them: a warning the command raises is printed on its stderr (where a test sees it),
    not collected by pytest, and one shown by an earlier call is shown again."""
    with warnings.catch_warnings():
        warnings.resetwarnings()
        warnings.simplefilter("default")
        ignored = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)
        for category in ignored:
            warnings.simplefilter("ignore", category)
        warnings.showwarning = _print_warning
        yield


def _print_warning(message: Any, category: Any, filename: str, lineno: int, *_: Any) -> None:
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno))


@contextlib.contextmanager
def _working_directory(cwd: Path | str | None) -> Iterator[None]:
    if cwd is None:
        yield
        return
    before = os.getcwd()
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(before)
