"""`shapes`: the embedded synthetic dataset.

Ten classes of filled and hollow shapes in a random colour, size, position and rotation
over a noisy background with a distractor stroke. Each mask is drawn at twice the target
size and box-filtered down, so edges are anti-aliased like real photos (pure 0/255 edges
would make int8 quantization look better than it is). Seeded and deterministic: the same
spec gives the same bytes.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from toolkit.core.limits import check_allocation
from toolkit.data.dataset import Dataset, DataSpec, make_dataset

CLASS_NAMES = [
    "circle",
    "ring",
    "square",
    "frame",
    "triangle",
    "cross",
    "star",
    "bar",
    "crescent",
    "dots",
]

_CHUNK = 1000  # images composited at once: bounded memory for any size


def load_shapes(spec: DataSpec) -> Dataset:
    n = spec.size if spec.size is not None else 10_000
    rng = np.random.default_rng(spec.seed)
    # Balanced classes in a seeded order.
    side = spec.image_size
    # The images, then their split copies: refuse before drawing what cannot fit.
    check_allocation(
        2 * n * side * side * 3, f"{n:,} images of {side}x{side}", "pass a smaller --size"
    )
    labels = rng.permutation(np.arange(n) % len(CLASS_NAMES)).astype(np.int64)
    images = np.empty((n, spec.image_size, spec.image_size, 3), dtype=np.uint8)
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        images[start:stop] = _render_chunk(labels[start:stop], spec.image_size, rng)
    if spec.channels == 1:
        gray = images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        images = np.clip(np.rint(gray), 0, 255).astype(np.uint8)[..., None]
    return make_dataset(images, labels, list(CLASS_NAMES), spec, generator="cnnx shapes v1")


def _render_chunk(labels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    count = len(labels)
    masks = np.empty((count, size, size), dtype=np.float32)
    strokes = np.empty((count, size, size), dtype=np.float32)
    for i, label in enumerate(labels):
        masks[i] = _mask(int(label), size, rng)
        strokes[i] = _strokes(size, rng)

    background = rng.integers(0, 256, size=(count, 1, 1, 3)).astype(np.float32)
    # A linear gradient, so the background is not one flat colour.
    ramp = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    angle = rng.uniform(0, 2 * math.pi, size=count).astype(np.float32)
    strength = rng.uniform(0, 25, size=count).astype(np.float32)
    gradient = (
        np.cos(angle)[:, None, None] * ramp[None, None, :]
        + np.sin(angle)[:, None, None] * ramp[None, :, None]
    ) * strength[:, None, None]
    background = background + gradient[..., None]

    foreground = _contrasting_colours(background[:, 0, 0, :], rng)[:, None, None, :]
    stroke_colour = rng.integers(0, 256, size=(count, 1, 1, 3)).astype(np.float32)

    image = background * (1 - strokes[..., None]) + stroke_colour * strokes[..., None]
    image = image * (1 - masks[..., None]) + foreground * masks[..., None]
    sigma = rng.uniform(2, 14, size=(count, 1, 1, 1)).astype(np.float32)
    image += rng.standard_normal(image.shape, dtype=np.float32) * sigma
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _contrasting_colours(background: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random colour per image whose brightness differs from its background by >= 70.

    Brightness contrast (not only hue) keeps the shape visible in grayscale too.
    """
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    luma = background @ weights
    colours = rng.integers(0, 256, size=background.shape).astype(np.float32)
    for _ in range(50):
        close = np.abs(colours @ weights - luma) < 70
        if not close.any():
            break
        colours[close] = rng.integers(0, 256, size=(int(close.sum()), 3))
    # Whatever is still too close: black or white, whichever is farther.
    close = np.abs(colours @ weights - luma) < 70
    colours[close] = np.where(luma[close, None] > 127, 0.0, 255.0)
    return colours


def _strokes(size: int, rng: np.random.Generator) -> np.ndarray:
    """Up to one thin random line: clutter the classifier must learn to ignore."""
    big = size * 2
    canvas = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.random() < 0.5)):
        x0, y0, x1, y1 = (float(v) for v in rng.uniform(0, big, size=4))
        draw.line([(x0, y0), (x1, y1)], fill=255, width=max(1, big // 32))
    return _downsample(canvas, size)


def _mask(label: int, size: int, rng: np.random.Generator) -> np.ndarray:
    big = size * 2
    canvas = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(canvas)
    r = float(rng.uniform(0.25, 0.42)) * big
    cx = float(rng.uniform(r * 0.9, big - r * 0.9))
    cy = float(rng.uniform(r * 0.9, big - r * 0.9))
    theta = float(rng.uniform(0, 2 * math.pi))
    thick = max(2.0, r * float(rng.uniform(0.28, 0.4)))

    def poly(points: list[tuple[float, float]], fill: int = 255) -> None:
        c, s = math.cos(theta), math.sin(theta)
        draw.polygon([(cx + x * c - y * s, cy + x * s + y * c) for x, y in points], fill=fill)

    def disc(x: float, y: float, radius: float, fill: int = 255) -> None:
        c, s = math.cos(theta), math.sin(theta)
        px, py = cx + x * c - y * s, cy + x * s + y * c
        draw.ellipse([px - radius, py - radius, px + radius, py + radius], fill=fill)

    def regular(n: int, radius: float, phase: float = 0.0) -> list[tuple[float, float]]:
        return [
            (
                radius * math.cos(phase + 2 * math.pi * k / n),
                radius * math.sin(phase + 2 * math.pi * k / n),
            )
            for k in range(n)
        ]

    name = CLASS_NAMES[label]
    if name == "circle":
        disc(0, 0, r)
    elif name == "ring":
        disc(0, 0, r)
        disc(0, 0, r - thick, fill=0)
    elif name == "square":
        poly(regular(4, r * 1.05, math.pi / 4))
    elif name == "frame":
        poly(regular(4, r * 1.05, math.pi / 4))
        poly(regular(4, r * 1.05 - thick * 1.41, math.pi / 4), fill=0)
    elif name == "triangle":
        poly(regular(3, r * 1.1, -math.pi / 2))
    elif name == "cross":
        half = thick / 2
        poly([(-r, -half), (r, -half), (r, half), (-r, half)])
        poly([(-half, -r), (half, -r), (half, r), (-half, r)])
    elif name == "star":
        outer, inner = (
            regular(5, r * 1.1, -math.pi / 2),
            regular(5, r * 0.45, -math.pi / 2 + math.pi / 5),
        )
        poly([p for pair in zip(outer, inner, strict=True) for p in pair])
    elif name == "bar":
        half = thick * 0.6
        poly([(-r, -half), (r, -half), (r, half), (-r, half)])
    elif name == "crescent":
        disc(0, 0, r)
        disc(r * 0.45, 0, r * 0.85, fill=0)
    else:  # dots
        disc(-r * 0.55, 0, r * 0.42)
        disc(r * 0.55, 0, r * 0.42)
    return _downsample(canvas, size)


def _downsample(canvas: Image.Image, size: int) -> np.ndarray:
    """2x2 box filter: anti-aliased coverage in 0..1."""
    pixels = np.asarray(canvas, dtype=np.float32) / 255.0
    return pixels.reshape(size, 2, size, 2).mean(axis=(1, 3))
