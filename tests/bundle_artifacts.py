"""A tiny artifacts folder for the bundle tests: a seeded 16x16 three-class CNN converted
to float32 and to int8 with uint8 I/O (static batch 1), 20 labelled sample PNGs, and a
manifest written through toolkit.manifest, as `cnnx export` lays them out.

Built once per test run (a few seconds, tests/once.py) and shared by the package, rpi,
android, remote and gpu tests, which import `tiny_artifacts` from here. This module holds
no tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.corpus.artifacts import write_samples
from tests.factories import fit, tiny_cnn
from tests.once import built_once
from toolkit.data.inputspec import InputSpec
from toolkit.manifest import ArtifactEntry, Manifest, describe_files

SIZE = 16
LABELS = ("red", "green", "blue")
SAMPLES = 20


def images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noise with a square of the class colour; the noise spans 0..255, so the int8
    model's uint8 input gets scale 1 and zero point 0 (raw bytes go straight in)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(count, SIZE, SIZE, 3), dtype=np.uint8)
    y = rng.integers(0, len(LABELS), size=count)
    for image, label in zip(x, y, strict=True):
        top, left = rng.integers(0, SIZE - 8, size=2)
        size = int(rng.integers(6, 9))
        patch = image[top : top + size, left : left + size]
        patch[...] = rng.integers(0, 70, size=patch.shape)
        patch[..., label] = rng.integers(190, 256, size=patch.shape[:2])
    return x, y


def tensor_info(detail: dict[str, Any]) -> dict[str, Any]:
    scale, zero_point = detail["quantization"]
    return {
        "name": str(detail["name"]),
        "shape": [int(d) for d in detail["shape_signature"]],
        "dtype": np.dtype(detail["dtype"]).name,
        "quantization": {"scale": float(scale), "zero_point": int(zero_point)} if scale else None,
    }


def io_infos(content: bytes) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content)
    return (
        [tensor_info(d) for d in interpreter.get_input_details()],
        [tensor_info(d) for d in interpreter.get_output_details()],
    )


def build_model() -> Any:
    x, y = images(300, seed=1)
    return fit(tiny_cnn(SIZE, len(LABELS), seed=7), x, y, epochs=6)


def convert(model: Any, *, batch: int | None = 1, int8: bool = False) -> bytes:
    """A .tflite of the model; batch None keeps a dynamic batch dimension."""
    import keras
    import tensorflow as tf

    # The same layers (shared weights) behind an input of the wanted batch size.
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    sized = keras.Sequential([keras.Input((SIZE, SIZE, 3), batch_size=batch), *layers])
    converter = tf.lite.TFLiteConverter.from_keras_model(sized)
    if int8:
        calibration, _ = images(64, seed=2)

        def representative() -> Any:
            for image in calibration:
                yield [image[None].astype(np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
    return bytes(converter.convert())


def _build(root: Path) -> None:
    root.mkdir()
    model = build_model()
    (root / "tflite").mkdir(exist_ok=True)
    contents = {
        "float32": convert(model),
        "int8": convert(model, int8=True),
        "dynamic": convert(model, batch=None),
    }
    for name, content in contents.items():
        (root / "tflite" / f"model_{name}.tflite").write_bytes(content)

    x, y = images(SAMPLES, seed=3)
    write_samples(root / "samples", x, y, LABELS)

    artifacts = {}
    for artifact_id, precision in (("tflite_float32", "float32"), ("tflite_int8", "int8")):
        path = f"tflite/model_{precision}.tflite"
        inputs, outputs = io_infos(contents[precision])
        artifacts[artifact_id] = ArtifactEntry(
            id=artifact_id,
            format="tflite",
            precision=precision,
            runtime="litert",
            path=path,
            files=describe_files(root, path),
            inputs=inputs,
            outputs=outputs,
        )
    Manifest(
        root=root,
        # Centre crop: camera frames of another shape are cropped, not squeezed (test_rpi).
        input=InputSpec(height=SIZE, width=SIZE, channels=3, crop="centre"),
        labels=list(LABELS),
        artifacts=artifacts,
        command="tests/bundle_artifacts.py",
    ).save()


def tiny_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared artifacts folder, built by the first test of the run that asks."""
    return (
        built_once(
            tmp_path_factory, "bundle-artifacts", lambda folder: _build(folder / "artifacts")
        )
        / "artifacts"
    )
