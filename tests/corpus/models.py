"""Tiny Keras models of every shape the loaders must accept or refuse, built once a session.

`build_models(folder)` writes (about 10 s; the corpus_models fixture builds it once a run):

- good.keras, good.h5, good_savedmodel/ (Keras 3 export), good.tflite: a 16x16x3 CNN
  with 3 classes, the valid reference every junk file is derived from;
- rank2_input.keras, two_inputs.keras, two_outputs.keras, dynamic_size.keras: not
  image classifiers;
- lambda_*.keras / .h5 / lambda_savedmodel/ and writefile_savedmodel/: models whose
  embedded code writes the file named by `marker(folder)` when it runs;
- no_variables_savedmodel/: good_savedmodel without its variables folder.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.factories import flat_classifier, tiny_cnn

SIZE = 16
CLASSES = 3


def marker(folder: Path) -> Path:
    """The file the embedded code of the unsafe models creates when it is executed."""
    return Path(folder) / "EXECUTED"


def _lambda_source(path: Path) -> str:
    # A lambda written as source text so Keras serializes it with its constant path.
    return f"lambda x: (__import__('pathlib').Path({str(path)!r}).touch(), x)[1]"


def build_models(folder: Path) -> dict[str, Path]:
    folder = Path(folder)
    names = {
        name: folder / name
        for name in (
            "good.keras",
            "good.h5",
            "good_savedmodel",
            "good.tflite",
            "rank2_input.keras",
            "two_inputs.keras",
            "two_outputs.keras",
            "dynamic_size.keras",
            "lambda.keras",
            "lambda.h5",
            "lambda_keras2.h5",
            "lambda_savedmodel",
            "writefile_savedmodel",
            "no_variables_savedmodel",
            "huge_input.keras",
        )
    }
    folder.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    import tensorflow as tf

    good = tiny_cnn(SIZE, CLASSES, input_name="image")
    good.save(names["good.keras"])
    good.save(names["good.h5"])
    good.export(str(names["good_savedmodel"]), verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(names["good_savedmodel"]))
    names["good.tflite"].write_bytes(converter.convert())

    flat_classifier(8, CLASSES).save(names["rank2_input.keras"])
    a, b = keras.Input((SIZE, SIZE, 3)), keras.Input((SIZE, SIZE, 3))
    joined = keras.layers.Flatten()(keras.layers.Concatenate()([a, b]))
    keras.Model([a, b], keras.layers.Dense(CLASSES, activation="softmax")(joined)).save(
        names["two_inputs.keras"]
    )
    image = keras.Input((SIZE, SIZE, 3))
    flat = keras.layers.Flatten()(image)
    heads = [keras.layers.Dense(CLASSES, activation="softmax")(flat) for _ in range(2)]
    keras.Model(image, heads).save(names["two_outputs.keras"])
    anysize = keras.Input((None, None, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(anysize))
    keras.Model(anysize, keras.layers.Dense(CLASSES, activation="softmax")(pooled)).save(
        names["dynamic_size.keras"]
    )

    # One picture at this input would take hundreds of GiB; the model itself is tiny.
    huge = keras.Input((100_000, 100_000, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(huge)
    keras.Model(huge, keras.layers.Dense(CLASSES, activation="softmax")(pooled)).save(
        names["huge_input.keras"]
    )

    code = _lambda_source(marker(folder))
    lam_in = keras.Input((SIZE, SIZE, 3))
    lam = keras.layers.Lambda(eval(code))(lam_in)  # no output_shape: loading must call it
    lam_out = keras.layers.Dense(CLASSES, activation="softmax")(keras.layers.Flatten()(lam))
    lambda_model = keras.Model(lam_in, lam_out)
    lambda_model.save(names["lambda.keras"])
    lambda_model.save(names["lambda.h5"])

    import tf_keras

    k2_in = tf_keras.Input((SIZE, SIZE, 3))
    k2 = tf_keras.layers.Lambda(eval(code))(k2_in)
    k2_out = tf_keras.layers.Dense(CLASSES, activation="softmax")(tf_keras.layers.Flatten()(k2))
    k2_model = tf_keras.Model(k2_in, k2_out)
    k2_model.save(names["lambda_keras2.h5"])
    k2_model.save(str(names["lambda_savedmodel"]), save_format="tf")

    class Writer(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, SIZE, SIZE, 3], tf.float32)])
        def serve(self, image: tf.Tensor) -> dict[str, tf.Tensor]:
            tf.io.write_file(str(marker(folder)), "ran")
            flat = tf.reshape(image, [-1, SIZE * SIZE * 3])
            return {"probabilities": tf.nn.softmax(flat[:, :CLASSES])}

    writer = Writer()
    tf.saved_model.save(
        writer, str(names["writefile_savedmodel"]), signatures={"serving_default": writer.serve}
    )

    shutil.copytree(names["good_savedmodel"], names["no_variables_savedmodel"])
    shutil.rmtree(names["no_variables_savedmodel"] / "variables")

    # Building the models ran the lambdas once; the tests start from no marker.
    marker(folder).unlink(missing_ok=True)
    return names
