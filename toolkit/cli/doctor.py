"""Check this machine and say the command that fixes each missing part.

Checks Python, TensorFlow, the TF.js converter, LiteRT, Node and the npm packages,
Chromium, the emulation cache, MediaPipe and a GPU. Exits 0 when the
core (TensorFlow, LiteRT) works, 8 otherwise.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from toolkit.cli.common import console, handles_errors
from toolkit.errors import RuntimeUnavailable, UsageError

NAME = "doctor"

STYLE = {"ok": "green", "missing": "yellow", "broken": "red", "info": "cyan"}


@handles_errors
def command(
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the checks as JSON on stdout.")
    ] = False,
    timeout: Annotated[
        float,
        typer.Option("--timeout", help="Seconds each check may take before it counts as hung."),
    ] = 60.0,
) -> None:
    from toolkit.doctor import run_checks

    if timeout <= 0:
        raise UsageError(f"--timeout must be positive, got {timeout}")
    report = run_checks(timeout=timeout)
    if json_out:
        typer.echo(report.to_json())
    else:
        from rich.table import Table

        table = Table(title="cnnx doctor", title_justify="left")
        for column in ("check", "status", "detail", "fix"):
            table.add_column(column, overflow="fold")
        for check in report.checks:
            name = f"{check.name} (core)" if check.core else check.name
            status = Text(check.status, style=STYLE.get(check.status, "white"))
            table.add_row(name, status, check.detail, check.fix)
        console.print(table)
    if not report.core_ok:
        names = ", ".join(f"{c.name} ({c.fix})" for c in report.failed_core)
        raise RuntimeUnavailable(f"core checks failed: {names}", "run the fix commands shown")
