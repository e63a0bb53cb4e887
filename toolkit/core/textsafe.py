"""Names from files and folders, made safe for formats that need one line.

A class name comes from a folder name, a labels file, a hand-edited manifest or a model
config: it can hold a newline (which would shift every later label of a labels.txt by
one), other control characters, or bytes that are not UTF-8 (a folder name from another
system). `one_line` turns any of them into a single printable line.
"""

from __future__ import annotations

import re

# Line and paragraph separators and every C0/C1 control character.
_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def one_line(text: str, fallback: str = "") -> str:
    """`text` on one line: control characters become spaces, undecodable bytes U+FFFD."""
    cleaned = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    cleaned = " ".join(_BREAKS.sub(" ", cleaned).split())
    return cleaned or fallback


def label_lines(labels: list[str]) -> str:
    """labels.txt: one label per line, in output order, each guaranteed one line."""
    return "".join(f"{one_line(label, f'class_{i}')}\n" for i, label in enumerate(labels))
