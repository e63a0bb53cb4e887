"""TensorFlow's start-up: its noise silenced, and the packages it only probes for left
unimported. Call before anything imports TensorFlow or Keras."""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from types import ModuleType


def silence_tensorflow() -> None:
    # Environment variables must be set before TensorFlow's C++ runtime loads.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # its notice, and run-to-run drift
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", module="tensorflow")
    warnings.filterwarnings("ignore", module="keras")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
    # TF 2.19 logs cuDNN/cuBLAS registration from C++ before absl reads the level above;
    # only pointing fd 2 elsewhere while it imports keeps stderr to our one line.
    if "tensorflow" not in sys.modules and not any(
        isinstance(finder, _StartUp) for finder in sys.meta_path
    ):
        sys.meta_path.insert(0, _StartUp(quiet=not os.environ.get("CNNX_DEBUG")))


@contextlib.contextmanager
def stderr_to_devnull() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null (C++ logs bypass Python's sys.stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


# TensorFlow and Keras try to import these at start-up, for integrations cnnx never uses
# (TFLite's jax converter, DataFrames as training input, an image gallery plot): a third
# of TensorFlow's import time, paid by every cnnx process. Hidden while TensorFlow and
# Keras import, they import as usual afterwards (the TF.js converter's jax, cnnx's plots).
OPTIONAL_AT_IMPORT = ("jax", "pandas", "matplotlib")


class _HideOptional(importlib.abc.MetaPathFinder):
    def find_spec(
        self, name: str, path: object = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name.partition(".")[0] in OPTIONAL_AT_IMPORT:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


class _StartUpLoader(importlib.abc.Loader):
    def __init__(self, inner: importlib.abc.Loader, quiet: bool) -> None:
        self._inner = inner
        self._quiet = quiet

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        if module.__spec__ is not None:
            module.__spec__.loader = self._inner  # the real loader stays visible afterwards
        module.__loader__ = self._inner
        hidden = _HideOptional()
        sys.meta_path.insert(0, hidden)
        try:
            with stderr_to_devnull() if self._quiet else contextlib.nullcontext():
                self._inner.exec_module(module)
        finally:
            sys.meta_path.remove(hidden)


class _StartUp(importlib.abc.MetaPathFinder):
    """Imports `tensorflow` and `keras` (once each, whoever asks first) without the
    packages they only probe for, and TensorFlow with its start-up logs discarded."""

    def __init__(self, quiet: bool) -> None:
        self.pending = {"tensorflow", "keras"}
        self.quiet = quiet

    def find_spec(
        self, name: str, path: object = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name not in self.pending:
            return None
        self.pending.discard(name)
        if not self.pending:
            sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _StartUpLoader(spec.loader, quiet=self.quiet and name == "tensorflow")
        return spec
