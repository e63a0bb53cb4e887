"""`cnnx --help` and each command's help read well: paragraphs reflow to the terminal
instead of keeping the source's line breaks (no ragged half-lines), and flags show no
`<bool>` placeholder. And the CLI as tests/cli.py runs it in the test process answers as
the real process does."""

from __future__ import annotations

import inspect
from importlib import import_module

import pytest

from tests.cli import cnnx

COMMANDS = ("train", "export", "bench", "verify", "serve", "package", "info", "demo", "doctor")
LONGEST_WORD = 30  # a line may end this much short of the width when the next word is long


def help_lines(*args: str, columns: int) -> list[str]:
    # A real process: Rich reads the width and colour settings when it is imported.
    env = {"COLUMNS": str(columns), "TERM": "dumb", "NO_COLOR": "1"}
    done = cnnx(*args, "--help", env=env, process=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "<bool>" not in done.stdout
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) <= columns
    return [line.strip() for line in lines]


def paragraph_lines(lines: list[str], paragraph: str) -> list[str]:
    """The consecutive help lines that spell `paragraph`, word for word."""
    words = paragraph.split()
    for start, line in enumerate(lines):
        if line.split()[:3] != words[:3]:
            continue
        taken, count = [], 0
        for following in lines[start:]:
            taken.append(following)
            count += len(following.split())
            if count >= len(words):
                break
        if " ".join(taken).split() == words:
            return taken
    raise AssertionError(f"paragraph not found whole in the help: {paragraph[:60]}...")


@pytest.mark.parametrize("command", COMMANDS)
def test_help_paragraphs_reflow_and_flags_have_no_bool(command: str) -> None:
    doc = inspect.cleandoc(import_module(f"toolkit.cli.{command}").__doc__ or "")
    for columns in (70, 120):
        lines = help_lines(command, columns=columns)
        for paragraph in doc.split("\n\n"):
            shown = paragraph_lines(lines, paragraph)
            # Every line but a paragraph's last fills the terminal: no half-lines.
            assert all(len(line) >= columns - LONGEST_WORD for line in shown[:-1]), shown


def test_top_level_help_has_no_bool() -> None:
    assert any("export" in line for line in help_lines(columns=80))


def test_brackets_in_help_are_shown_as_written() -> None:
    # Rich would read "[default: ...]" as a style tag and drop it.
    shown = " ".join(help_lines("export", columns=200))
    assert "[default: ./artifacts]" in shown
    shown = " ".join(help_lines("bench", columns=200))
    assert "[default: yours, or CNNX_SSH_CONFIG]" in shown


@pytest.mark.parametrize(
    "args",
    [("frobnicate",), ("export", "--to", "savedmodel", "--quantize", "int8"), ("info", "no.keras")],
)
def test_the_cli_in_the_test_process_answers_as_the_real_one(args: tuple[str, ...]) -> None:
    """tests/cli.py's in-process run gives the process's exit code and output, word for
    word (the real one, started as `python -m toolkit`, names itself so in usage lines)."""
    inside = cnnx(*args)
    real = cnnx(*args, process=True)
    assert inside.returncode == real.returncode != 0
    assert inside.stdout == real.stdout
    assert inside.stderr == real.stderr.replace("python -m toolkit", "cnnx")
