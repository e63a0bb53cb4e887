"""Images that image loaders must survive: corrupt, empty, bombs, odd modes."""

from __future__ import annotations

import random
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def good_image(path: Path, size: int = 16, seed: int = 0, mode: str = "RGB") -> Path:
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "L": 1, "RGBA": 4, "CMYK": 4}[mode]
    pixels = rng.integers(0, 256, (size, size, channels), dtype=np.uint8)
    image = Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode=mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def class_folder(root: Path, classes: int = 2, per_class: int = 4, size: int = 16) -> Path:
    """A valid folder of class subfolders of PNGs."""
    for c in range(classes):
        for i in range(per_class):
            good_image(root / f"class_{c}" / f"img_{i}.png", size, seed=c * 100 + i)
    return root


def corrupt_image(path: Path, seed: int = 1) -> Path:
    """A PNG signature followed by garbage: opens as PNG, fails to decode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + random.Random(seed).randbytes(200))
    return path


def truncated_jpeg(path: Path) -> Path:
    good = path.with_suffix(".full.jpg")
    good_image(good, 64, seed=3)
    data = good.read_bytes()
    good.unlink()
    path.write_bytes(data[: len(data) // 3])
    return path


def zero_byte(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def decompression_bomb(path: Path, side: int = 20_000) -> Path:
    """A valid 1-bit PNG of side x side pixels (400 megapixels) that is ~50 kB on disk."""
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    parts = [compressor.compress(row * 1000) for _ in range(side // 1000)]
    parts.append(compressor.compress(row * (side % 1000)))
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    png = (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", b"".join(parts))
        + _chunk(b"IEND", b"")
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    return path


def cmyk_jpeg(path: Path, size: int = 16, seed: int = 4) -> Path:
    good_image(path, size, seed, mode="CMYK")
    return path


def sixteen_bit_png(path: Path, size: int = 16, seed: int = 5) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 65536, (size, size), dtype=np.uint16)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)  # uint16 -> mode I;16
    return path
