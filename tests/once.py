"""Expensive builds made once per test run, shared by every pytest-xdist worker.

A session fixture is built once per worker: with `make test`'s two workers the trained
run, the all-format artifacts and the model files would each be built twice. Instead the
first worker to ask builds into a folder of the run's shared temporary root, holding
cnnx's own output lock (toolkit/core/writelock.py) while it builds; the others wait on
that lock and read what it built. A build that failed leaves no done marker, so the next
worker to ask builds it again (and fails the same way) instead of reading half a folder.
This module holds no tests.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from toolkit.core.writelock import output_lock
from toolkit.errors import CnnxWarning

DONE = ".built"  # written last, inside the folder, by the worker that built it


def shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The temporary root of this run: under xdist each worker's base temp is a
    `popen-gwN` folder of one shared per-run folder; without xdist, the base temp."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def built_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], object]
) -> Path:
    """The folder `name` of the run's shared root, filled by `build(folder)` exactly once
    per run: the worker that gets the lock first builds, the others wait and reuse it."""
    folder = shared_root(tmp_path_factory) / name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CnnxWarning)  # "waiting for pid N": expected here
        with output_lock(folder, wait=True):
            if not (folder / DONE).exists():
                shutil.rmtree(folder, ignore_errors=True)  # what a failed build left
                folder.mkdir(parents=True)
                build(folder)
                (folder / DONE).touch()
    return folder
