"""Predictor: one exported artifact in one runtime, fed raw pictures.

`Predictor.predict(images)` takes what an application has: uint8 pictures, HxWxC or HxW,
any size, one or many (a list of different sizes, or an NHWC batch), or Pillow images.
Each goes through the manifest's pixel rule (toolkit/data/pixels.py: the recorded
resize, crop and channel order) and its InputSpec, exactly as verify, bench and the
bundles prepare their images, then through the runtime adapter's `predict`.

    with Predictor.open(Path("artifacts"), "tflite_int8") as model:
        probabilities = model.predict(picture)          # float32 [1, classes]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.core.closing import Closing
from toolkit.data.inputspec import InputSpec
from toolkit.errors import UsageError
from toolkit.manifest import ArtifactEntry, Manifest, load_manifest
from toolkit.runtimes import LoadedModel, RuntimeInfo, get_runtime, load, runtimes_for


def pictures(images: Any, spec: InputSpec) -> np.ndarray:
    """Raw pictures (see the module docstring) -> uint8 [N, H, W, C] of the model's size."""
    items = _items(images)
    if not items:
        raise UsageError("predict got no images", "pass one HxWxC uint8 array or a list of them")
    return np.stack([_picture(item, spec, n) for n, item in enumerate(items)])


def _items(images: Any) -> list[Any]:
    """One picture or many, as a list of single pictures."""
    if isinstance(images, np.ndarray):
        if images.ndim == 4:
            return list(images)
        if images.ndim in (2, 3):
            return [images]
        raise UsageError(
            f"predict takes HxW, HxWxC or NxHxWxC pixels, got shape {list(images.shape)}"
        )
    if _is_pil(images):
        return [images]
    if isinstance(images, Sequence) and not isinstance(images, str | bytes):
        return list(images)
    raise UsageError(
        f"predict takes uint8 arrays or Pillow images, got {type(images).__name__}",
        "pass an HxWxC uint8 array, a list of them, or an NxHxWxC batch",
    )


def _is_pil(value: Any) -> bool:
    from PIL import Image

    return isinstance(value, Image.Image)


def _picture(item: Any, spec: InputSpec, index: int) -> np.ndarray:
    """One picture -> uint8 [H, W, C] by the manifest's pixel rule."""
    from PIL import Image

    from toolkit.data.pixels import picture_pixels

    if not _is_pil(item):
        array = np.asarray(item)
        if array.dtype.kind not in "ui" or array.dtype == np.bool_:
            raise UsageError(
                f"image {index} has dtype {array.dtype}; predict takes raw 0..255 pixels",
                "pass uint8 pixels (the recorded preprocessing is applied for you)",
            )
        if array.size and (array.min() < 0 or array.max() > 255):
            raise UsageError(
                f"image {index} has values {array.min()}..{array.max()}, outside 0..255",
                "pass uint8 pixels",
            )
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[..., 0]
        if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
            raise UsageError(
                f"image {index} has shape {list(array.shape)}",
                "predict takes HxW (gray), HxWx1, HxWx3 (RGB) or HxWx4 (RGBA) pixels",
            )
        if min(array.shape[:2]) < 1:
            raise UsageError(f"image {index} is empty: shape {list(array.shape)}")
        item = Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8))
    return picture_pixels(item, spec.height, spec.width, spec.channels, spec.resize, spec.crop)


@dataclass(frozen=True)
class Prediction:
    """What `Predictor.classify` returns for one picture: the best classes, best first."""

    labels: tuple[str, ...]
    indices: tuple[int, ...]
    scores: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "labels": list(self.labels),
            "indices": list(self.indices),
            "scores": list(self.scores),
        }


class Predictor(Closing):
    """An artifact loaded in a runtime; `predict` takes raw pictures. Close it (or use it
    as a context manager) to release the interpreter, Node process or browser."""

    def __init__(self, manifest: Manifest, entry: ArtifactEntry, model: LoadedModel) -> None:
        self.manifest = manifest
        self.entry = entry
        self._model = model

    @classmethod
    def open(
        cls,
        artifacts: Path | Manifest,
        artifact_id: str,
        runtime: str | None = None,
        **options: Any,
    ) -> Predictor:
        """Load `artifact_id` of an artifacts folder in `runtime` (default: the first
        runtime that runs its format: tf, litert or tfjs-node). Options as the adapters
        take them: threads, backend, device, timeout."""
        manifest = artifacts if isinstance(artifacts, Manifest) else load_manifest(artifacts)
        entry = manifest.artifact(artifact_id)
        if runtime is None:
            candidates = runtimes_for(entry)
            if not candidates:
                raise UsageError(f"no runtime runs artifact {artifact_id!r} ({entry.format})")
            runtime = candidates[0]
        get_runtime(runtime)  # an unknown name is a UsageError naming the known ones
        return cls(manifest, entry, load(runtime, manifest, entry, **options))

    @property
    def artifact_id(self) -> str:
        return self.entry.id

    @property
    def labels(self) -> list[str]:
        return list(self.manifest.labels)

    @property
    def input_spec(self) -> InputSpec:
        return self.manifest.input

    @property
    def info(self) -> RuntimeInfo:
        return self._model.info

    def preprocess(self, images: Any) -> np.ndarray:
        """The float32 NHWC batch the runtime is given for these pictures."""
        return self.manifest.input.apply(pictures(images, self.manifest.input))

    def predict(self, images: Any) -> np.ndarray:
        """Class scores, float32 [N, classes], one row per picture given."""
        return self._model.predict(self.preprocess(images))

    def classify(self, images: Any, top: int = 1) -> list[Prediction]:
        """The `top` best classes of each picture, with their labels and scores."""
        if top < 1:
            raise UsageError(f"top must be at least 1, got {top}")
        scores = self.predict(images)
        found = []
        for row in scores:
            best = np.argsort(-row, kind="stable")[:top]
            found.append(
                Prediction(
                    labels=tuple(self._label(int(k)) for k in best),
                    indices=tuple(int(k) for k in best),
                    scores=tuple(float(row[k]) for k in best),
                )
            )
        return found

    def _label(self, index: int) -> str:
        labels = self.manifest.labels
        return labels[index] if index < len(labels) else str(index)

    def close(self) -> None:
        self._model.close()

    def __repr__(self) -> str:
        return f"Predictor({self.entry.id!r} on {self._model.info.label}, {self.manifest.root})"
