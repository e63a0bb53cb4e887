"""(to be written)"""

from __future__ import annotations

from toolkit.cli.common import handles_errors
from toolkit.errors import UsageError

NAME = "doctor"


@handles_errors
def command() -> None:
    raise UsageError("'cnnx doctor' is not available yet")
