"""Every process cnnx starts ends with it.

cnnx starts Node runners, Chromium (through Playwright's driver), memory workers and
the peak-kernel probe. After SIGINT or SIGTERM the unwinding closes those it reaches,
but an interrupt can land where no `finally` knows the child yet (between a `Popen` and
the line that keeps its handle), a child can take a while to notice its closed pipe,
and a grandchild whose parent was killed is handed to init, out of anyone's reach.
So the CLI (toolkit/cli/__init__.py):

- calls `adopt_orphans()` at start: cnnx becomes a child subreaper (Linux
  `PR_SET_CHILD_SUBREAPER`), so an orphaned descendant is re-parented to cnnx, not to
  init, and stays in its process tree;
- calls `stop_descendants()` before it exits after an interrupt: SIGTERM to every
  process still in that tree, SIGKILL to any left after GRACE_S, and a wait for them
  all, so that cnnx's exit status is the last thing of the run.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import sys

GRACE_S = 2.0  # for a child to end on SIGTERM before it gets SIGKILL
_PR_SET_CHILD_SUBREAPER = 36


def adopt_orphans() -> bool:
    """Make this process the reaper of its orphaned descendants (False where the
    system cannot: then an orphan goes to init as usual)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def stop_descendants(grace: float = GRACE_S) -> None:
    """End every descendant of this process (SIGTERM, then SIGKILL after `grace`) and
    wait for them."""
    import psutil

    try:
        found = psutil.Process().children(recursive=True)
    except psutil.Error:
        return
    for process in found:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    _, alive = psutil.wait_procs(found, timeout=grace)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=grace)
