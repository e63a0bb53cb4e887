"""Keep converters' native chatter off the terminal.

The TFLite quantizer and the TF.js converter write straight to file descriptors 1 and 2
from C++ ("fully_quantize: 0, inference_type: 6, ...") and print banners from Python.
The library never prints, so conversions run with both descriptors pointed at a
temporary file; its tail is returned so an error can still quote what the converter said.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from typing import TypeVar

from toolkit.errors import REASON_LENGTH, ExportError, shorten

T = TypeVar("T")


class Captured:
    """What a converter wrote while silenced (read after the block ends)."""

    text: str = ""


@contextlib.contextmanager
def silenced() -> Iterator[Captured]:
    captured = Captured()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile(mode="w+b") as sink, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            # Only the descriptors: Python's own sys.stdout/err flush into them, and
            # swapping the objects would leave loggers created here holding a dead stream.
            yield captured
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            captured.text = sink.read()[-8000:].decode("utf-8", "replace")


def quietly(what: str, call: Callable[[], T], limit: int = REASON_LENGTH) -> T:
    """`call()` silenced. If it raises (converters raise ValueError, TF errors, ...), an
    ExportError "WHAT failed: ..." quoting the exception, or the converter's last log line
    where the exception says nothing."""
    with silenced() as said:
        try:
            return call()
        except Exception as error:  # every kind means "failed"
            problem = error
    tail = " ".join(said.text.strip().splitlines()[-1:])  # said.text is read after the block
    raise ExportError(f"{what} failed: {shorten(str(problem) or tail, limit)}")
