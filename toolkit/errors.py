"""Typed errors. Each carries the exit code the CLI returns for it.

The library raises these and never prints or exits; the CLI turns one into a single
line on stderr: what failed, the value seen, what to do.
"""

from __future__ import annotations


class CnnxError(Exception):
    """Base of every error a user can cause or fix."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        text = f"{self.message} ({self.hint})" if self.hint else self.message
        return " ".join(text.split())  # never more than one line


# How long a quoted reason (another library's message) may be inside one of our lines.
REASON_LENGTH = 200


def shorten(text: str, limit: int = REASON_LENGTH) -> str:
    """`text` on one line, cut at a word boundary to at most about `limit` characters.

    Other libraries' messages are quoted inside ours; a long one is shortened, never cut
    mid-word, and says it was shortened with a trailing "...". A single word longer than
    the limit (a path) is kept whole.
    """
    words = " ".join(str(text).split())
    if len(words) <= limit:
        return words
    cut = words.rfind(" ", 0, max(1, limit - 3) + 1)
    if cut <= 0:
        cut = words.find(" ")
        if cut < 0:
            return words
    return words[:cut].rstrip(" ,;:-(") + " ..."


def first_line(error: BaseException, limit: int = REASON_LENGTH) -> str:
    """The first line of an exception's message (or its type), shortened at a word."""
    text = str(error).strip().splitlines()
    return shorten(text[0] if text else type(error).__name__, limit)


# Where TensorFlow and numpy start printing values into a message: a bug report needs
# the type and the words, not a tensor's thousands of numbers.
_VALUE_DUMPS = ("<tf.Tensor", "tf.Tensor(", "PerReplica:{", "Mirrored:{", "numpy=", "array(")


def describe_internal(error: BaseException, limit: int = REASON_LENGTH) -> str:
    """'internal error: Type: message' for an unexpected exception: one line, shortened at
    a word, with any tensor or array values left out (CNNX_DEBUG=1 shows them)."""
    text = str(error)
    cuts = [text.find(mark) for mark in _VALUE_DUMPS if mark in text]
    if cuts:
        text = text[: min(cuts)].rstrip(" ({[:,=") + " <values left out>"
    return f"internal error: {type(error).__name__}: {shorten(text, limit)}"


class CnnxWarning(UserWarning):
    """Something the user allowed but should know about (e.g. a graph run under --unsafe).

    The library warns with `warnings.warn(CnnxWarning(text))`; the CLI prints
    `cnnx: warning: text` on stderr.
    """


class UsageError(CnnxError):
    """Contradictory or out-of-range options (the same code as Typer's usage errors)."""

    exit_code = 2


class PathError(CnnxError):
    """A path is missing, of the wrong kind, not writable, or already exists."""

    exit_code = 3


class ModelError(CnnxError):
    """A model file cannot be read, is not an image classifier, or holds code (Lambda)."""

    exit_code = 4


class DataError(CnnxError):
    """A dataset, image or calibration set cannot be used."""

    exit_code = 5


class ExportError(CnnxError):
    """A conversion failed (for example an op without an int8 kernel)."""

    exit_code = 6


class ArtifactError(CnnxError):
    """A manifest or artifact is malformed, missing, or its hash does not match."""

    exit_code = 7


class RuntimeUnavailable(CnnxError):
    """A runtime (Node, Chromium, the emulator, a GPU) is missing, crashed or timed out."""

    exit_code = 8


class VerificationFailed(CnnxError):
    """At least one artifact drifted past its tolerance."""

    exit_code = 9


class GateFailed(CnnxError):
    """A bench gate (size, latency, accuracy drop, baseline regression) was breached."""

    exit_code = 10


class ResourceError(CnnxError):
    """The machine refused: disk full, port taken, out of memory."""

    exit_code = 11


# Exit codes that are not errors of the library.
EXIT_INTERNAL = 1  # a bug: an unexpected exception (CNNX_DEBUG=1 shows the traceback)
EXIT_INTERRUPTED = 130  # SIGINT (Ctrl+C)
EXIT_TERMINATED = 143  # SIGTERM

EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "internal error (a bug; rerun with CNNX_DEBUG=1 for the traceback)",
    2: "usage: unknown flag, bad value, contradictory options",
    3: "path missing, of the wrong kind, not writable, or already there",
    4: "model unreadable, not an image classifier, or holds code (needs --unsafe)",
    5: "data unusable: corrupt image, empty folder, single class, wrong size",
    6: "export failed (op without a kernel, converter error)",
    7: "manifest or artifact malformed, missing, or hash mismatch",
    8: "runtime unavailable, crashed or timed out (node, chromium, qemu, GPU, an SSH device)",
    9: "verification failed: an artifact drifted past its tolerance",
    10: "a bench gate was breached (size, latency, accuracy drop, baseline)",
    11: "machine resource: disk full, port in use",
    130: "interrupted (SIGINT, Ctrl+C)",
    143: "terminated (SIGTERM)",
}
