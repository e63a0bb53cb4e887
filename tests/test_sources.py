"""Every model source becomes the pivot SavedModel and gives the source's outputs.

Each legacy format is built here with the library that really writes it: Keras 3 for
`.keras`/`.h5`, tf_keras for Keras 2 `.h5` and SavedModels, plain TF for a tf.Module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.factories import flat_classifier, tiny_cnn
from toolkit.errors import DataError, ModelError, PathError, UsageError
from toolkit.sources import (
    INPUT_KEY,
    OUTPUT_KEY,
    SIGNATURE,
    Preprocessing,
    Source,
    detect_format,
    resolve_source,
)

pytestmark = pytest.mark.slow

X = np.random.default_rng(0).uniform(0, 255, size=(4, 20, 20, 3)).astype(np.float32)


def _pivot_outputs(source: Source, x: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(source.saved_model_dir))
    serve = loaded.signatures[SIGNATURE]
    _, inputs = serve.structured_input_signature
    assert list(inputs) == [INPUT_KEY] and inputs[INPUT_KEY].dtype == tf.float32
    assert list(serve.structured_outputs) == [OUTPUT_KEY]
    return serve(**{INPUT_KEY: tf.constant(x)})[OUTPUT_KEY].numpy()


def _keras3_model(channels: int = 3) -> Any:
    return tiny_cnn(20, 3, channels=channels, head="average", seed=1)


def _tf_keras_model(lambda_layer: bool = False) -> Any:
    import tf_keras

    tf_keras.utils.set_random_seed(2)
    layers: list[Any] = [tf_keras.layers.InputLayer((20, 20, 3))]
    if lambda_layer:
        layers.append(tf_keras.layers.Lambda(lambda t: t / 255.0))
    layers += [
        tf_keras.layers.Conv2D(4, 3, activation="relu"),
        tf_keras.layers.Flatten(),
        tf_keras.layers.Dense(3, activation="softmax"),
    ]
    return tf_keras.Sequential(layers)


def test_dot_keras(tmp_path: Path) -> None:
    model = _keras3_model()
    model.save(tmp_path / "m.keras")
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\nbird\n")
    source = resolve_source(
        tmp_path / "m.keras",
        out_dir=tmp_path / "out",
        preprocessing=Preprocessing(mean=(127.5,), std=(127.5,)),
        labels_file=labels,
    )
    assert source.saved_model_dir == tmp_path / "out" / "saved_model"
    assert source.labels == ["cat", "dog", "bird"]
    assert source.input_spec.shape == (20, 20, 3)
    assert source.input_spec.mean == (127.5, 127.5, 127.5)  # one value: every channel
    assert source.origin["format"] == "keras" and len(source.origin["sha256"]) == 64
    assert source.eval_data is None
    np.testing.assert_allclose(_pivot_outputs(source, X), model.predict(X, verbose=0), atol=1e-5)


def test_keras3_h5_and_grayscale(tmp_path: Path) -> None:
    model = _keras3_model(channels=1)
    model.save(tmp_path / "m.h5")
    source = resolve_source(tmp_path / "m.h5", out_dir=tmp_path / "out")
    assert source.input_spec.color == "GRAY" and source.labels == ["class_0", "class_1", "class_2"]
    x = X[..., :1]
    np.testing.assert_allclose(_pivot_outputs(source, x), model.predict(x, verbose=0), atol=1e-5)


def test_keras2_h5_through_tf_keras(tmp_path: Path) -> None:
    model = _tf_keras_model()
    model.save(tmp_path / "k2.h5")
    source = resolve_source(tmp_path / "k2.h5", out_dir=tmp_path / "out")
    assert source.origin["format"] == "h5"
    np.testing.assert_allclose(_pivot_outputs(source, X), model.predict(X, verbose=0), atol=1e-5)


def test_keras2_savedmodel(tmp_path: Path) -> None:
    model = _tf_keras_model()
    model.save(tmp_path / "k2sm", save_format="tf")
    assert (tmp_path / "k2sm" / "keras_metadata.pb").is_file()
    source = resolve_source(tmp_path / "k2sm", out_dir=tmp_path / "out")
    assert source.origin["format"] == "savedmodel" and source.origin["sha256"] is None
    np.testing.assert_allclose(_pivot_outputs(source, X), model.predict(X, verbose=0), atol=1e-5)


def test_plain_tf_savedmodel_with_other_names_and_uint8_input(tmp_path: Path) -> None:
    import tensorflow as tf

    module = tf.Module()
    module.w = tf.Variable(np.random.default_rng(3).normal(size=(3, 5)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, 20, 20, 3], tf.uint8, name="pixels")])
    def classify(pixels: tf.Tensor) -> dict[str, tf.Tensor]:
        mean = tf.reduce_mean(tf.cast(pixels, tf.float32), axis=[1, 2]) / 255.0
        return {"scores": tf.nn.softmax(mean @ module.w)}

    module.classify = classify
    tf.saved_model.save(module, str(tmp_path / "plain"), signatures={"predict": classify})
    source = resolve_source(tmp_path / "plain", out_dir=tmp_path / "out")
    x = np.rint(X)
    expected = classify(tf.constant(x.astype(np.uint8)))["scores"].numpy()
    np.testing.assert_allclose(_pivot_outputs(source, x), expected, atol=1e-5)


def test_lambda_refused_unless_unsafe(tmp_path: Path) -> None:
    model = _tf_keras_model(lambda_layer=True)
    model.save(tmp_path / "lam.h5")
    model.save(tmp_path / "lam_sm", save_format="tf")
    for path in (tmp_path / "lam.h5", tmp_path / "lam_sm"):
        with pytest.raises(ModelError, match="Lambda"):
            resolve_source(path, out_dir=tmp_path / "out")
    assert not (tmp_path / "out" / "saved_model").exists()  # nothing half-written
    source = resolve_source(tmp_path / "lam.h5", out_dir=tmp_path / "out", unsafe=True)
    np.testing.assert_allclose(_pivot_outputs(source, X), model.predict(X, verbose=0), atol=1e-5)


def test_keras3_lambda_refused(tmp_path: Path) -> None:
    import keras

    inputs = keras.Input((20, 20, 3))
    x = keras.layers.Lambda(lambda t: t * 2.0)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
    model.save(tmp_path / "lam.keras")
    with pytest.raises(ModelError, match="Lambda"):
        resolve_source(tmp_path / "lam.keras", out_dir=tmp_path / "out")


def test_not_image_models_are_refused(tmp_path: Path) -> None:
    import keras

    flat_classifier().save(tmp_path / "flat.keras")
    with pytest.raises(ModelError, match=r"rank 2.*not an image"):
        resolve_source(tmp_path / "flat.keras", out_dir=tmp_path)

    dynamic_in = keras.Input((None, None, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(dynamic_in)
    dyn = keras.Model(dynamic_in, keras.layers.Dense(2)(pooled))
    dyn.save(tmp_path / "dyn.keras")
    with pytest.raises(ModelError, match="dynamic input size"):
        resolve_source(tmp_path / "dyn.keras", out_dir=tmp_path)

    a, b = keras.Input((20, 20, 3)), keras.Input((20, 20, 3))
    two = keras.Model(
        [a, b], keras.layers.Dense(2)(keras.layers.Flatten()(keras.layers.Add()([a, b])))
    )
    two.save(tmp_path / "two.keras")
    with pytest.raises(ModelError, match="2 inputs"):
        resolve_source(tmp_path / "two.keras", out_dir=tmp_path)


def test_damaged_and_wrong_paths(tmp_path: Path) -> None:
    _keras3_model().save(tmp_path / "ok.keras")
    (tmp_path / "cut.keras").write_bytes((tmp_path / "ok.keras").read_bytes()[:300])
    (tmp_path / "text.h5").write_text("this is not HDF5\n")
    (tmp_path / "folder").mkdir()
    with pytest.raises(PathError, match="does not exist"):
        detect_format(tmp_path / "missing.keras")
    with pytest.raises(ModelError, match="not a Keras archive"):
        resolve_source(tmp_path / "cut.keras", out_dir=tmp_path)
    with pytest.raises(ModelError, match="not a readable HDF5"):
        resolve_source(tmp_path / "text.h5", out_dir=tmp_path)
    with pytest.raises(ModelError, match="neither a SavedModel"):
        resolve_source(tmp_path / "folder", out_dir=tmp_path)
    (tmp_path / "m.onnx").write_bytes(b"\x08\x01")
    with pytest.raises(ModelError, match="unsupported model format"):
        detect_format(tmp_path / "m.onnx")
    labels = tmp_path / "two.txt"
    labels.write_text("a\nb\n")
    with pytest.raises(DataError, match="2 names but the model has 3"):
        resolve_source(tmp_path / "ok.keras", out_dir=tmp_path / "o", labels_file=labels)


def test_run_refuses_preprocessing_flags(tiny_run: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="on record"):
        resolve_source(tiny_run, out_dir=tmp_path, preprocessing=Preprocessing(scale=0.5))


def test_default_is_the_last_run(tiny_run: Path, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import shutil

    shutil.copytree(tiny_run, tmp_path / "runs" / "a")
    monkeypatch.chdir(tmp_path)
    source = resolve_source(None, out_dir=tmp_path / "out")
    assert source.saved_model_dir == Path("runs/a/saved_model").absolute()
    monkeypatch.chdir(tmp_path / "runs")
    with pytest.raises(PathError, match="no trained run"):
        resolve_source(None, out_dir=tmp_path / "out")
