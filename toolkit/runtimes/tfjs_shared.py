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


def predict_in_chunks(
    array: np.ndarray, chunk: int, classes: int, predict: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """`predict` over `chunk` rows at a time, joined: float32 [N, classes].

    Chunking bounds each message and the other process's memory; `predict` checks and
    reshapes what one chunk returned.
    """
    parts = [predict(array[start : start + chunk]) for start in range(0, len(array), chunk)]
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
