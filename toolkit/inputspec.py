"""The one place preprocessing is defined.

An InputSpec says how raw pixels (uint8, 0..255, NHWC, RGB) become the tensor a model
takes. Models that cnnx trains embed a Rescaling layer, so their spec is the identity
(scale 1, offset 0) and they take raw pixels as float32. Every runtime adapter, the web
page and the device bundles read this same spec from the manifest.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from toolkit.errors import UsageError


@dataclass(frozen=True)
class InputSpec:
    height: int
    width: int
    channels: int  # 1 (grayscale) or 3 (RGB)
    dtype: str = "float32"
    layout: str = "NHWC"
    color: str = "RGB"  # "RGB" or "GRAY"
    # Either scale/offset (x * scale + offset) or mean/std ((x - mean) / std, per channel).
    scale: float = 1.0
    offset: float = 0.0
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    notes: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.height <= 0 or self.width <= 0:
            raise UsageError(f"input size must be positive, got {self.height}x{self.width}")
        if self.channels not in (1, 3):
            raise UsageError(f"input channels must be 1 or 3, got {self.channels}")
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

    def apply(self, pixels: np.ndarray) -> np.ndarray:
        """Raw uint8 NHWC pixels -> the float32 tensor the model takes."""
        x = np.asarray(pixels, dtype=np.float32)
        if self.mean is not None and self.std is not None:
            mean = np.asarray(self.mean, dtype=np.float32)
            std = np.asarray(self.std, dtype=np.float32)
            return (x - mean) / std
        return x * np.float32(self.scale) + np.float32(self.offset)

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
            return cls(
                height=int(data["height"]),
                width=int(data["width"]),
                channels=int(data["channels"]),
                dtype=str(data.get("dtype", "float32")),
                layout=str(data.get("layout", "NHWC")),
                color=str(data.get("color", "RGB")),
                scale=float(data.get("scale", 1.0)),
                offset=float(data.get("offset", 0.0)),
                mean=_floats(data.get("mean")),
                std=_floats(data.get("std")),
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
