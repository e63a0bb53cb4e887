"""The pivot SavedModel: checked, copied into the artifacts folder, and read by the others.

Every other exporter starts from the pivot (`serving_default`: `image` float32
[None, H, W, C] -> `probabilities` float32 [None, K]); `load_pivot` checks that
signature once and hands out the loaded function.
"""

from __future__ import annotations

import functools
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporters.base import (
    INPUT_NAME,
    OUTPUT_NAME,
    SIGNATURE,
    ExportOptions,
    ExportResult,
    tensor_info,
)
from toolkit.errors import ModelError

ARTIFACT_PATH = "saved_model"


@dataclass(frozen=True)
class Pivot:
    """A loaded pivot SavedModel: the object (keeps variables alive) and its signature."""

    path: Path
    loaded: Any
    function: Any  # the concrete `serving_default` function
    input_shape: tuple[int, int, int]  # H, W, C
    num_classes: int


def load_pivot(saved_model_dir: Path) -> Pivot:
    """Load and check a pivot SavedModel (cached per folder and modification time)."""
    path = Path(saved_model_dir).resolve()
    pb = path / "saved_model.pb"
    if not pb.is_file():
        raise ModelError(f"{path} is not a SavedModel (no saved_model.pb)")
    return _load_pivot(str(path), pb.stat().st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _load_pivot(path: str, _mtime: int) -> Pivot:
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(path)
    except Exception as error:  # TF raises many kinds; all mean "unreadable"
        raise ModelError(f"cannot load SavedModel {path}: {type(error).__name__}") from None
    signatures = getattr(loaded, "signatures", {})
    if SIGNATURE not in signatures:
        raise ModelError(
            f"SavedModel {path} has no {SIGNATURE!r} signature (has: {sorted(signatures)})",
            "load it through cnnx export --model, which builds the pivot",
        )
    function = signatures[SIGNATURE]
    _, inputs = function.structured_input_signature
    outputs = function.structured_outputs
    if set(inputs) != {INPUT_NAME} or set(outputs) != {OUTPUT_NAME}:
        raise ModelError(
            f"SavedModel {path} signature takes {sorted(inputs)} and gives {sorted(outputs)}",
            f"expected one input {INPUT_NAME!r} and one output {OUTPUT_NAME!r}",
        )
    shape = inputs[INPUT_NAME].shape
    if shape.rank != 4 or None in shape.as_list()[1:]:
        raise ModelError(f"SavedModel {path} input shape {shape} is not [batch, H, W, C]")
    _, height, width, channels = shape.as_list()
    out_shape = outputs[OUTPUT_NAME].shape
    if out_shape.rank != 2 or out_shape[-1] is None:
        raise ModelError(f"SavedModel {path} output shape {out_shape} is not [batch, classes]")
    return Pivot(
        path=Path(path),
        loaded=loaded,
        function=function,
        input_shape=(int(height), int(width), int(channels)),
        num_classes=int(out_shape[-1]),
    )


def predict(pivot: Pivot, images: Any, batch_size: int = 256) -> Any:
    """Run the pivot in TensorFlow: float32 NHWC -> float32 [N, K] (the reference)."""
    import numpy as np
    import tensorflow as tf

    rows = []
    for start in range(0, len(images), batch_size):
        chunk = tf.constant(np.asarray(images[start : start + batch_size], dtype=np.float32))
        rows.append(pivot.function(**{INPUT_NAME: chunk})[OUTPUT_NAME].numpy())
    if not rows:
        return np.zeros((0, pivot.num_classes), dtype=np.float32)
    return np.concatenate(rows).astype(np.float32)


def export_savedmodel(saved_model_dir: Path, out_dir: Path, options: ExportOptions) -> ExportResult:
    """Copy the checked pivot into out_dir/saved_model."""
    pivot = load_pivot(saved_model_dir)
    target = Path(out_dir) / ARTIFACT_PATH
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(pivot.path, target)
    h, w, c = pivot.input_shape
    return ExportResult(
        artifact_id="savedmodel",
        path=ARTIFACT_PATH,
        inputs=[tensor_info(INPUT_NAME, [-1, h, w, c], "float32")],
        outputs=[tensor_info(OUTPUT_NAME, [-1, pivot.num_classes], "float32")],
        details={"signature": SIGNATURE, "tags": ["serve"]},
    )
