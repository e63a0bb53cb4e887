"""Heads of several sigmoid units: independent scores whose rows do not sum to one. Export
says so and records it; verify compares them score by score and takes the highest as
top-1. On generated pictures (no images on record) two near-equal scores that swap within
the artifact's own error are near-ties, not drift; the same pictures given as the user's
images count every flip.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.cli import cnnx
from tests.factories import NAMES, shapes
from toolkit.data.generated import generated_pixels
from toolkit.manifest import load_manifest
from toolkit.measure.parity import MAX_TIE_ERROR, check, compare
from toolkit.measure.tolerances import Tolerance

pytestmark = pytest.mark.slow


def two_sigmoids(path: Path) -> Path:
    """An oddly trained head: two sigmoid units with nearly the same weights, so on
    pictures that belong to neither their scores are near-equal; a wide hidden layer, so
    dynamic-range int8 quantizes the head's weights and moves each score a little."""
    import keras

    keras.utils.set_random_seed(3)
    inputs = keras.Input((32, 32, 3))
    hidden = keras.layers.Rescaling(1 / 255)(inputs)
    hidden = keras.layers.Conv2D(8, 3, activation="relu")(hidden)
    hidden = keras.layers.Dense(1024, activation="relu")(keras.layers.Flatten()(hidden))
    head = keras.layers.Dense(2, activation="sigmoid")
    model = keras.Model(inputs, head(hidden))
    weights, bias = head.get_weights()
    weights[:, 1] = weights[:, 0] + np.random.default_rng(3).normal(0, 0.005, len(weights))
    head.set_weights([weights, bias * 0])
    model.save(path)
    return path


def test_near_ties_on_generated_pictures_are_not_drift(tmp_path: Path) -> None:
    out = tmp_path / "artifacts"
    model = two_sigmoids(tmp_path / "two.keras")
    code, stdout, err = cnnx(
        "export", "--model", model, "--to", "tflite", "--quantize", "dynamic", "--out", out
    )
    assert code == 0, err
    assert "the head gives independent scores (sigmoid units" in " ".join(stdout.split())
    assert load_manifest(out).source["output"] == {"kind": "scores", "head": "sigmoid"}

    code, stdout, err = cnnx("verify", out, "-r", "litert", "-a", "tflite_dynamic", "--json")
    assert code == 0, err
    row = json.loads(stdout)["rows"][0]
    metrics, agreement = row["metrics"], row["checks"][0]
    flips = round((1 - metrics["agreement"]) * metrics["images"])
    # Flips that plain agreement would call drift (below dynamic's 99%), every one a tie.
    assert metrics["agreement"] < 0.99 and flips >= 1
    assert metrics["near_ties"] == flips and metrics["tie_error"] <= MAX_TIE_ERROR
    assert row["status"] == "ok" and agreement["passed"]
    assert agreement["value"] == 1.0
    assert f"{flips} of {flips} flip(s) on generated pictures are near-ties" in agreement["note"]
    code, stdout, _ = cnnx("verify", out, "-r", "litert", "-a", "tflite_dynamic")
    assert code == 0 and "near-ties, not counted" in " ".join(stdout.split())

    # The very same pictures given as the user's own: every flip counts.
    mine = tmp_path / "mine"
    mine.mkdir()
    for i, picture in enumerate(generated_pixels(32, 32, 3)):
        Image.fromarray(picture).save(mine / f"{i:02d}.png")
    code, stdout, _ = cnnx(
        "verify", out, "-r", "litert", "-a", "tflite_dynamic", "--data", mine, "--json"
    )
    assert code != 0
    row = json.loads(stdout)["rows"][0]
    assert row["status"] == "drift" and row["metrics"]["agreement"] == metrics["agreement"]
    assert row["metrics"]["near_ties"] is None


def test_a_flip_far_beyond_the_artifacts_error_stays_a_flip() -> None:
    reference = np.tile([[0.52, 0.48]], (40, 1))
    outputs = reference + 0.001  # the artifact's error on every picture: 1e-3
    outputs[0] = [0.47, 0.53]  # margin 0.04 lost on one picture: not rounding
    outputs[1] = [0.4995, 0.5005]  # margin 0.04 too: the same, a real flip
    outputs[2:4] = reference[2:4] + np.array([-0.001, 0.001])  # two kept, moved by the error
    tie = reference.copy()
    tie[5] = [0.5005, 0.4995]  # a margin of 1e-3: within twice the error
    outputs[5] = tie[5] + np.array([-0.001, 0.001])
    metrics = compare(outputs, tie, None, tie_scale=1.0)
    assert metrics.agreement == 37 / 40 and metrics.near_ties == 1
    [agreement] = check(metrics, Tolerance(min_agreement=0.99))
    assert not agreement.passed and agreement.value == 38 / 40
    # An artifact whose error is large for the head excuses nothing.
    noisy = compare(tie + 0.2 * (np.arange(80).reshape(40, 2) % 2), tie, None, tie_scale=1.0)
    assert noisy.near_ties == 0 and noisy.tie_error > MAX_TIE_ERROR
    # Logits: the same error in a head spanning 20 is a hundredth of it.
    logits = compare(tie * 20 + 0.002, tie * 20, None, tie_scale=20.0)
    assert logits.tie_error == pytest.approx(0.002 / 20)
    # Real images: no near-ties at all.
    assert compare(outputs, tie, None).near_ties is None


def test_several_sigmoid_units_take_the_highest_as_top1(tmp_path: Path) -> None:
    """A multi-label style head (one sigmoid a class, trained with binary cross-entropy)
    whose labels say one class per image: top-1 and accuracy by the highest score."""
    import keras

    keras.utils.set_random_seed(0)
    x, y = shapes(400, seed=5)
    inputs = keras.Input((32, 32, 3))
    hidden = keras.layers.Rescaling(1 / 255)(inputs)
    hidden = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(hidden)
    hidden = keras.layers.GlobalAveragePooling2D()(hidden)
    model = keras.Model(inputs, keras.layers.Dense(len(NAMES), activation="sigmoid")(hidden))
    model.compile(keras.optimizers.Adam(1e-2), "binary_crossentropy")
    model.fit(x.astype(np.float32), np.eye(len(NAMES))[y], epochs=20, verbose=0)
    model.save(tmp_path / "multi.keras")
    pictures, labels = shapes(80, seed=41)
    for i, (picture, label) in enumerate(zip(pictures, labels, strict=True)):
        folder = tmp_path / "pictures" / NAMES[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(picture).save(folder / f"{i:03d}.png")
    (tmp_path / "labels.txt").write_text("\n".join(NAMES))
    out = tmp_path / "artifacts"
    code, _, err = cnnx(
        "export", "--model", tmp_path / "multi.keras", "--to", "tflite", "--quantize", "int8",
        "--data", tmp_path / "pictures", "--labels", tmp_path / "labels.txt", "--out", out,
    )  # fmt: skip
    assert code == 0, err
    assert load_manifest(out).source["output"]["head"] == "sigmoid"
    code, stdout, err = cnnx("verify", out, "-r", "tf,litert", "--json")
    assert code == 0, err
    rows = {r["artifact"]: r for r in json.loads(stdout)["rows"]}
    assert rows["savedmodel"]["metrics"]["accuracy"] >= 0.85
    assert rows["tflite_int8"]["metrics"]["agreement"] >= 0.98
    # Independent scores indeed: rows far from summing to one.
    scores = model.predict(pictures.astype(np.float32), verbose=0)
    assert np.abs(scores.sum(axis=1) - 1).max() > 0.1
