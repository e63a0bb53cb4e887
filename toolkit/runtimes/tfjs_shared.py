"""What the adapters that run JavaScript engines (tfjs_node.py, browser.py, litertjs.py,
litertjs_node.py) do alike.

All run the graph in an outside process found through an environment variable, take a
`backend` option, send batches in chunks and time runs on the other side's clock under
a time limit scaled from one measured call. The process, protocol and messages of each
stay in its own module.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from toolkit.errors import RuntimeUnavailable, UsageError
from toolkit.runtimes import PicturesFn

if TYPE_CHECKING:
    from toolkit.manifest import ArtifactEntry, Manifest


def executable_from_env(variable: str, fix: str) -> str | None:
    """The executable named by $VARIABLE, or None when it is unset or empty.

    A variable that names anything but an executable file is an error (with `fix`), not
    a reason to fall back: the user asked for that binary.
    """
    given = os.environ.get(variable)
    if not given:
        return None
    if not (os.path.isfile(given) and os.access(given, os.X_OK)):
        raise RuntimeUnavailable(f"{variable}={given} is not an executable file", fix)
    return given


def checked_model_json(manifest: Manifest, entry: ArtifactEntry, options: dict[str, Any]) -> Path:
    """The artifact's model.json: hash-checked (unless the `check` option is False), its
    graph allowed by the graph-op policy (or `unsafe`), every shard inside its folder."""
    from toolkit.graph.tfjs_model import read_tfjs_model

    path = manifest.artifact_path(entry, check=bool(options.get("check", True)))
    return read_tfjs_model(path, unsafe=bool(options.get("unsafe", False))).path


def backend_option(options: dict[str, Any], backends: tuple[str, ...], runtime: str) -> str:
    """The `backend` load option (wasm when not given), one of `backends`."""
    backend = str(options.get("backend") or "wasm")
    if backend not in backends:
        raise UsageError(
            f"{runtime} has no backend {backend!r}", f"choose from {', '.join(backends)}"
        )
    return backend


CHUNK_BYTES = 16 << 20  # input bytes per request: bounds the message and the runner's memory
MAX_ROWS = 256  # rows per request however small they are
SLACK = 4.0  # a chunk may take this many times the measured time per row, plus the timeout


def chunk_rows(array: np.ndarray) -> int:
    """Rows per request for `array`: as many as fit in CHUNK_BYTES, 1 to MAX_ROWS."""
    row_bytes = max(1, array[:1].nbytes)
    return max(1, min(MAX_ROWS, CHUNK_BYTES // row_bytes))


def predict_in_chunks(
    array: np.ndarray,
    classes: int,
    timeout: float,
    predict: Callable[[np.ndarray, float], np.ndarray],
    progress: PicturesFn | None = None,
) -> np.ndarray:
    """`predict(rows, limit)` over `array` a chunk at a time, joined: float32 [N, classes].

    The first request is one row under `timeout` alone; every later chunk's time limit
    is `timeout` plus SLACK times its rows at the time per row measured on the chunk
    before, so a slow model on many pictures gets the time its work needs and a hung
    runner is still caught. `progress` hears of the pictures done after each chunk.
    """
    parts = []
    rows, done, per_row = 1, 0, None
    while done < len(array):
        part = array[done : done + rows]
        limit = timeout if per_row is None else timeout + SLACK * len(part) * per_row
        started = time.monotonic()
        parts.append(predict(part, limit))
        per_row = (time.monotonic() - started) / len(part)
        done += len(part)
        rows = chunk_rows(array)
        if progress is not None:
            progress(done, len(array))
    if not parts:
        return np.zeros((0, classes), dtype=np.float32)
    return np.concatenate(parts)


def timing_limit(timeout: float, runs: int, one_call: Callable[[], object]) -> float:
    """The time limit for `runs` timed runs: `timeout` plus three times `runs` calls as
    long as one measured `one_call()` (which also warms the shape up)."""
    started = time.monotonic()
    one_call()
    one = time.monotonic() - started
    return timeout + one * runs * 3


def npm_version(node_modules: Path, package: str) -> str | None:
    """The installed version of an npm package, or None when it cannot be read."""
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        manifest = json.loads((node_modules / package / "package.json").read_text("utf-8"))
        return str(manifest["version"])
    return None
