"""Generated pictures for a model with no data on record: parity, never accuracy.

When an artifacts folder names no images, verify and bench still compare every artifact
with the SavedModel on the same inputs: pictures of the embedded `shapes` set drawn at
the model's size (shapes of random colour on noisy gradients, so the inputs span the
whole pixel range the way photos do), seeded so every run sees the same ones. They go
through the input spec like any picture, so the tensors cover the model's input range.
"""

from __future__ import annotations

import numpy as np

from toolkit.core.limits import check_pictures_memory
from toolkit.data.pixels import resize

GENERATED_IMAGES = 64
SEED = 20240601


def generated_pixels(
    height: int, width: int, channels: int, count: int = GENERATED_IMAGES
) -> np.ndarray:
    """uint8 [count, height, width, channels]: seeded shapes pictures at the model's size."""
    from toolkit.data import DataSpec
    from toolkit.data.shapes import load_shapes

    check_pictures_memory(
        count, (height, width, channels), "generated pictures", "give the model a smaller input"
    )
    side = min(1024, max(4, height, width))
    spec = DataSpec(kind="shapes", seed=SEED, size=count, image_size=side)
    dataset = load_shapes(spec)
    pictures = np.concatenate([dataset.x_train, dataset.x_val, dataset.x_test])[:count]
    if (side, side) != (height, width):
        pictures = np.stack([resize(p, height, width) for p in pictures])
    if channels == 1:
        # Pillow's "L": ITU-R 601-2 luma in integers, as the pixel rule converts pictures.
        rgb = pictures.astype(np.int64)
        luma = (rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000) >> 16
        pictures = luma.astype(np.uint8)[..., None]
    return np.ascontiguousarray(pictures)
