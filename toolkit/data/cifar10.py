"""`cifar10`: CIFAR-10, online through Keras or offline from the standard archive.

Offline sources, in order: --data-path (the `cifar-10-python.tar.gz` archive, the
extracted `cifar-10-batches-py` folder, or a folder holding either), then the Keras cache
(`$KERAS_HOME` or `~/.keras`, `datasets/`). Only when none is found does it call
`keras.datasets.cifar10.load_data()`, which downloads.

The batches are Python pickles. They are read with an unpickler that only accepts the
few numpy names an array needs, so a doctored archive cannot run code.
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.core.limits import read_limited, require_regular_file
from toolkit.data.dataset import Dataset, DataSpec, split_indices
from toolkit.errors import DataError, PathError, shorten

ARCHIVE = "cifar-10-python.tar.gz"
FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_BATCH = "test_batch"
META = "batches.meta"
CLASS_NAMES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]

_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
}


MAX_BATCH_BYTES = 256 << 20  # one CIFAR-10 batch file is about 30 MB


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _unpickle(blob: bytes, where: str) -> dict[Any, Any]:
    try:
        data = _SafeUnpickler(io.BytesIO(blob), encoding="bytes").load()
    except Exception as error:  # pickle raises many types on damaged input
        raise DataError(f"CIFAR-10 batch {where} is damaged: {error}") from None
    if not isinstance(data, dict):
        raise DataError(f"CIFAR-10 batch {where} is not a batch (got {type(data).__name__})")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in data.items()}


def _batch(reader: Callable[[str], bytes], name: str) -> tuple[np.ndarray, np.ndarray]:
    data = _unpickle(reader(name), name)
    try:
        pixels = np.asarray(data["data"], dtype=np.uint8)
        labels = np.asarray(data["labels"], dtype=np.int64)
        # Stored as [N, 3*32*32], channel-planar: red plane, green plane, blue plane.
        images = pixels.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    except (KeyError, ValueError) as error:
        raise DataError(f"CIFAR-10 batch {name} is malformed: {error}") from None
    if len(images) != len(labels) or (labels.size and not 0 <= labels.min() <= labels.max() < 10):
        raise DataError(f"CIFAR-10 batch {name} has inconsistent images and labels")
    return images, labels


def _reader_for(path: Path) -> tuple[Callable[[str], bytes], Callable[[], None]]:
    """A function reading one batch file by name from an archive or a folder."""
    if path.is_file():
        require_regular_file(path, "--data-path")
        try:
            archive = tarfile.open(path, "r:*")  # noqa: SIM115 (closed by the caller)
        except (tarfile.TarError, OSError) as error:
            raise DataError(f"{path} is not a readable CIFAR-10 archive: {error}") from None

        def read_member(name: str) -> bytes:
            try:
                member = archive.extractfile(f"{FOLDER}/{name}")
            except KeyError:
                member = None
            except (tarfile.TarError, OSError, EOFError) as error:
                raise DataError(f"{path} is damaged at {name}: {error}") from None
            if member is None:
                raise DataError(f"{path} has no {FOLDER}/{name}", "is it cifar-10-python.tar.gz?")
            declared = archive.getmember(f"{FOLDER}/{name}").size
            if declared > MAX_BATCH_BYTES:  # a batch is 30 MB: anything huge is a bomb
                raise DataError(f"{path}: {name} unpacks to {declared:,} bytes, not a batch")
            try:
                return member.read()
            except (tarfile.TarError, OSError, EOFError) as error:
                raise DataError(f"{path} is damaged at {name}: {error}") from None

        return read_member, archive.close

    def read_file(name: str) -> bytes:
        if not (path / name).exists():
            raise DataError(f"{path} has no {name}", "is it the extracted cifar-10-batches-py?")
        return read_limited(path / name, "CIFAR-10 batch", MAX_BATCH_BYTES, DataError)

    return read_file, lambda: None


def find_offline(data_path: Path | None) -> Path | None:
    """The archive or batches folder to read, or None when only a download would do."""
    if data_path is not None:
        path = Path(data_path)
        if not path.exists():
            raise PathError(f"--data-path {path} does not exist")
        if path.is_file():
            return path
        for candidate in (path / ARCHIVE, path / FOLDER, path / f"{FOLDER}-target" / FOLDER):
            if candidate.exists():
                return candidate
        if (path / TEST_BATCH).is_file():
            return path
        raise DataError(f"--data-path {path} holds neither {ARCHIVE} nor {FOLDER}/")
    cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets"
    for candidate in (cache / f"{FOLDER}-target" / FOLDER, cache / FOLDER, cache / ARCHIVE):
        if candidate.exists():
            return candidate
    return None


def load_cifar10(spec: DataSpec) -> Dataset:
    source = find_offline(Path(spec.path) if spec.path else None)
    if source is not None:
        reader, close = _reader_for(source)
        try:
            parts = [_batch(reader, name) for name in TRAIN_BATCHES]
            x_test, y_test = _batch(reader, TEST_BATCH)
        finally:
            close()
        x_pool = np.concatenate([p[0] for p in parts])
        y_pool = np.concatenate([p[1] for p in parts])
        origin = str(source)
    else:
        x_pool, y_pool, x_test, y_test = _download()
        origin = "keras.datasets.cifar10"

    rng = np.random.default_rng(spec.seed)
    if spec.size is not None:
        # --size caps the training pool; the test split shrinks in proportion (1:5).
        x_pool, y_pool = _subset(x_pool, y_pool, spec.size, rng)
        x_test, y_test = _subset(x_test, y_test, max(1, spec.size // 5), rng)
    # CIFAR-10 has its own test split; validation comes out of the training pool.
    train, val, _ = split_indices(len(y_pool), spec.val_fraction, 0.0, spec.seed)
    if spec.channels == 1:
        x_pool, x_test = _gray(x_pool), _gray(x_test)
    return Dataset(
        x_train=x_pool[train],
        y_train=y_pool[train],
        x_val=x_pool[val],
        y_val=y_pool[val],
        x_test=x_test,
        y_test=y_test,
        class_names=list(CLASS_NAMES),
        spec=spec,
        details={"source": origin},
    )


def _subset(
    x: np.ndarray, y: np.ndarray, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    if len(y) <= n:
        return x, y
    keep = np.sort(rng.permutation(len(y))[:n])
    return x[keep], y[keep]


def _gray(x: np.ndarray) -> np.ndarray:
    luma = x.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None]


def _download() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    try:
        import keras

        (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
    except Exception as error:  # network, disk and archive failures all land here
        reason = shorten(str(error), 160)
        raise DataError(
            f"CIFAR-10 is not cached and could not be downloaded: {reason}",
            f"download {ARCHIVE} and pass --data-path",
        ) from None
    return (
        np.asarray(x_train, dtype=np.uint8),
        np.asarray(y_train, dtype=np.int64).reshape(-1),
        np.asarray(x_test, dtype=np.uint8),
        np.asarray(y_test, dtype=np.int64).reshape(-1),
    )
