"""The classifiers people bring, built offline at small sizes for the bring-your-own-model
tests, each once per session. This module holds no tests.

keras.applications backbones are built with `weights=None` (nothing can be downloaded
here) and keep their random weights. Untrained, their BatchNorm layers pass activations
through unnormalised and the features of a deep stack collapse, so every answer is a
near tie that any quantization flips: first their BatchNorm statistics are set from one
pass over the pictures (no weight changes), then only a Dense head on top is trained, on
features computed once (seconds). Random convolutions do not see shapes well, so these
pictures are `shapes` drawn in a colour of their class (red, green, blue, grey), which
random features separate with margins wide enough for quantized artifacts to agree.

Each backbone is fed the way its family expects, through keras.applications' own
`preprocess_input` when it has one: the export must then name the same preprocessing
(or find it in the model) for the model to stay accurate.

- MobileNetV2 alpha 0.35 nested in a functional model (the transfer-learning shape),
  96x96, fed [-1, 1] (keras' mobilenet_v2.preprocess_input, cnnx's `symmetric`);
- MobileNetV3Small with its own Rescaling layer (include_preprocessing), raw pixels;
- EfficientNetB0 with Rescaling and Normalization inside (ImageNet statistics set as a
  trained model has them), raw pixels;
- a ResNet from keras.applications' own builder (one bottleneck stack), caffe-mode input
  (BGR, means subtracted), with a logits head: no softmax;
- a Conv -> Activation -> BatchNorm CNN trained by tf_keras and saved as a Keras 2 `.h5`,
  fed x/255 (cnnx's `--scale 1/255`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CLASS_IDS = (0, 2, 5, 7)  # shapes: circle, square, cross, bar
NAMES = ("circle", "square", "cross", "bar")
SEED = 0


@dataclass(frozen=True)
class Family:
    name: str
    path: Path  # the model file
    size: int  # input height and width
    flags: tuple[str, ...]  # what `cnnx export` needs to know about its input
    kind: str  # probabilities | logits
    accuracy: float  # the model's own accuracy on held-out pictures (train-time check)


COLOURS = np.array([[210, 50, 40], [40, 190, 70], [50, 70, 215], [128, 128, 128]], np.float32)


def shapes(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 32x32 RGB `shapes` pictures of four classes, tinted with their class colour."""
    from toolkit.data import DataSpec
    from toolkit.data.shapes import load_shapes

    data = load_shapes(DataSpec(kind="shapes", seed=seed, size=count * 3, image_size=32))
    x = np.concatenate([data.x_train, data.x_val, data.x_test])
    y = np.concatenate([data.y_train, data.y_val, data.y_test])
    keep = np.isin(y, CLASS_IDS)
    mapping = {c: i for i, c in enumerate(CLASS_IDS)}
    labels = np.array([mapping[int(v)] for v in y[keep]], np.int64)[:count]
    gray = x[keep][:count].astype(np.float32).mean(-1, keepdims=True) / 255
    tinted = 0.35 * gray * 255 + 0.65 * COLOURS[labels][:, None, None, :]
    return np.clip(tinted, 0, 255).astype(np.uint8), labels


def at_size(pictures: np.ndarray, size: int) -> np.ndarray:
    """32x32 pictures brought to the model's size by cnnx's own pixel rule."""
    from toolkit.data.pixels import resize

    if size == pictures.shape[1]:
        return pictures
    return np.stack([resize(p, size, size) for p in pictures])


def write_folder(root: Path, pictures: np.ndarray, labels: np.ndarray, *, by_index: bool) -> Path:
    """Class subfolders of 32x32 JPEGs, named by class (or by index when `by_index`)."""
    from PIL import Image

    for i, (picture, label) in enumerate(zip(pictures, labels, strict=True)):
        folder = root / (str(int(label)) if by_index else NAMES[int(label)])
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(picture).save(folder / f"{i:04d}.jpg", quality=92)
    return root


def calibrate_batchnorm(model: Any, inputs: np.ndarray) -> None:
    """Set every BatchNorm's moving statistics from one training-mode pass (no gradients)."""
    layers = [layer for layer in _all_layers(model) if type(layer).__name__ == "BatchNormalization"]
    for layer in layers:
        layer.momentum = 0.0  # the moving statistics become this batch's
    model(inputs, training=True)
    for layer in layers:
        layer.momentum = 0.99


def _all_layers(model: Any) -> list[Any]:
    found = []
    for layer in model.layers:
        found.append(layer)
        if hasattr(layer, "layers"):
            found.extend(_all_layers(layer))
    return found


def fit_head(model: Any, head: str, inputs: np.ndarray, labels: np.ndarray) -> None:
    """Train only the named Dense head of `model`, on features computed once."""
    import keras

    layer = model.get_layer(head)
    features = keras.Model(model.inputs, layer.input).predict(inputs, verbose=0, batch_size=64)
    probe = keras.Sequential(
        [keras.Input(features.shape[1:]), layer.__class__.from_config(layer.get_config())]
    )
    probe.compile(
        keras.optimizers.Adam(0.01),
        keras.losses.SparseCategoricalCrossentropy(
            from_logits=layer.get_config()["activation"] != "softmax"
        ),
    )
    probe.fit(features, labels, epochs=80, batch_size=64, verbose=0)
    layer.set_weights(probe.layers[-1].get_weights())


def accuracy(model: Any, inputs: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(model.predict(inputs, verbose=0).argmax(1) == labels))


def _keras_family(
    folder: Path,
    name: str,
    size: int,
    backbone: Callable[[], Any],
    feed: Callable[[np.ndarray], np.ndarray],
    flags: tuple[str, ...],
    softmax: bool = True,
) -> Family:
    import keras

    keras.utils.set_random_seed(SEED)
    base = backbone()
    inputs = keras.Input((size, size, 3), name="image")
    outputs = keras.layers.Dense(
        len(NAMES), activation="softmax" if softmax else None, name="head"
    )(base(inputs))
    model = keras.Model(inputs, outputs, name=name)
    x, y = shapes(400, seed=11)
    pictures = at_size(x, size).astype(np.float32)
    calibrate_batchnorm(model, feed(pictures[:300].copy()))
    fit_head(model, "head", feed(pictures[:300].copy()), y[:300])
    held_out = accuracy(model, feed(pictures[300:].copy()), y[300:])
    path = folder / f"{name}.keras"
    model.save(path)
    return Family(name, path, size, flags, "probabilities" if softmax else "logits", held_out)


def mobilenet_v2(folder: Path) -> Family:
    import keras

    def backbone() -> Any:
        return keras.applications.MobileNetV2(
            input_shape=(96, 96, 3), alpha=0.35, include_top=False, weights=None, pooling="avg"
        )

    feed = keras.applications.mobilenet_v2.preprocess_input
    return _keras_family(folder, "mobilenet_v2", 96, backbone, feed, ("--preprocess", "symmetric"))


def mobilenet_v3_small(folder: Path) -> Family:
    import keras

    def backbone() -> Any:
        return keras.applications.MobileNetV3Small(
            input_shape=(32, 32, 3),
            include_top=False,
            weights=None,
            pooling="avg",
            include_preprocessing=True,
            minimalistic=True,
        )

    return _keras_family(folder, "mobilenet_v3_small", 32, backbone, lambda x: x, ())


def efficientnet_b0(folder: Path) -> Family:
    import keras

    def backbone() -> Any:
        model = keras.applications.EfficientNetB0(
            input_shape=(32, 32, 3), include_top=False, weights=None, pooling="avg"
        )
        # As trained EfficientNet weights carry them: ImageNet statistics in Normalization.
        norm = next(layer for layer in model.layers if type(layer).__name__ == "Normalization")
        count = norm.get_weights()[2]
        mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
        norm.set_weights([mean, std**2, count])
        return model

    return _keras_family(folder, "efficientnet_b0", 32, backbone, lambda x: x, ())


def resnet(folder: Path) -> Family:
    import keras
    from keras.src.applications import resnet as resnet_builder

    def backbone() -> Any:
        def stack(x: Any) -> Any:
            return resnet_builder.stack_residual_blocks_v1(x, 16, 2, stride1=1, name="conv2")

        return resnet_builder.ResNet(
            stack,
            False,
            True,
            include_top=False,
            weights=None,
            input_shape=(32, 32, 3),
            pooling="avg",
            name="resnet_small",
        )

    feed = keras.applications.resnet50.preprocess_input
    return _keras_family(
        folder, "resnet", 32, backbone, feed, ("--preprocess", "caffe"), softmax=False
    )


def conv_act_bn_h5(folder: Path) -> Family:
    """Conv -> Activation -> BatchNorm, trained whole by tf_keras, fed x/255, saved as .h5."""
    import tf_keras

    tf_keras.utils.set_random_seed(SEED)
    layers = tf_keras.layers
    model = tf_keras.Sequential(
        [
            layers.InputLayer(input_shape=(32, 32, 3)),
            layers.Conv2D(12, 3, padding="same"),
            layers.Activation("relu"),
            layers.BatchNormalization(),
            layers.MaxPooling2D(),
            layers.Conv2D(16, 3, padding="same"),
            layers.Activation("relu"),
            layers.BatchNormalization(),
            layers.GlobalAveragePooling2D(),
            layers.Dense(len(NAMES), activation="softmax"),
        ]
    )
    model.compile(tf_keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    x, y = shapes(700, seed=12)
    pictures = x.astype(np.float32) / 255
    model.fit(pictures[:600], y[:600], epochs=8, batch_size=32, verbose=0)
    held_out = float(np.mean(model.predict(pictures[600:], verbose=0).argmax(1) == y[600:]))
    path = folder / "conv_act_bn.h5"
    model.save(path)
    return Family("conv_act_bn_h5", path, 32, ("--scale", "1/255"), "probabilities", held_out)


BUILDERS = {
    "mobilenet_v2": mobilenet_v2,
    "mobilenet_v3_small": mobilenet_v3_small,
    "efficientnet_b0": efficientnet_b0,
    "resnet": resnet,
    "conv_act_bn_h5": conv_act_bn_h5,
}


_BUILT: dict[str, Family] = {}


def family(name: str, folder: Path) -> Family:
    """A family's model, built once per session."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if name not in _BUILT:
        folder.mkdir(parents=True, exist_ok=True)
        _BUILT[name] = BUILDERS[name](folder)
    return _BUILT[name]
