"""SIGINT and SIGTERM become exceptions that unwind every writer, then a clean exit.

Python turns SIGINT into KeyboardInterrupt; SIGTERM kills the process on the spot,
leaving staging folders behind. `install()` makes SIGTERM raise `Terminated` the same
way, so `with staged_dir(...)` and every `finally` remove what they started; the CLI
then prints one line and exits 130 (SIGINT) or 143 (SIGTERM).

Two traps of a Python signal handler, both closed here:

- The handler raises wherever the interpreter happens to be, also inside a finalizer
  (TensorFlow's `AtomicFunction.__del__`), where Python prints "Exception ignored in
  ..." and swallows the exception: the command then carried on and exited 0. The
  unraisable hook installed here recognises the swallowed interrupt and delivers the
  signal again, so it is raised at the next ordinary line instead.
- A second signal while the first unwinds would abort the clean-up half way; once an
  interrupt is raised, further signals are noted and ignored.

A third trap: while the main thread is inside a long C++ call (TensorFlow converting),
the Python handler runs only when that call returns, and a C++ layer that checks for
signals itself may swallow the exception the handler raised. Neither may let a writer
swap its new folder into place after the user interrupted: `install()` also points
`signal.set_wakeup_fd` at a pipe, which the C-level handler writes at once, and
`raise_if_interrupted()` (called by atomic.py just before every swap or rename into
place) raises the interrupt when the pipe or the handler saw one.

After the interrupt nothing more is worth reporting: other finalizers' complaints are
silenced (CNNX_DEBUG=1 shows them) and `exit_now` ends the process without running
TensorFlow's own teardown, whose finalizers print tracebacks on a half-unwound state.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any

from toolkit.errors import EXIT_INTERRUPTED, EXIT_TERMINATED

EXIT_CODES = {signal.SIGINT: EXIT_INTERRUPTED, signal.SIGTERM: EXIT_TERMINATED}


class Terminated(BaseException):
    """SIGTERM, raised like KeyboardInterrupt is for SIGINT (not an Exception: a bare
    `except Exception` must not swallow it)."""


_state: dict[str, Any] = {
    "signal": None,
    "raised": False,
    "count": 0,
    "reported": False,
    "wakeup": None,  # the read end of the set_wakeup_fd pipe
}
# The third signal ends the process at once, whatever the clean-up is doing.
_FORCE_AFTER = 3


def install() -> None:
    """Handle SIGINT and SIGTERM as described above (main thread only; idempotent)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for number in EXIT_CODES:
        signal.signal(number, _handler)
    if _state["wakeup"] is None:
        read_end, write_end = os.pipe()
        os.set_blocking(read_end, False)
        os.set_blocking(write_end, False)
        signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
        _state["wakeup"] = read_end


def raise_if_interrupted() -> None:
    """Raise the interrupt now if SIGINT or SIGTERM has arrived, even when its Python
    handler has not run yet (the C-level handler has written the wakeup pipe) or its
    exception was swallowed on the way. Called before anything is put in place."""
    number = _state["signal"] or _drain_wakeup()
    if number is None:
        return
    if not _state["raised"]:
        _state["count"] += 1
    _state["signal"] = number
    _state["raised"] = True
    raise KeyboardInterrupt if number == signal.SIGINT else Terminated


def _drain_wakeup() -> int | None:
    """The last SIGINT or SIGTERM written to the wakeup pipe since it was read."""
    if _state["wakeup"] is None:
        return None
    seen = None
    with contextlib.suppress(BlockingIOError, OSError):
        while chunk := os.read(_state["wakeup"], 64):
            for number in chunk:
                if number in (signal.SIGINT, signal.SIGTERM):
                    seen = number
    return seen


def received() -> int | None:
    """The signal that interrupted this process, if any."""
    number = _state["signal"]
    return int(number) if number is not None else None


def _handler(number: int, frame: FrameType | None) -> None:
    _state["count"] += 1
    if _state["count"] >= _FORCE_AFTER:
        os._exit(EXIT_CODES.get(signal.Signals(number), 128 + number))
    if _state["raised"]:
        return  # already unwinding: let the clean-up finish
    _state["signal"] = number
    _state["raised"] = True
    if not os.environ.get("CNNX_DEBUG"):
        sys.unraisablehook = _unraisable
    if number == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated


def _unraisable(unraisable: Any) -> None:
    """A finalizer swallowed the interrupt: deliver the signal again, from another thread
    and a moment later, so that it is raised at an ordinary line of the main thread and
    not inside this hook (where Python would swallow it once more, with a traceback)."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt | Terminated):
        number = _state["signal"]
        if number is not None:
            _state["raised"] = False
            _state["count"] -= 1  # the same interrupt, not a second Ctrl+C
            timer = threading.Timer(0.05, os.kill, (os.getpid(), number))
            timer.daemon = True
            timer.start()
    # Anything else a finalizer says after an interrupt is noise on a half-torn state.


def message(number: int) -> str:
    """The one line the CLI prints for an interrupt."""
    what = "interrupted (SIGINT)" if number == signal.SIGINT else "terminated (SIGTERM)"
    return f"{what}; nothing half-written was kept (each output is as it was, or complete)"


def mark_reported() -> None:
    _state["reported"] = True


def reported() -> bool:
    return bool(_state["reported"])


def exit_now(code: int) -> None:
    """End the process after an interrupt: exit handlers run (they stop child
    processes such as Chromium), then every process still below this one is ended
    and waited for (toolkit/core/children.py); TensorFlow's finalizers do not run. The
    caller removes the temporary paths the unwinding could not reach first (atomic.py)."""
    from toolkit.core.children import stop_descendants

    sys.unraisablehook = _unraisable
    for number in EXIT_CODES:
        signal.signal(number, signal.SIG_IGN)
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()
    with contextlib.suppress(BaseException):
        stop_descendants()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)
