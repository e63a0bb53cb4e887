"""The two architectures: the tutorial network exactly, and its advanced variant."""

from __future__ import annotations

import numpy as np
import pytest

from toolkit.errors import UsageError
from toolkit.train.models import build_model

pytestmark = pytest.mark.slow  # builds Keras models


def _summary(model) -> list[tuple[str, object]]:  # type: ignore[no-untyped-def]
    rows = []
    for layer in model.layers[1:]:
        kind = type(layer).__name__
        if kind == "Conv2D":
            rows.append((kind, (layer.filters, layer.kernel_size, layer.activation.__name__)))
        elif kind == "Dense":
            rows.append((kind, (layer.units, layer.activation.__name__)))
        elif kind == "MaxPooling2D":
            rows.append((kind, layer.pool_size))
        else:
            rows.append((kind, None))
    return rows


def test_seed_is_the_tutorial_network() -> None:
    model = build_model("seed", (32, 32, 3), 10)
    assert _summary(model) == [
        ("Rescaling", None),
        ("Conv2D", (32, (3, 3), "relu")),
        ("MaxPooling2D", (2, 2)),
        ("Conv2D", (64, (3, 3), "relu")),
        ("MaxPooling2D", (2, 2)),
        ("Conv2D", (64, (3, 3), "relu")),
        ("Flatten", None),
        ("Dense", (64, "relu")),
        ("Dense", (10, "softmax")),
    ]
    assert model.count_params() == 122_570  # the tutorial's figure for 32x32x3, 10 classes
    assert model.layers[1].scale == pytest.approx(1 / 255)


def test_width_input_and_classes_follow_the_data() -> None:
    model = build_model("seed", (24, 24, 1), 4, width=0.25)
    assert tuple(model.input_shape) == (None, 24, 24, 1)
    assert tuple(model.output_shape) == (None, 4)
    convs = [layer.filters for layer in model.layers if type(layer).__name__ == "Conv2D"]
    assert convs == [8, 16, 16]


def test_seed_plus_has_bn_dropout_and_inactive_augmentation() -> None:
    model = build_model("seed-plus", (32, 32, 3), 10, width=0.25, seed=3)
    kinds = {type(layer).__name__ for layer in model.layers}
    assert {"BatchNormalization", "Dropout", "RandomFlip", "RandomTranslation"} <= kinds
    x = np.random.default_rng(0).uniform(0, 255, size=(4, 32, 32, 3)).astype(np.float32)
    first = model(x, training=False).numpy()
    np.testing.assert_array_equal(first, model(x, training=False).numpy())  # inference: fixed
    assert not np.allclose(first, model(x, training=True).numpy())  # training: augmented


def test_seeded_weights_repeat() -> None:
    a = build_model("seed", (32, 32, 3), 10, width=0.25, seed=7).get_weights()
    b = build_model("seed", (32, 32, 3), 10, width=0.25, seed=7).get_weights()
    c = build_model("seed", (32, 32, 3), 10, width=0.25, seed=8).get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize(
    ("arch", "shape", "classes", "width", "needle"),
    [
        ("resnet", (32, 32, 3), 10, 1.0, "unknown architecture"),
        ("seed", (16, 16, 3), 10, 1.0, "at least 18x18"),
        ("seed", (32, 32, 3), 1, 1.0, "at least 2 classes"),
        ("seed", (32, 32, 3), 10, 0.0, "--width"),
    ],
)
def test_bad_arguments(arch: str, shape, classes: int, width: float, needle: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError, match=needle):
        build_model(arch, shape, classes, width=width)
