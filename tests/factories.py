"""Every model the tests build, from one place. This module holds no tests.

The small ones, built in a second (Keras 3, seeded, untrained unless `fit` is called):

- `tiny_cnn`: Rescaling -> Conv2D+ReLU blocks -> pooling -> a softmax Dense, the
  reference image classifier of the loader, runtime, package and export tests;
- `flat_classifier`: a Dense on a rank-2 input, the model that is not an image classifier;
- `conv_act_bn`: Conv -> Activation -> BatchNorm blocks, where plain int8 drifts
  (tests/corpus/drifting.py trains it);
- `fit` trains any of them; `random_pictures` gives seeded uint8-valued float pictures.

The bring-your-own-model families below them are the classifiers people bring, trained
at small sizes by `python -m tests.factories [NAME...]` and shipped under tests/models/
with their record (`family` reads them): training them is minutes that no test run
should repeat.

keras.applications backbones are built with `weights=None` (nothing can be downloaded
here) and trained whole, from their random start, for a few epochs; then their BatchNorm
statistics are set from one pass over the training pictures, since a few hundred steps
leave the moving averages behind. A head fitted on random features, or a model whose
statistics do not match what it computes, gives near ties everywhere: int8 then flips
answers, and float rounding alone can (a 1e-6 change of the input flipped 2 of 64).

The pictures are `shapes` in four classes: circles, squares and crosses tinted with a
colour of their class (red, green, blue), and plain pictures of any shape as the
generator draws them. The plain class matters: with no data, verify compares on
generated pictures, which are exactly those, so they sit inside the model's classes with
margins as wide as the others rather than between two colours, where an answer is a
near tie that quantized weights flip.

Each backbone is fed the way its family expects, through keras.applications' own
`preprocess_input` when it has one: the export must then name the same preprocessing
(or find it in the model) for the model to stay accurate.

- MobileNetV2 alpha 0.35 nested in a functional model (the transfer-learning shape),
  96x96, fed [-1, 1] (keras' mobilenet_v2.preprocess_input, cnnx's `symmetric`);
- MobileNetV3Small with its own Rescaling layer (include_preprocessing), raw pixels;
- EfficientNet from keras' own builder (B0's blocks at half its width, a quarter of its
  depth) with Rescaling and Normalization inside (ImageNet statistics set as a trained
  model has them), raw pixels;
- a ResNet from keras.applications' own builder (one bottleneck stack), caffe-mode input
  (BGR, means subtracted), with a logits head: no softmax;
- a Conv -> Activation -> BatchNorm CNN trained by tf_keras and saved as a Keras 2 `.h5`,
  fed x/255 (cnnx's `--scale 1/255`);
- the binary classifiers: a tiny CNN ending in one sigmoid unit, and one giving a logit,
  trained on red and blue shapes (`two_classes`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

# --- the small models ------------------------------------------------------------------


def tiny_cnn(
    size: int = 16,
    classes: int = 3,
    *,
    filters: tuple[int, ...] = (4,),
    channels: int = 3,
    head: str = "flatten",
    dropout: float = 0.0,
    seed: int = 0,
    input_name: str | None = None,
    output_name: str | None = None,
) -> Any:
    """Rescaling(1/255), then a 3x3 Conv2D+ReLU per entry of `filters` (max-pooled in
    between), then `head` ("flatten": max-pool and flatten; "average": global average
    pooling), optional Dropout, and a softmax Dense of `classes`."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, channels), name=input_name)
    x = keras.layers.Rescaling(1 / 255)(inputs)
    for index, count in enumerate(filters):
        if index:
            x = keras.layers.MaxPooling2D()(x)
        x = keras.layers.Conv2D(count, 3, activation="relu")(x)
    if head == "flatten":
        x = keras.layers.Flatten()(keras.layers.MaxPooling2D()(x))
    else:
        x = keras.layers.GlobalAveragePooling2D()(x)
    if dropout:
        x = keras.layers.Dropout(dropout)(x)
    outputs = keras.layers.Dense(classes, activation="softmax", name=output_name)(x)
    return keras.Model(inputs, outputs)


def flat_classifier(features: int = 8, classes: int = 3) -> Any:
    """A softmax Dense on a rank-2 input: a classifier, but not of images."""
    import keras

    inputs = keras.Input((features,))
    return keras.Model(inputs, keras.layers.Dense(classes, activation="softmax")(inputs))


def conv_act_bn(input_shape: tuple[int, int, int], classes: int, seed: int = 0) -> Any:
    """Conv -> Activation -> BatchNorm blocks (the BN cannot fold into the convolution),
    GlobalMaxPooling, Dropout, a Dense and a separate softmax Activation."""
    import keras

    keras.utils.set_random_seed(seed)
    layers = keras.layers
    inputs = keras.Input(input_shape, name="image")
    x = layers.Rescaling(1 / 255)(inputs)
    for index, count in enumerate(CONV_ACT_BN_FILTERS):
        x = layers.Conv2D(count, 3, padding="same")(x)
        x = layers.Activation("relu")(x)
        x = layers.BatchNormalization(momentum=0.9)(x)
        if index % 2 == 1:
            x = layers.MaxPooling2D()(x)
    x = layers.GlobalMaxPooling2D()(x)
    x = layers.Dropout(0.2)(x)
    x = layers.Dense(classes)(x)
    outputs = layers.Activation("softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="conv_act_bn")


CONV_ACT_BN_FILTERS = (8, 8, 16, 16, 32, 32)


def fit(model: Any, pictures: np.ndarray, labels: np.ndarray, *, epochs: int) -> Any:
    """Train `model` with Adam (0.01) on sparse labels, quietly; returns it."""
    import keras

    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(pictures.astype(np.float32), labels, epochs=epochs, batch_size=32, verbose=0)
    return model


def random_pictures(count: int, size: int, seed: int = 0, channels: int = 3) -> np.ndarray:
    """`count` seeded pictures of uniform noise, 0..255 as float32."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, size, size, channels)).astype(np.float32)


# --- the bring-your-own-model families ------------------------------------------------


TINTED_IDS = (0, 2, 5)  # shapes: circle, square, cross, drawn in a colour of their class
NAMES = ("red", "green", "blue", "plain")
PLAIN = 3  # the generator's own pictures, any shape, untinted: what verify generates
SEED = 0
EPOCHS = 6
TRAIN, HELD_OUT = 700, 100
EFFICIENTNET_WIDTH, EFFICIENTNET_DEPTH = 0.5, 0.25  # of B0's
LEARNING_RATE = 2e-3


@dataclass(frozen=True)
class Family:
    name: str
    path: Path  # the model file
    size: int  # input height and width
    flags: tuple[str, ...]  # what `cnnx export` needs to know about its input
    kind: str  # probabilities | logits
    accuracy: float  # the model's own accuracy on held-out pictures (train-time check)


COLOURS = np.array([[210, 50, 40], [40, 190, 70], [50, 70, 215]], np.float32)


def shapes(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 32x32 RGB `shapes` pictures of four classes in equal shares: three shapes
    tinted with their class colour, and plain pictures of any shape as drawn."""
    from toolkit.data import DataSpec
    from toolkit.data.shapes import load_shapes

    data = load_shapes(DataSpec(kind="shapes", seed=seed, size=count * 3, image_size=32))
    x = np.concatenate([data.x_train, data.x_val, data.x_test])
    y = np.concatenate([data.y_train, data.y_val, data.y_test])
    labels = np.full(len(y), PLAIN, np.int64)
    for label, shape in enumerate(TINTED_IDS):
        labels[y == shape] = label
    share = -(-count // len(NAMES))
    keep = np.concatenate([np.flatnonzero(labels == c)[:share] for c in range(len(NAMES))])
    keep = np.random.default_rng(seed).permutation(keep)
    x, labels = x[keep][:count], labels[keep][:count]
    tint = COLOURS[np.minimum(labels, PLAIN - 1)][:, None, None, :]
    gray = x.astype(np.float32).mean(-1, keepdims=True)
    tinted = np.clip(0.2 * gray + 0.8 * tint, 0, 255).astype(np.uint8)
    return np.where((labels == PLAIN)[:, None, None, None], x, tinted), labels


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


def train(
    model: Any, inputs: np.ndarray, labels: np.ndarray, *, softmax: bool, epochs: int
) -> None:
    """The whole model from its random start, then BatchNorm statistics set for the
    weights it ends with (a few hundred steps leave the moving averages behind)."""
    import keras

    model.compile(
        keras.optimizers.Adam(LEARNING_RATE),
        keras.losses.SparseCategoricalCrossentropy(from_logits=not softmax),
    )
    model.fit(inputs, labels, epochs=epochs, batch_size=32, verbose=0)
    calibrate_batchnorm(model, inputs)


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
    epochs: int = EPOCHS,
    pictures: int = TRAIN,
) -> Family:
    import keras

    keras.utils.set_random_seed(SEED)
    base = backbone()
    inputs = keras.Input((size, size, 3), name="image")
    outputs = keras.layers.Dense(
        len(NAMES), activation="softmax" if softmax else None, name="head"
    )(base(inputs))
    model = keras.Model(inputs, outputs, name=name)
    x, y = shapes(pictures + HELD_OUT, seed=11)
    sized = at_size(x, size).astype(np.float32)
    fed = feed(sized[:pictures].copy())
    train(model, fed, y[:pictures], softmax=softmax, epochs=epochs)
    held_out = accuracy(model, feed(sized[pictures:].copy()), y[pictures:])
    path = folder / f"{name}.keras"
    # The same layers, uncompiled: the file then carries no optimizer state (two more
    # copies of every weight), which a shipped test model has no use for.
    keras.Model(model.inputs, model.outputs, name=name).save(path)
    return Family(name, path, size, flags, "probabilities" if softmax else "logits", held_out)


def mobilenet_v2(folder: Path) -> Family:
    import keras

    def backbone() -> Any:
        return keras.applications.MobileNetV2(
            input_shape=(96, 96, 3), alpha=0.35, include_top=False, weights=None, pooling="avg"
        )

    feed = keras.applications.mobilenet_v2.preprocess_input
    # At 96x96 a picture costs 9 of 32x32's: fewer of them, which still separate the classes.
    flags = ("--preprocess", "symmetric")
    return _keras_family(folder, "mobilenet_v2", 96, backbone, feed, flags, pictures=360)


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

    # Trained twice as long as the others: with the shorter training one of the 64
    # generated pictures sat close enough to a class boundary for dynamic-range and uint8
    # weight rounding to flip it on some machines (an AVX-512 one did, every run).
    return _keras_family(
        folder, "mobilenet_v3_small", 32, backbone, lambda x: x, (), epochs=2 * EPOCHS
    )


def efficientnet(folder: Path) -> Family:
    from keras.src.applications import efficientnet as builder

    def backbone() -> Any:
        # B0's blocks (MBConv with squeeze-excite, swish, stochastic depth) from keras'
        # own builder, at half B0's width and a quarter of its depth: B0 itself takes a
        # minute to export on 2 cores, and its extra blocks hold nothing new for the
        # converters. At a quarter of the width, 8-channel layers made int8's per-tensor
        # activation ranges too coarse (94% agreement); at half, they agree.
        model = builder.EfficientNet(
            EFFICIENTNET_WIDTH,
            EFFICIENTNET_DEPTH,
            32,
            name="efficientnet_small",
            input_shape=(32, 32, 3),
            include_top=False,
            weights=None,
            pooling="avg",
        )
        # As trained EfficientNet weights carry them: ImageNet statistics in Normalization.
        norm = next(layer for layer in model.layers if type(layer).__name__ == "Normalization")
        count = norm.get_weights()[2]
        mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
        norm.set_weights([mean, std**2, count])
        norm.finalize_state()  # what it computes with; loading the file does the same
        return model

    # Swish and squeeze-excite lose more to int8 than ReLU blocks: it trains longer, so
    # its answers stand further apart.
    return _keras_family(folder, "efficientnet", 32, backbone, lambda x: x, (), epochs=12)


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
    model.compile(tf_keras.optimizers.Adam(LEARNING_RATE), "sparse_categorical_crossentropy")
    x, y = shapes(TRAIN + HELD_OUT, seed=12)
    pictures = x.astype(np.float32) / 255
    model.fit(pictures[:TRAIN], y[:TRAIN], epochs=12, batch_size=32, verbose=0)
    calibrate_batchnorm(model, pictures[:TRAIN])
    held_out = accuracy(model, pictures[TRAIN:], y[TRAIN:])
    path = folder / "conv_act_bn.h5"
    model.save(path)
    return Family("conv_act_bn_h5", path, 32, ("--scale", "1/255"), "probabilities", held_out)


BINARY_NAMES = ("cat", "dog")  # label 0: p near 0; label 1: p near 1
BINARY_KEPT = (0, 2)  # the `shapes` classes kept: red shapes are "cat", blue ones "dog"


def two_classes(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """About `count` red and blue `shapes` pictures (of `count * 2` drawn), labelled 0 and 1."""
    x, y = shapes(count * 2, seed=seed)
    keep = np.isin(y, BINARY_KEPT)
    return x[keep], (y[keep] == BINARY_KEPT[1]).astype(np.int64)


def binary(head: str) -> Callable[[Path], Family]:
    """A tiny CNN ending in one unit, as binary classifiers are trained: a sigmoid, or a
    logit (no activation, TensorFlow's transfer-learning tutorial)."""

    def build(folder: Path) -> Family:
        import keras

        keras.utils.set_random_seed(0)
        inputs = keras.Input((32, 32, 3))
        hidden = keras.layers.Rescaling(1 / 255)(inputs)
        hidden = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(hidden)
        hidden = keras.layers.GlobalAveragePooling2D()(hidden)
        unit = keras.layers.Dense(1, activation="sigmoid" if head == "sigmoid" else None)(hidden)
        model = keras.Model(inputs, unit, name=f"binary_{head}")
        model.compile(
            keras.optimizers.Adam(1e-2),
            keras.losses.BinaryCrossentropy(from_logits=head == "logit"),
        )
        x, y = two_classes(300, seed=5)
        model.fit(x.astype(np.float32), y.astype(np.float32), epochs=15, batch_size=32, verbose=0)
        held_x, held_y = two_classes(100, seed=6)
        said = model.predict(held_x.astype(np.float32), verbose=0)[:, 0]
        held_out = float(np.mean((said > (0.5 if head == "sigmoid" else 0.0)) == held_y))
        path = folder / f"binary_{head}.keras"
        keras.Model(inputs, unit, name=model.name).save(path)  # uncompiled, as above
        kind = "probabilities" if head == "sigmoid" else "logits"
        return Family(f"binary_{head}", path, 32, (), kind, held_out)

    return build


def drifting(folder: Path) -> Family:
    """tests/corpus/drifting.py's cnnx run (a folder), where plain int8 drifts."""
    from tests.corpus.drifting import drifting_run

    target = folder / "drifting_run"
    with tempfile.TemporaryDirectory() as scratch:
        run = drifting_run(Path(scratch))  # the run, beside the untrained file it resumed
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(run, target)
    metrics = json.loads((target / "run.json").read_text())["metrics"]
    return Family("drifting", target, 32, (), "probabilities", metrics["test_accuracy"])


BUILDERS = {
    "mobilenet_v2": mobilenet_v2,
    "mobilenet_v3_small": mobilenet_v3_small,
    "efficientnet": efficientnet,
    "resnet": resnet,
    "conv_act_bn_h5": conv_act_bn_h5,
    "binary_sigmoid": binary("sigmoid"),
    "binary_logit": binary("logit"),
    "drifting": drifting,
}


MODELS = Path(__file__).parent / "models"  # the trained families, as `main` wrote them
RECORD = MODELS / "families.json"


def family(name: str) -> Family:
    """A family's trained model, shipped under tests/models/: training them all takes
    minutes on 2 cores, and each test run would repeat it. `python -m tests.factories`
    writes them again from the builders above (seeded), with their record."""
    fields = json.loads(RECORD.read_text())[name]
    path = MODELS / fields.pop("path")
    if digest(path) != fields.pop("sha256"):
        raise AssertionError(f"{path} is not the file {RECORD.name} records: rebuild both")
    return Family(**{**fields, "path": path, "flags": tuple(fields["flags"])})


def digest(path: Path) -> str:
    """sha256 of a file, or of a folder's files (their relative paths and contents)."""
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    files = sorted(p for p in path.rglob("*") if p.is_file())
    listed = "".join(f"{p.relative_to(path).as_posix()} {digest(p)}\n" for p in files)
    return hashlib.sha256(listed.encode()).hexdigest()


def main(names: list[str]) -> None:
    """Train the named families (all when none is named) into tests/models/ and record
    each one's input, flags, head and held-out accuracy beside its file's sha256."""
    MODELS.mkdir(exist_ok=True)
    record = json.loads(RECORD.read_text()) if RECORD.exists() else {}
    for name in names or list(BUILDERS):
        built = BUILDERS[name](MODELS)
        record[name] = {**asdict(built), "path": built.path.name, "sha256": digest(built.path)}
        print(f"{name}: {built.path.name}, held-out accuracy {built.accuracy:.3f}")
    RECORD.write_text(json.dumps(dict(sorted(record.items())), indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
