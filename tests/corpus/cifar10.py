"""A tiny archive in the real CIFAR-10 format, for the loader's tests."""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.data.cifar10 import CLASS_NAMES, FOLDER, META, TEST_BATCH, TRAIN_BATCHES


def write_archive(path: Path, per_batch: int = 10, seed: int = 0) -> None:
    """The same pickles and tar layout as the real archive: the loader reads it through
    the same code path as the real 170 MB one."""
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:

        def add(name: str, payload: dict[bytes, Any]) -> None:
            blob = pickle.dumps(payload, protocol=2)
            info = tarfile.TarInfo(f"{FOLDER}/{name}")
            info.size = len(blob)
            archive.addfile(info, io.BytesIO(blob))

        for name in [*TRAIN_BATCHES, TEST_BATCH]:
            labels = [int(v) for v in rng.integers(0, 10, per_batch)]
            data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
            add(name, {b"batch_label": name.encode(), b"labels": labels, b"data": data})
        add(META, {b"label_names": [n.encode() for n in CLASS_NAMES], b"num_vis": 3072})
    Path(path).write_bytes(buffer.getvalue())
