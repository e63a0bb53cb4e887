"""Training writes a complete run folder whose pivot SavedModel matches the Keras model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from toolkit.data import DataSpec, load_dataset
from toolkit.sources import INPUT_KEY, OUTPUT_KEY, SIGNATURE, resolve_source

pytestmark = pytest.mark.slow

RUN_FILES = (
    "model.keras",
    "model.weights.h5",
    "saved_model/saved_model.pb",
    "history.json",
    "learning_curves.png",
    "labels.txt",
    "run.json",
)


def test_tiny_run_has_every_file_and_learned(tiny_run: Path) -> None:
    for name in RUN_FILES:
        assert (tiny_run / name).is_file(), name
    record = json.loads((tiny_run / "run.json").read_text())
    assert record["schema"] == "cnnx.run/1"
    assert record["labels"] == (tiny_run / "labels.txt").read_text().split()
    assert record["input"]["shape"] == [32, 32, 3]
    assert record["input"]["scale"] == 1.0 and record["input"]["offset"] == 0.0
    assert record["metrics"]["test_accuracy"] > 0.25  # 10 classes: chance is 0.10
    assert record["versions"]["tensorflow"].startswith("2.")
    history = json.loads((tiny_run / "history.json").read_text())
    assert set(history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(history["loss"]) == record["metrics"]["epochs"]
    assert history["loss"][-1] < history["loss"][0]


def test_pivot_signature_and_outputs_match_keras(tiny_run: Path) -> None:
    import keras
    import tensorflow as tf

    loaded = tf.saved_model.load(str(tiny_run / "saved_model"))
    serve = loaded.signatures[SIGNATURE]
    _, inputs = serve.structured_input_signature
    assert list(inputs) == [INPUT_KEY]
    assert inputs[INPUT_KEY].dtype == tf.float32
    assert inputs[INPUT_KEY].shape.as_list() == [None, 32, 32, 3]
    assert list(serve.structured_outputs) == [OUTPUT_KEY]

    data = load_dataset(DataSpec.from_dict(json.loads((tiny_run / "run.json").read_text())["data"]))
    x = data.x_test[:16].astype(np.float32)
    pivot = serve(**{INPUT_KEY: tf.constant(x)})[OUTPUT_KEY].numpy()
    model = keras.saving.load_model(tiny_run / "model.keras")
    np.testing.assert_allclose(pivot, model.predict(x, verbose=0), atol=1e-5)
    np.testing.assert_allclose(pivot.sum(axis=1), 1.0, atol=1e-5)


def test_resolve_source_of_a_run_reuses_its_pivot(tiny_run: Path, tmp_path: Path) -> None:
    source = resolve_source(tiny_run, out_dir=tmp_path)
    assert source.saved_model_dir == tiny_run / "saved_model"
    assert not (tmp_path / "saved_model").exists()  # nothing copied
    assert source.input_spec.shape == (32, 32, 3) and source.input_spec.is_identity
    assert source.labels[:3] == ["circle", "ring", "square"]
    assert source.eval_data is not None and source.eval_data["kind"] == "shapes"
    assert source.origin["format"] == "run" and len(source.origin["sha256"]) == 64


STRATEGY_SCRIPT = """
import json, os, sys
from pathlib import Path
from toolkit.core.quiet import silence_tensorflow
silence_tensorflow()
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from toolkit.data import DataSpec
from toolkit.train.training import TrainConfig, train
strategy, out = sys.argv[1], Path(sys.argv[2])
result = train(TrainConfig(data=DataSpec(size=300), epochs=1, width=0.25, batch_size=32,
                           strategy=strategy, out=out))
print(json.dumps({"accuracy": result.test_accuracy}))
"""


def test_mirrored_training_on_two_logical_cpus(tmp_path: Path) -> None:
    """In a subprocess: logical devices are process-wide and must not leak into other tests.
    (Multi-worker training has its own tests, with real workers: test_multiworker.py.)"""
    import os
    import subprocess
    import sys

    strategy = "mirrored"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    done = subprocess.run(
        [sys.executable, "-c", STRATEGY_SCRIPT, strategy, str(tmp_path / "run")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["config"]["strategy"] == strategy
    assert len([d for d in record["devices"] if "CPU" in d]) == 2
    assert record["replicas"] == 2  # one replica per logical CPU
    assert record["distribution"] == {"strategy": "mirrored", "workers": 1, "replicas": 2}
    assert (tmp_path / "run" / "saved_model" / "saved_model.pb").is_file()


def test_train_rejects_an_existing_out_and_bad_config(tiny_run: Path, tmp_path: Path) -> None:
    from toolkit.errors import PathError, UsageError
    from toolkit.train.training import TrainConfig, train

    with pytest.raises(PathError, match="already exists"):
        train(TrainConfig(data=DataSpec(size=100), out=tiny_run))
    with pytest.raises(UsageError):
        TrainConfig(epochs=0)
    with pytest.raises(UsageError):
        TrainConfig(strategy="tpu")
