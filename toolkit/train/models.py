"""The CNNs cnnx trains: the tutorial's `seed` network and its `seed-plus` variant.

Both start with Rescaling(1/255), so they take raw 0..255 pixels and every runtime can
feed the same bytes with an identity InputSpec. `width` scales every filter count and
dense unit count, so tests can train tiny models in seconds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from toolkit.errors import UsageError

if TYPE_CHECKING:
    import keras

ARCHS = ("seed", "seed-plus")


def _units(base: int, width: float) -> int:
    return max(1, round(base * width))


def build_model(
    arch: str,
    input_shape: tuple[int, int, int],
    num_classes: int,
    width: float = 1.0,
    seed: int = 0,
) -> keras.Model:
    """A compiled-free Keras model for `arch`, seeded so weights are reproducible."""
    import keras
    from keras import layers

    if arch not in ARCHS:
        raise UsageError(f"unknown architecture {arch!r}", f"use one of {', '.join(ARCHS)}")
    if not 0 < width <= 16:
        raise UsageError(f"--width must be within (0, 16], got {width}")
    if num_classes < 2:
        raise UsageError(f"a classifier needs at least 2 classes, got {num_classes}")
    h, w, c = input_shape
    # The seed net shrinks 32 -> 30 -> 15 -> 13 -> 6 -> 4; below 18 pixels nothing is left.
    if min(h, w) < 18:
        raise UsageError(f"the CNNs need inputs of at least 18x18, got {h}x{w}")

    keras.utils.set_random_seed(seed)
    f32, f64, d64 = _units(32, width), _units(64, width), _units(64, width)
    inputs = keras.Input(shape=(h, w, c), name="image")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    if arch == "seed":
        # The tutorial network, layer for layer.
        x = layers.Conv2D(f32, (3, 3), activation="relu")(x)
        x = layers.MaxPooling2D((2, 2))(x)
        x = layers.Conv2D(f64, (3, 3), activation="relu")(x)
        x = layers.MaxPooling2D((2, 2))(x)
        x = layers.Conv2D(f64, (3, 3), activation="relu")(x)
        x = layers.Flatten()(x)
        x = layers.Dense(d64, activation="relu")(x)
    else:
        # Augmentation layers are identity at inference, so exports see none of them.
        x = layers.RandomFlip("horizontal", seed=seed, name="augment_flip")(x)
        x = layers.RandomTranslation(0.08, 0.08, seed=seed, name="augment_shift")(x)
        x = layers.RandomZoom(0.1, seed=seed, name="augment_zoom")(x)
        for filters in (f32, f64, f64):
            x = layers.Conv2D(filters, (3, 3), padding="same", use_bias=False)(x)
            x = layers.BatchNormalization()(x)
            x = layers.Activation("relu")(x)
            x = layers.MaxPooling2D((2, 2))(x)
            x = layers.Dropout(0.1)(x)
        x = layers.Flatten()(x)
        x = layers.Dense(d64, activation="relu")(x)
        x = layers.Dropout(0.3)(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=f"cnnx_{arch.replace('-', '_')}")
