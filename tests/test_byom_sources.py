"""Reading the model people bring: labels files, preprocessing presets and what a model's
first layers say, Keras 2.13/2.14 `.keras` files, several heads, logits, identity.

Tiny models (16x16 inputs, a few filters) so these run in seconds; the families people
ship (keras.applications backbones and friends) go through export in test_byom_families.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.corpus.keras34 import reference_model, write_keras34
from tests.keras2_files import write_keras214
from toolkit.data.inputspec import PRESETS, InputSpec
from toolkit.errors import DataError, ModelError, UsageError
from toolkit.sources import Preprocessing, resolve_source
from toolkit.sources.heads import LOGITS, PROBABILITIES, SCORES, output_kind
from toolkit.sources.labels import read_labels
from toolkit.sources.preprocessing import parse_number, scaling_layers

pytestmark = pytest.mark.slow

X = np.random.default_rng(0).uniform(0, 255, size=(6, 16, 16, 3)).astype(np.float32)


def pivot_outputs(saved_model_dir: Path, x: np.ndarray) -> np.ndarray:
    from exporters.savedmodel import load_pivot, predict

    return predict(load_pivot(saved_model_dir), x)


# --- labels ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("labels.txt", "T-shirt/top\nTrouser\n\nPullover\n"),
        ("labels.txt", "0 T-shirt/top\n1 Trouser\n2 Pullover\n"),  # Teachable Machine's
        ("labels.csv", "index,label\n0,T-shirt/top\n2,Pullover\n1,Trouser\n"),
        ("labels.csv", "T-shirt/top\nTrouser\nPullover\n"),
        ("labels.json", '["T-shirt/top", "Trouser", "Pullover"]'),
        ("labels.json", '{"1": "Trouser", "0": "T-shirt/top", "2": "Pullover"}'),
        ("class_indices.json", '{"Pullover": 2, "T-shirt/top": 0, "Trouser": 1}'),
        ("meta.json", '{"labels": ["T-shirt/top", "Trouser", "Pullover"]}'),
    ],
)
def test_labels_from_text_csv_and_json(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    assert read_labels(path, 3) == ["T-shirt/top", "Trouser", "Pullover"]


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("labels.csv", "0,cat\n2,dog\n", "numbers its classes 0, 2"),
        ("labels.csv", "a,cat\nb,dog\n", "CSV rows must be 'index,name' or 'name'"),
        ("labels.json", '{"cat": "dog"}', "not a list of names or an index/name mapping"),
        ("labels.json", "[1, 2", "not valid JSON"),
        ("labels.txt", "cat\ncat\n", "names 'cat' twice"),
        ("labels.txt", "cat\ndog\nemu\nfox\n", "has 4 names but the model has 3 classes"),
    ],
)
def test_bad_labels_files_say_why(tmp_path: Path, name: str, text: str, match: str) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=match):
        read_labels(path, 3)


# --- preprocessing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("preset", "mode"), [("symmetric", "tf"), ("imagenet", "torch"), ("caffe", "caffe")]
)
def test_presets_match_keras_applications_preprocess_input(preset: str, mode: str) -> None:
    from keras.applications import imagenet_utils

    pixels = np.random.default_rng(1).integers(0, 256, size=(4, 7, 5, 3), dtype=np.uint8)
    chosen = PRESETS[preset]
    spec = InputSpec(
        7,
        5,
        3,
        color=chosen.color,
        scale=chosen.scale,
        offset=chosen.offset,
        mean=chosen.mean,
        std=chosen.std,
    )
    expected = imagenet_utils.preprocess_input(pixels.astype(np.float32), mode=mode)
    assert np.allclose(spec.apply(pixels), expected, atol=1e-4)


def test_unit_preset_and_fractions() -> None:
    pixels = np.array([[[[0, 51, 255]]]], np.uint8)
    spec = Preprocessing(preset="unit").input_spec((1, 1, 3), [])
    assert np.allclose(spec.apply(pixels), pixels / 255.0)
    assert parse_number("1/255", "--scale") == 1 / 255
    assert parse_number(" -1 ", "--offset") == -1.0
    assert parse_number("2/255.0", "--scale") == 2 / 255
    for bad in ("1/0", "one", "1/2/3"):
        with pytest.raises(UsageError):
            parse_number(bad, "--scale")
    with pytest.raises(UsageError, match="both say how pixels are scaled"):
        Preprocessing(preset="unit", scale=0.5)
    with pytest.raises(UsageError, match="caffe takes BGR"):
        Preprocessing(preset="caffe", color="RGB")


def test_rescaling_and_normalization_inside_a_nested_model_are_found() -> None:
    import keras

    inner_in = keras.Input((16, 16, 3))
    h = keras.layers.Rescaling(1 / 255)(inner_in)
    h = keras.layers.Normalization(mean=[0.5, 0.4, 0.3], variance=[0.04, 0.04, 0.09])(h)
    h = keras.layers.Conv2D(2, 3)(h)
    backbone = keras.Model(inner_in, keras.layers.GlobalAveragePooling2D()(h), name="backbone")
    outer_in = keras.Input((16, 16, 3))
    model = keras.Model(outer_in, keras.layers.Dense(3)(backbone(outer_in)))
    found = scaling_layers(model)
    assert found[0] == "Rescaling(x * 0.00392157 + 0)"
    assert found[1].startswith("Normalization(mean [0.5, 0.4, 0.3]")
    plain = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(2, 3)])
    assert scaling_layers(plain) == []


# --- Keras 2.13/2.14 `.keras` files --------------------------------------------------------


def _tf_keras_nested() -> Any:
    """A Conv -> Activation -> BatchNorm backbone (Sequential) inside a functional model."""
    import tf_keras

    tf_keras.utils.set_random_seed(3)
    layers = tf_keras.layers
    backbone = tf_keras.Sequential(
        [
            layers.InputLayer(input_shape=(16, 16, 3)),
            layers.Rescaling(1 / 255),
            layers.Conv2D(4, 3),
            layers.Activation("relu"),
            layers.BatchNormalization(),
            layers.DepthwiseConv2D(3),
        ],
        name="backbone",
    )
    inputs = tf_keras.Input((16, 16, 3))
    pooled = layers.GlobalAveragePooling2D()(backbone(inputs))
    model = tf_keras.Model(inputs, layers.Dense(3, activation="softmax")(pooled))
    norm = backbone.layers[3]
    norm.set_weights([w + np.float32(0.3 * (i + 1)) for i, w in enumerate(norm.get_weights())])
    return model


def test_a_keras_214_dot_keras_is_rebuilt_and_gives_its_outputs(tmp_path: Path) -> None:
    import keras
    import tf_keras

    model = _tf_keras_nested()
    path = write_keras214(model, tmp_path / "old.keras")
    with zipfile.ZipFile(path) as archive:
        config = archive.read("config.json").decode()
    assert "batch_input_shape" in config
    with pytest.raises((TypeError, ValueError)):  # what a user saw: neither Keras reads it
        keras.saving.load_model(path, compile=False)
    with pytest.raises(ValueError):
        tf_keras.models.load_model(path, compile=False)
    source = resolve_source(path, out_dir=tmp_path / "scratch")
    assert np.allclose(
        pivot_outputs(source.saved_model_dir, X), model.predict(X, verbose=0), atol=1e-6
    )
    assert "Rescaling(x * 0.00392157 + 0)" in " ".join(source.notes)


def test_a_keras_34_file_is_rebuilt_without_augmentation_arguments(tmp_path: Path) -> None:
    import keras

    from toolkit.sources.keras_files import load_keras_file

    path = write_keras34(tmp_path / "keras34.keras")
    with pytest.raises((TypeError, ValueError), match="value_range"):  # what a user saw
        keras.saving.load_model(path, compile=False)
    loaded = load_keras_file(path, "keras")
    assert tuple(loaded.model.inputs[0].shape) == (None, 16, 16, 3)  # batch 32 freed
    assert loaded.rebuilt == {
        "written_by_keras": "3.4.1",
        "dropped": [
            {"layer": "random_rotation", "class": "RandomRotation", "argument": "value_range"}
        ],
        "freed_batch": 32,
    }
    source = resolve_source(path, out_dir=tmp_path / "scratch")
    assert source.origin["rebuilt"] == loaded.rebuilt
    (warning,) = source.warnings
    assert "random_rotation (RandomRotation): value_range" in warning
    assert "freed the batch size its InputLayer fixed at 32" in warning
    expected = reference_model().predict(X, verbose=0)
    assert np.allclose(pivot_outputs(source.saved_model_dir, X), expected, atol=1e-6)


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (
            {"conv2d": {"fancy_padding": True}},
            "layer 'conv2d' (Conv2D) has argument 'fancy_padding'",
        ),
        # Rescaling changes every pixel at inference: no argument of it is dropped.
        (
            {"rescaling": {"value_range": [0, 1]}},
            "layer 'rescaling' (Rescaling) has argument 'value_range'",
        ),
    ],
)
def test_an_unknown_argument_outside_augmentation_is_refused(
    tmp_path: Path, extra: dict[str, Any], says: str
) -> None:
    path = write_keras34(tmp_path / "keras34.keras", extra)
    with pytest.raises(ModelError) as caught:
        resolve_source(path, out_dir=tmp_path / "scratch")
    assert says in caught.value.one_line()
    assert "which Keras 3." in caught.value.one_line()


def test_augmentation_layers_do_nothing_at_inference() -> None:
    """The rebuild drops unknown arguments only from these layers: each must hand its
    input back unchanged at inference in the installed Keras."""
    import keras

    from toolkit.sources.earlier_keras import AUGMENTATION

    found = [name for name in sorted(AUGMENTATION) if hasattr(keras.layers, name)]
    assert len(found) >= 20
    for name in found:
        cls = getattr(keras.layers, name)
        for args in [(), (0.2,), (0.2, 0.2), (3,)]:
            try:
                layer = cls(*args)
                break
            except (TypeError, ValueError):
                continue
        assert np.array_equal(np.asarray(layer(X, training=False)), X), name


def test_when_every_loader_fails_the_line_names_each_and_the_writer(tmp_path: Path) -> None:
    import h5py

    path = write_keras214(_tf_keras_nested(), tmp_path / "broken.keras")
    # Damage one layer's weights: the rebuild must refuse, not load wrong numbers.
    with zipfile.ZipFile(path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    weights = tmp_path / "w.h5"
    weights.write_bytes(files["model.weights.h5"])
    with h5py.File(weights, "r+") as h5:
        group = h5["_layer_checkpoint_dependencies/dense/vars"]
        del group["0"]
        group.create_dataset("0", data=np.zeros((5, 3), np.float32))
    files["model.weights.h5"] = weights.read_bytes()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    with pytest.raises(ModelError) as caught:
        resolve_source(path, out_dir=tmp_path / "scratch")
    line = caught.value.one_line()
    assert "written by Keras 2.14.0, per metadata.json" in line
    assert "keras 3: a Keras 2 config (batch_input_shape)" in line
    # Layer names carry a counter when other models were built in the same process.
    assert re.search(
        r"rebuild from config: layer 'dense(_\d+)?' weight 0 is \(4, 3\), the file \(5, 3\)", line
    )
    assert "tf_keras: no weights found for" in line
    assert line.endswith("model.export('dir'))")


# --- heads -----------------------------------------------------------------------------


def _two_heads(tmp_path: Path) -> Path:
    import keras

    image, meta = keras.Input((16, 16, 3), name="image"), keras.Input((4,), name="meta")
    features = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(image))
    species = keras.layers.Dense(5, activation="softmax", name="species")(features)
    box = keras.layers.Dense(4, name="box")(keras.layers.Concatenate()([features, meta]))
    path = tmp_path / "two_heads.keras"
    keras.Model([image, meta], [species, box]).save(path)
    return path


def test_several_inputs_and_outputs_are_named_and_output_picks_the_head(tmp_path: Path) -> None:
    path = _two_heads(tmp_path)
    with pytest.raises(ModelError) as caught:
        resolve_source(path, out_dir=tmp_path / "a")
    assert "2 inputs (image, meta) and 2 outputs (species, box)" in caught.value.one_line()
    assert "--output NAME (one of: species, box)" in caught.value.one_line()
    source = resolve_source(path, out_dir=tmp_path / "b", output="species")
    assert pivot_outputs(source.saved_model_dir, X).shape == (6, 5)
    with pytest.raises(ModelError, match="needs more than one of its inputs"):
        resolve_source(path, out_dir=tmp_path / "c", output="box")
    with pytest.raises(ModelError, match="no output or layer of that name"):
        resolve_source(path, out_dir=tmp_path / "d", output="nope")


def test_output_picks_a_savedmodel_signature_output(tmp_path: Path) -> None:
    import tensorflow as tf

    class TwoOutputs(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 16, 16, 3], tf.float32)])
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            mean = tf.reduce_mean(x, axis=[1, 2])
            return {"scores": tf.nn.softmax(mean), "raw": mean}

    module = TwoOutputs()
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"serving_default": module.serve})
    with pytest.raises(ModelError, match=r"2 outputs \(raw, scores\)"):
        resolve_source(tmp_path / "sm", out_dir=tmp_path / "a")
    source = resolve_source(tmp_path / "sm", out_dir=tmp_path / "b", output="scores")
    assert np.allclose(pivot_outputs(source.saved_model_dir, X).sum(1), 1.0, atol=1e-5)


def test_output_kind_is_measured() -> None:
    assert output_kind(np.array([[0.2, 0.8], [1.0, 0.0]])) == PROBABILITIES
    assert output_kind(np.array([[0.9, 0.8], [0.1, 0.3]])) == SCORES
    assert output_kind(np.array([[2.5, -1.0], [0.1, 0.3]])) == LOGITS


# --- identity ----------------------------------------------------------------------------


def test_fingerprint_is_what_the_model_computes(tmp_path: Path) -> None:
    """Keras 3 reseeds Dropout/RandomFlip generators on every load: not the model. Other
    weights or another activation with the same weights are another model."""
    import keras

    from toolkit.export.artifacts import model_fingerprint

    def build(activation: str) -> Any:
        keras.utils.set_random_seed(5)
        inputs = keras.Input((16, 16, 3))
        h = keras.layers.RandomFlip("horizontal")(inputs)
        h = keras.layers.Conv2D(4, 3, activation=activation)(h)
        h = keras.layers.Dropout(0.3)(h)
        outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(h))
        return keras.Model(inputs, outputs)

    def fingerprint(path: Path, scratch: str) -> str:
        return model_fingerprint(resolve_source(path, out_dir=tmp_path / scratch).saved_model_dir)

    build("relu").save(tmp_path / "a.keras")
    build("relu6").save(tmp_path / "b.keras")
    other = build("relu")
    other.layers[2].set_weights([w + 0.01 for w in other.layers[2].get_weights()])
    other.save(tmp_path / "c.keras")
    first, again = fingerprint(tmp_path / "a.keras", "1"), fingerprint(tmp_path / "a.keras", "2")
    assert first == again
    assert fingerprint(tmp_path / "b.keras", "3") != first
    assert fingerprint(tmp_path / "c.keras", "4") != first


def test_folder_labels_and_any_size_data_record(tmp_path: Path) -> None:
    from PIL import Image

    from toolkit.data.imagefolder import folder_labels, scan, split

    for index, (name, size) in enumerate([("0", (45, 31)), ("1", (9, 40)), ("2", (32, 32))]):
        (tmp_path / "by-index" / name).mkdir(parents=True)
        for k in range(4):
            Image.new("RGB", size, (index * 80, k * 40, 0)).save(
                tmp_path / "by-index" / name / f"{k}.jpg"
            )
    labels = ["T-shirt/top", "Trouser", "Pullover"]
    found = scan(tmp_path / "by-index", labels)
    assert found.classes == {"0": 0, "1": 1, "2": 2} and len(found) == 12
    assert folder_labels(tmp_path / "by-index", 3) is None  # indices name no class
    parts = split(found, 300)
    assert not set(parts.calibration) & set(parts.evaluation)
    assert parts.record["calibration"] == 6 and parts.record["evaluation"] == 6
    assert "fewer than the 300 calibration images asked" in parts.record["note"]
    with pytest.raises(DataError, match="subfolder '7' is neither"):
        (tmp_path / "by-index" / "7").mkdir()
        Image.new("RGB", (3, 3)).save(tmp_path / "by-index" / "7" / "x.png")
        scan(tmp_path / "by-index", labels)
    json.dumps(parts.record)  # the record goes into manifest.json as it is


def _teachable_machine_folder(root: Path) -> Path:
    """Folders named as Teachable Machine names them, its pictures as it saves them
    (JPEG under .jfif), other formats Pillow decodes, and files that are not pictures."""
    from PIL import Image

    def picture(path: Path, colour: tuple[int, int, int], kind: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (20, 14), colour).save(path, kind)

    picture(root / "0_Apple_Scab" / "a.jfif", (200, 30, 30), "JPEG")
    picture(root / "0_Apple_Scab" / "b.jfif", (190, 40, 30), "JPEG")
    picture(root / "1_Apple_healthy" / "c.webp", (30, 200, 30), "WEBP")
    picture(root / "1_Apple_healthy" / "d", (40, 190, 30), "BMP")  # no suffix at all
    picture(root / "2_Corn_healhy" / "e.tif", (30, 30, 200), "TIFF")  # TM's own typo
    Image.new("L", (20, 14), 90).save(root / "2_Corn_healhy" / "f.pgm")
    (root / "0_Apple_Scab" / "notes.txt").write_text("taken in the orchard\n")
    (root / "2_Corn_healhy" / "Thumbs.db").write_bytes(bytes(64))
    (root / "2_Corn_healhy" / ".DS_Store").write_bytes(b"Bud1")
    (root / "labels.txt").write_text("0 Apple Scab\n1 Apple healthy\n2 Corn healthy\n")
    return root


def test_teachable_machine_folders_and_every_picture_pillow_reads(tmp_path: Path) -> None:
    from PIL import Image

    from toolkit.data.imagefolder import load_pixels, scan
    from toolkit.data.inputspec import InputSpec

    root = _teachable_machine_folder(tmp_path / "tm")
    labels = read_labels(root / "labels.txt", 3)
    assert labels == ["Apple Scab", "Apple healthy", "Corn healthy"]
    found = scan(root, labels)
    assert found.classes == {"0_Apple_Scab": 0, "1_Apple_healthy": 1, "2_Corn_healhy": 2}
    assert found.files == (
        "0_Apple_Scab/a.jfif",
        "0_Apple_Scab/b.jfif",
        "1_Apple_healthy/c.webp",
        "1_Apple_healthy/d",
        "2_Corn_healhy/e.tif",
        "2_Corn_healhy/f.pgm",
    )
    assert found.labels == (0, 0, 1, 1, 2, 2)
    # labels.txt at the top is not a loose picture; each file left out is counted by why.
    assert found.left_out == {".db (not an image)": 1, ".txt (not an image)": 2, "hidden": 1}
    said = found.describe(labels)
    assert "6 pictures" in said
    assert "2_Corn_healhy -> 'Corn healthy' (2)" in said
    assert "left out 4 files: 1 .db (not an image), 2 .txt (not an image), 1 hidden" in said
    # Read for real: each picture's pixels are its own colour.
    spec = InputSpec(height=14, width=20, channels=3)
    pixels = load_pixels(found, list(found.files), spec)
    assert abs(int(pixels[0, 7, 10, 0]) - 200) <= 3 and abs(int(pixels[2, 7, 10, 1]) - 200) <= 3
    assert np.all(pixels[5] == 90)
    with Image.open(root / "0_Apple_Scab" / "a.jfif") as image:
        assert image.format == "JPEG"


@pytest.mark.parametrize(
    ("folder", "labels", "says"),
    [
        ("apple_SCAB", ["Apple Scab", "Corn"], None),
        ("1 corn", ["Apple Scab", "Corn"], None),
        ("0_Dog", ["Cat", "0 Dog"], "'Cat' (class index 0) and '0 Dog' (class name '0 Dog')"),
        ("APPLE SCAB", ["Apple Scab", "apple_scab"], "'Apple Scab' (class name 'Apple Scab') and"),
    ],
)
def test_class_folder_names_loosely_matched_or_refused_when_ambiguous(
    tmp_path: Path, folder: str, labels: list[str], says: str | None
) -> None:
    from toolkit.data.imagefolder import label_index

    if says is None:
        expected = 0 if "scab" in folder.lower() else 1
        assert label_index(folder, labels, tmp_path) == expected
    else:
        with pytest.raises(DataError, match="reads as two classes") as caught:
            label_index(folder, labels, tmp_path)
        assert says in caught.value.one_line()
