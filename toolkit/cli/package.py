"""(to be written)"""

from __future__ import annotations

from toolkit.cli.common import handles_errors
from toolkit.errors import UsageError

NAME = "package"


@handles_errors
def command() -> None:
    raise UsageError("'cnnx package' is not available yet")
