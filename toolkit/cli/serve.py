"""(to be written)"""

from __future__ import annotations

from toolkit.cli.common import handles_errors
from toolkit.errors import UsageError

NAME = "serve"


@handles_errors
def command() -> None:
    raise UsageError("'cnnx serve' is not available yet")
