"""The one place preprocessing is defined.

An InputSpec says how a picture becomes the tensor a model takes: the pixel rule
(resize method, optional centre crop, RGB, BGR or grayscale; toolkit/data/pixels.py),
then x * scale + offset or (x - mean) / std. Models that cnnx trains embed a Rescaling
layer, so their spec is the identity (scale 1, offset 0) and they take raw pixels as
float32. Every runtime adapter, the web page and the device bundles read this same spec
from the manifest.

PRESETS are the `preprocess_input` modes of keras.applications, expressed on raw
0..255 pixels: `unit` (x / 255), `symmetric` ("tf": x / 127.5 - 1), `imagenet`
("torch": x / 255, then ImageNet mean and std), `caffe` (RGB to BGR, then the ImageNet
BGR means subtracted, no scaling).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from toolkit.core.limits import check_pictures_memory
from toolkit.data.pixels import COLORS, CROPS, RESIZE_METHODS, model_input
from toolkit.errors import DataError, UsageError

IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)  # keras.applications imagenet_utils, "torch" mode
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)  # "caffe" mode, subtracted after RGB -> BGR


@dataclass(frozen=True)
class Normalisation:
    """A preset: scale/offset or mean/std on raw 0..255 pixels, and the channel order."""

    scale: float = 1.0
    offset: float = 0.0
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    color: str = "RGB"
    summary: str = ""


PRESETS: dict[str, Normalisation] = {
    "none": Normalisation(summary="raw 0..255 pixels"),
    "unit": Normalisation(scale=1 / 255, summary="x / 255, in [0, 1]"),
    "symmetric": Normalisation(scale=1 / 127.5, offset=-1.0, summary="x / 127.5 - 1, in [-1, 1]"),
    "imagenet": Normalisation(
        mean=tuple(255 * m for m in IMAGENET_MEAN_RGB),
        std=tuple(255 * s for s in IMAGENET_STD_RGB),
        summary="x / 255 then ImageNet mean and std (torch mode)",
    ),
    "caffe": Normalisation(
        mean=CAFFE_MEAN_BGR,
        std=(1.0, 1.0, 1.0),
        color="BGR",
        summary="BGR, ImageNet means subtracted (caffe mode)",
    ),
}


@dataclass(frozen=True)
class InputSpec:
    height: int
    width: int
    channels: int  # 1 (grayscale) or 3 (RGB or BGR)
    dtype: str = "float32"
    layout: str = "NHWC"
    color: str = "RGB"  # "RGB", "BGR" or "GRAY" (toolkit/data/pixels.py)
    # Either scale/offset (x * scale + offset) or mean/std ((x - mean) / std, per channel).
    scale: float = 1.0
    offset: float = 0.0
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    resize: str = "bilinear"  # how a picture of another size is resized (pixels.py)
    crop: str = "none"  # "none" or "centre": crop to the model's aspect ratio first
    notes: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.height <= 0 or self.width <= 0:
            raise UsageError(f"input size must be positive, got {self.height}x{self.width}")
        if self.channels not in (1, 3):
            raise UsageError(f"input channels must be 1 or 3, got {self.channels}")
        if self.color not in COLORS or (self.color == "GRAY") != (self.channels == 1):
            raise UsageError(
                f"input colour {self.color!r} does not fit {self.channels} channel(s)",
                "RGB or BGR for 3 channels, GRAY for 1",
            )
        if self.resize not in RESIZE_METHODS:
            raise UsageError(
                f"--resize must be one of {', '.join(RESIZE_METHODS)}, got {self.resize!r}"
            )
        if self.crop not in CROPS:
            raise UsageError(f"--crop must be one of {', '.join(CROPS)}, got {self.crop!r}")
        if (self.mean is None) != (self.std is None):
            raise UsageError("give both --mean and --std, or neither")
        if self.std is not None and any(s == 0 for s in self.std):
            raise UsageError(f"--std must not contain 0, got {list(self.std)}")
        if self.scale == 0:
            raise UsageError("--scale must not be 0")
        # A hand-edited manifest can carry NaN/inf or a mean for the wrong channel count.
        numbers = [self.scale, self.offset, *(self.mean or ()), *(self.std or ())]
        if not all(math.isfinite(n) for n in numbers):
            raise UsageError(f"preprocessing numbers must be finite, got {numbers}")
        for flag, values in (("--mean", self.mean), ("--std", self.std)):
            if values is not None and len(values) not in (1, self.channels):
                raise UsageError(
                    f"{flag} needs 1 or {self.channels} values, got {len(values)}: {list(values)}"
                )

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, self.channels)

    @property
    def is_identity(self) -> bool:
        return self.mean is None and self.scale == 1.0 and self.offset == 0.0

    @property
    def input_range(self) -> tuple[float, float]:
        """The smallest and largest value a 0..255 pixel becomes (over every channel)."""
        ends = self.apply(np.array([[[[0] * self.channels, [255] * self.channels]]], np.uint8))
        return float(ends.min()), float(ends.max())

    def apply(self, pixels: np.ndarray) -> np.ndarray:
        """Raw uint8 NHWC pixels (RGB or gray) -> the float32 tensor the model takes."""
        return model_input(pixels, self.to_dict())

    def describe(self) -> str:
        """One line for people: the size, the pixel rule and the normalisation."""
        crop = ", centre crop" if self.crop == "centre" else ""
        text = f"{self.height}x{self.width} {self.color}, {self.resize} resize{crop}, "
        if self.mean is not None and self.std is not None:
            text += f"(x - {_numbers(self.mean)}) / {_numbers(self.std)}"
        elif self.is_identity:
            text += "raw 0..255 pixels"
        else:
            text += f"x * {self.scale:.6g}"
            if self.offset:
                text += f" {'-' if self.offset < 0 else '+'} {abs(self.offset):.6g}"
        preset = self.notes.get("preprocess")
        return f"{text} (--preprocess {preset})" if preset else text

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["shape"] = list(self.shape)
        for key in ("mean", "std"):
            if data[key] is not None:
                data[key] = list(data[key])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputSpec:
        if not isinstance(data, dict):
            raise UsageError(f"input spec must be a mapping, got {type(data).__name__}")
        try:
            channels = int(data["channels"])
            return cls(
                height=int(data["height"]),
                width=int(data["width"]),
                channels=channels,
                dtype=str(data.get("dtype", "float32")),
                layout=str(data.get("layout", "NHWC")),
                color=str(data.get("color", "GRAY" if channels == 1 else "RGB")),
                scale=float(data.get("scale", 1.0)),
                offset=float(data.get("offset", 0.0)),
                mean=_floats(data.get("mean")),
                std=_floats(data.get("std")),
                resize=str(data.get("resize", "bilinear")),
                crop=str(data.get("crop", "none")),
                notes=dict(data.get("notes") or {}),
            )
        except (KeyError, TypeError, ValueError, OverflowError) as error:
            raise UsageError(f"input spec is malformed: {error!r}") from None


def _floats(value: Any) -> tuple[float, ...] | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        return (float(value),)
    return tuple(float(v) for v in value)


def _numbers(values: tuple[float, ...]) -> str:
    if len(set(values)) == 1:
        return f"{values[0]:.6g}"
    return "[" + ", ".join(f"{v:.6g}" for v in values) + "]"


def fit(pixels: np.ndarray, spec: InputSpec, source: str) -> np.ndarray:
    """Pictures of another size brought to the model's by the spec's pixel rule."""
    from toolkit.data.pixels import crop_box, resize

    if tuple(pixels.shape[1:3]) == (spec.height, spec.width) and pixels.shape[3] == spec.channels:
        return pixels
    if pixels.shape[3] != spec.channels:
        raise DataError(
            f"evaluation images from {source} have {pixels.shape[3]} channel(s), "
            f"the model takes {spec.channels}",
            "pass --data with images of the model's kind",
        )
    check_pictures_memory(
        len(pixels), spec.shape, f"resizing images from {source}", "pass --limit N"
    )
    left, top, right, bottom = crop_box(
        pixels.shape[2], pixels.shape[1], spec.height, spec.width, spec.crop
    )
    return np.stack(
        [resize(p[top:bottom, left:right], spec.height, spec.width, spec.resize) for p in pixels]
    )
