"""The one pixel rule: how any picture becomes the tensor a model takes.

Used as it is by cnnx (training folders, calibration, evaluation) and by the Raspberry
Pi bundle, which ships a copy of this file beside classify.py, so it imports nothing but
numpy and Pillow. web_demo/app.js implements the same arithmetic in JavaScript. Every
step below is integer arithmetic up to the last, so Python, the bundle and the page give
the same pixels for the same decoded image, byte for byte.

1. Decode: EXIF orientation applied; 8-bit RGB, or gray (Pillow's "L", ITU-R 601-2
   luma) for a one-channel model; 16-bit images scaled (not clipped) to 8 bits;
   transparency composited on white; CMYK and palettes through Pillow's conversions.
2. Crop: `none`, or `centre`: the largest centred box with the model's aspect ratio
   (integer division, as keras' `crop_to_aspect_ratio`).
3. Resize to the model's height and width:
   - `bilinear`: the triangle filter, widened by the scale factor when shrinking (an
     antialiased bilinear, as Pillow's BILINEAR and `tf.image.resize(antialias=True)`).
     Tap weights are exact integers, normalised and rounded to 16 fractional bits; both
     passes accumulate in integers and round once, half up.
   - `nearest`: the source pixel under each output pixel's centre.
4. Channel order: RGB as decoded, or BGR (reversed, the order of OpenCV and of Caffe
   models); a gray image stays one channel.
5. Normalise, in float32: x * scale + offset, or (x - mean) / std per channel.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageOps

RESIZE_METHODS = ("bilinear", "nearest")
CROPS = ("none", "centre")
COLORS = ("RGB", "BGR", "GRAY")

WEIGHT_BITS = 16  # fractional bits of each pass's tap weights
_GRAY_16BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def to_8bit(image: Image.Image, channels: int) -> Image.Image:
    """Any Pillow image as 8-bit RGB (channels 3) or L (channels 1)."""
    mode = image.mode
    if mode in _GRAY_16BIT:
        # 16-bit (and 32-bit) gray: scale the full range down instead of clipping at 255.
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        if mode == "F":
            top = 1.0 if values.max(initial=0) <= 1.0 else 255.0
        gray = Image.fromarray(np.clip(np.rint(values / top * 255), 0, 255).astype(np.uint8), "L")
        return gray if channels == 1 else gray.convert("RGB")
    if mode in ("P", "LA", "PA"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, image)
    # CMYK, YCbCr, LAB, 1-bit all convert through Pillow's own colour transforms.
    return image.convert("L" if channels == 1 else "RGB")


def crop_box(width: int, height: int, target_height: int, target_width: int, crop: str) -> tuple:
    """(left, top, right, bottom) of the part of a width x height picture that is resized."""
    if crop not in CROPS:
        raise ValueError(f"crop must be one of {', '.join(CROPS)}, got {crop!r}")
    if crop == "none":
        return (0, 0, width, height)
    if width * target_height > height * target_width:  # wider than the model: trim the sides
        kept = max(1, height * target_width // target_height)
        left = (width - kept) // 2
        return (left, 0, left + kept, height)
    kept = max(1, width * target_height // target_width)
    top = (height - kept) // 2
    return (0, top, width, top + kept)


def taps(size_in: int, size_out: int, method: str) -> list[tuple[int, np.ndarray]]:
    """For each output index: (first input index, integer weights summing to ~2**16).

    Positions are in units of 1 / (2 * size_out) input pixels, so every centre and
    distance is an integer: output o sits at (2o+1)*size_in, input i at (2i+1)*size_out.
    """
    if method not in RESIZE_METHODS:
        raise ValueError(f"resize must be one of {', '.join(RESIZE_METHODS)}, got {method!r}")
    result = []
    one = 1 << WEIGHT_BITS
    for o in range(size_out):
        centre = (2 * o + 1) * size_in
        if method == "nearest":
            result.append((min(centre // (2 * size_out), size_in - 1), np.array([one])))
            continue
        support = 2 * max(size_in, size_out)  # one input pixel, or the scale when shrinking
        first = max(0, (centre - support) // (2 * size_out) - 1)
        last = min(size_in - 1, (centre + support) // (2 * size_out) + 1)
        index = np.arange(first, last + 1, dtype=np.int64)
        weights = np.maximum(0, support - np.abs((2 * index + 1) * size_out - centre))
        keep = np.flatnonzero(weights)
        weights, first = weights[keep[0] : keep[-1] + 1], first + int(keep[0])
        total = int(weights.sum())
        # Each weight / total rounded half up to WEIGHT_BITS fractional bits, in integers.
        result.append((first, (weights * (2 * one) + total) // (2 * total)))
    return result


def resize(pixels: np.ndarray, height: int, width: int, method: str = "bilinear") -> np.ndarray:
    """uint8 [h, w, c] -> uint8 [height, width, c] by the rule in the module docstring."""
    pixels = np.asarray(pixels, dtype=np.uint8)
    h, w, c = pixels.shape
    if (h, w) == (height, width):
        return pixels.copy()
    source = pixels.astype(np.int64)
    across = np.empty((h, width, c), dtype=np.int64)
    for o, (first, weights) in enumerate(taps(w, width, method)):
        across[:, o] = np.einsum("hkc,k->hc", source[:, first : first + len(weights)], weights)
    total = np.empty((height, width, c), dtype=np.int64)
    for o, (first, weights) in enumerate(taps(h, height, method)):
        total[o] = np.einsum("kwc,k->wc", across[first : first + len(weights)], weights)
    half = 1 << (2 * WEIGHT_BITS - 1)
    return np.clip((total + half) >> (2 * WEIGHT_BITS), 0, 255).astype(np.uint8)


def picture_pixels(
    image: Image.Image,
    height: int,
    width: int,
    channels: int,
    resize_method: str = "bilinear",
    crop: str = "none",
) -> np.ndarray:
    """A decoded picture (any size and mode) -> uint8 [height, width, channels]."""
    image = ImageOps.exif_transpose(image) or image
    image = to_8bit(image, channels)
    box = crop_box(image.width, image.height, height, width, crop)
    if box != (0, 0, image.width, image.height):
        image = image.crop(box)
    array = np.asarray(image, dtype=np.uint8).reshape(image.height, image.width, channels)
    return resize(array, height, width, resize_method)


def model_input(pixels: np.ndarray, spec: dict[str, Any]) -> np.ndarray:
    """Raw uint8 pixels [..., H, W, C] (RGB or gray) -> the float32 tensor the model takes.

    `spec` is an input spec as a dict (manifest.json's `input`, the bundle's
    input_spec.json): `color`, then `mean`/`std` or `scale`/`offset`.
    """
    x = np.asarray(pixels, dtype=np.float32)
    if spec.get("color", "RGB") == "BGR":
        x = x[..., ::-1]
    if spec.get("mean") is not None and spec.get("std") is not None:
        mean = np.asarray(spec["mean"], dtype=np.float32)
        std = np.asarray(spec["std"], dtype=np.float32)
        return np.ascontiguousarray((x - mean) / std)
    scale, offset = np.float32(spec.get("scale", 1.0)), np.float32(spec.get("offset", 0.0))
    return np.ascontiguousarray(x * scale + offset)
