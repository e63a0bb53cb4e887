"""The preprocessing of a model cnnx did not train: what the user says, what the model
shows, and the InputSpec that comes of both.

The user names a preset (`--preprocess`, the keras.applications modes), or numbers
(`--scale/--offset`, `--mean/--std`, fractions such as 1/255 allowed), the channel order
(`--color`) and how pictures are resized (`--resize`, `--crop`). A Keras model whose first
layers rescale or normalise (Rescaling, Normalization, as MobileNetV3 and EfficientNet
have) already takes raw pixels: that is found, said, and raw 0..255 pixels are used.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from toolkit.data.inputspec import PRESETS, InputSpec
from toolkit.errors import UsageError

# Layers that map pixels to the network's range; a model starting with them takes 0..255.
SCALING_LAYERS = ("Rescaling", "Normalization")


def parse_number(text: str | float, option: str) -> float:
    """A number or a fraction: '0.5', '-1', '1/255', '2/255.0'."""
    if isinstance(text, int | float):
        return float(text)
    value = str(text).strip()
    try:
        if "/" in value:
            top, bottom = value.split("/")  # more than one "/" is a ValueError too
            return float(Fraction(top.strip()) / Fraction(bottom.strip()))
        return float(value)
    except (ValueError, ZeroDivisionError):
        raise UsageError(
            f"{option} takes a number or a fraction, got {text!r}", "e.g. 0.5, -1 or 1/255"
        ) from None


def parse_numbers(text: str | None, option: str) -> tuple[float, ...] | None:
    """Numbers separated by commas ('123.675,116.28,103.53'), each possibly a fraction."""
    if text is None:
        return None
    parts = [part for part in str(text).split(",") if part.strip()]
    if not parts:
        raise UsageError(f"{option} needs at least one number, got {text!r}")
    return tuple(parse_number(part, option) for part in parts)


@dataclass(frozen=True)
class Preprocessing:
    """What the user asked for; None everywhere means "not given" (then: detect, or raw)."""

    preset: str | None = None  # a key of inputspec.PRESETS
    scale: float | None = None
    offset: float | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    color: str | None = None  # "RGB" or "BGR"
    resize: str | None = None  # "bilinear" or "nearest"
    crop: str | None = None  # "none" or "centre"

    def __post_init__(self) -> None:
        numbers = [
            flag
            for flag, value in (
                ("--scale", self.scale),
                ("--offset", self.offset),
                ("--mean", self.mean),
                ("--std", self.std),
            )
            if value is not None
        ]
        if self.preset is not None:
            if self.preset not in PRESETS:
                raise UsageError(
                    f"--preprocess must be one of {', '.join(PRESETS)}, got {self.preset!r}"
                )
            if numbers:
                raise UsageError(
                    f"--preprocess {self.preset} and {', '.join(numbers)} both say how pixels "
                    "are scaled",
                    "give the preset or the numbers, not both",
                )
            wanted = PRESETS[self.preset].color
            if self.color is not None and self.color != wanted and self.preset == "caffe":
                raise UsageError("--preprocess caffe takes BGR pixels; drop --color rgb")
        if (self.mean is None) != (self.std is None):
            raise UsageError("give both --mean and --std, or neither")
        if self.mean is not None and (self.scale is not None or self.offset is not None):
            raise UsageError(
                "--mean/--std and --scale/--offset both say how pixels are scaled",
                "give one pair",
            )

    @property
    def given(self) -> bool:
        """Did the user say anything about how pixel values are scaled?"""
        return self.preset is not None or any(
            v is not None for v in (self.scale, self.offset, self.mean, self.std)
        )

    @property
    def flags(self) -> list[str]:
        """The flags given, for messages."""
        names = ("preset", "scale", "offset", "mean", "std", "color", "resize", "crop")
        return [
            "--preprocess" if name == "preset" else f"--{name}"
            for name in names
            if getattr(self, name) is not None
        ]

    def input_spec(
        self, shape: tuple[int, int, int], in_model: list[str], **notes: Any
    ) -> InputSpec:
        """The spec in force for a model of this (H, W, C) whose first layers are `in_model`."""
        h, w, c = shape
        preset = PRESETS[self.preset] if self.preset is not None else None
        if preset is not None:
            scale, offset, mean, std = preset.scale, preset.offset, preset.mean, preset.std
            color = preset.color
            notes["preprocess"] = self.preset
        else:
            scale, offset = self.scale or 1.0, self.offset or 0.0
            mean, std = self.mean, self.std
            color = self.color or "RGB"
        if self.scale is not None and self.scale == 0:
            raise UsageError("--scale must not be 0")
        if c == 1:
            if color == "BGR":
                raise UsageError(f"--preprocess/--color give BGR but the model takes {c} channel")
            color = "GRAY"
            if preset is not None and mean is not None and std is not None:
                # One channel: the mean of the preset's per-channel numbers.
                mean, std = (sum(mean) / 3,), (sum(std) / 3,)
        # One value given for an RGB model means the same for every channel.
        if mean is not None and len(mean) == 1:
            mean = mean * c
        if std is not None and len(std) == 1:
            std = std * c
        for name, values in (("--mean", mean), ("--std", std)):
            if values is not None and len(values) != c:
                raise UsageError(f"{name} has {len(values)} values but the model has {c} channels")
        if in_model:
            notes["in_model"] = list(in_model)
        return InputSpec(
            height=h,
            width=w,
            channels=c,
            color=color,
            scale=scale,
            offset=offset,
            mean=mean,
            std=std,
            resize=self.resize or "bilinear",
            crop=self.crop or "none",
            notes=notes,
        )


def scaling_layers(model: Any) -> list[str]:
    """The rescaling/normalising layers a Keras model starts with, described, in order.

    Descends into a nested model that comes first (the transfer-learning shape:
    `inputs -> backbone(...) -> head`). Stops at the first layer that is neither.
    """
    found: list[str] = []
    for layer in getattr(model, "layers", []):
        kind = type(layer).__name__
        if kind == "InputLayer":
            continue
        if kind in SCALING_LAYERS:
            found.append(_describe_layer(layer))
            continue
        if hasattr(layer, "layers") and not found:
            found.extend(scaling_layers(layer))
        break
    return found


def _describe_layer(layer: Any) -> str:
    kind = type(layer).__name__
    config = layer.get_config()
    if kind == "Rescaling":
        return f"Rescaling(x * {_short(config.get('scale'))} + {_short(config.get('offset'))})"
    mean, variance = config.get("mean"), config.get("variance")
    if mean is None:  # adapted, or built from weights: the values are variables
        weights = {w.name.split("/")[-1].split(":")[0]: w for w in layer.weights}
        mean = weights.get("mean")
        variance = weights.get("variance")
        mean = None if mean is None else mean.numpy().ravel().tolist()
        variance = None if variance is None else variance.numpy().ravel().tolist()
    return f"Normalization(mean {_short(mean)}, variance {_short(variance)})"


def _short(value: Any) -> str:
    if isinstance(value, list | tuple):
        items = [_short(v) for v in value]
        return items[0] if len(set(items)) == 1 else "[" + ", ".join(items) + "]"
    if isinstance(value, int | float):
        return f"{value:.6g}"
    return str(value)
