"""A safe image loader: any common file in, uint8 HxWxC (RGB or gray) out, or DataError.

Pillow's own guard against decompression bombs is process-wide and only warns below
twice its limit; here every file's pixel count is checked against our limit before its
pixels are decoded. Everything after decoding is the one pixel rule of
toolkit/data/pixels.py: odd modes converted the way a viewer would show them (CMYK and
palettes to RGB, 16-bit to 8-bit by scaling, not clipping, alpha composited on white),
then the optional centre crop and the resize the web page and the bundles reproduce.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from toolkit.core.limits import require_regular_file
from toolkit.data.pixels import picture_pixels, to_8bit
from toolkit.errors import DataError, shorten

# 40 MP: any photo a phone takes, far below what would exhaust memory.
MAX_PIXELS = 40_000_000
# Files named so must be pictures (one that does not decode is an error naming it); a file
# with any other name is a picture when Pillow recognises its content (is_picture).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


def is_picture(path: Path) -> bool:
    """Does Pillow recognise the file's content as a picture it can decode (JPEG, PNG,
    WebP, BMP, TIFF, PGM/PPM, ...), whatever its name? Reads the header only; the file
    must be a regular file (the caller checked: a FIFO would block)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                # Stub formats (HDF5, GRIB, BUFR, MPEG...) are recognised but not decoded.
                return not isinstance(image, ImageFile.StubImageFile)
    except Image.DecompressionBombError:
        return True  # a picture, too large: load_image refuses it, naming it
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return False


def is_grayscale(path: Path) -> bool:
    """True when the file stores one channel (checked from the header only)."""
    with _open(path) as image:
        return image.mode in _GRAY_MODES


def load_image(
    path: Path,
    size: tuple[int, int] | None = None,
    channels: int = 3,
    max_pixels: int = MAX_PIXELS,
    *,
    resize: str = "bilinear",
    crop: str = "none",
) -> np.ndarray:
    """uint8 array [H, W, channels]; brought to size=(height, width) by the pixel rule."""
    with _open(path, max_pixels) as image:
        try:
            image.load()
            if size is None:
                image = ImageOps.exif_transpose(image) or image
                pixels = np.asarray(to_8bit(image, channels), dtype=np.uint8)
            else:
                pixels = picture_pixels(image, size[0], size[1], channels, resize, crop)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
            raise DataError(f"image {path} cannot be decoded: {_reason(error)}") from None
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    return pixels


def open_image(path: Path, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """An image opened from its header only: a regular file (a FIFO would block), at
    most max_pixels (checked before any pixel is decoded). Close it, or use `with`."""
    return _open(path, max_pixels)


def check_image(path: Path, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """(width, height) of an image that passes open_image's checks, without decoding it."""
    with _open(path, max_pixels) as image:
        return image.size


def _open(path: Path, max_pixels: int = MAX_PIXELS) -> Image.Image:
    require_regular_file(path, "image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
    except FileNotFoundError:
        raise DataError(f"image {path} does not exist") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise DataError(f"image {path} is not a readable image: {_reason(error)}") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise DataError(f"image {path} is too large to decode safely: {_reason(error)}") from None
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise DataError(
            f"image {path} has {width}x{height} pixels, more than the limit of {max_pixels:,}",
            "downscale it first",
        )
    if width < 1 or height < 1:
        image.close()
        raise DataError(f"image {path} is empty ({width}x{height})")
    return image


def _reason(error: BaseException) -> str:
    return shorten(str(error), 160) or type(error).__name__
