"""`python -m toolkit` and the `cnnx` console script.

Signal handling is installed before anything else is imported, so a Ctrl+C or a
SIGTERM during start-up also ends in one line and exit 130/143 (toolkit/core/signals.py).
"""

from __future__ import annotations


def main() -> None:
    from toolkit.core import signals

    signals.install()
    from toolkit.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
