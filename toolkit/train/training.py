"""Training: a seeded Keras fit that writes a complete run folder.

A run folder holds model.keras, model.weights.h5, the pivot saved_model/ (fixed serving
signature), history.json, learning_curves.png, labels.txt and run.json. It is built in
a staged folder and renamed into place, so an interrupted run leaves nothing behind.
The library reports progress through a callback and never prints.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from toolkit.core.atomic import staged_dir
from toolkit.core.locate import RUN_FILE
from toolkit.core.provenance import now_iso, versions
from toolkit.core.textsafe import label_lines
from toolkit.core.writelock import output_lock, refuse_overlap
from toolkit.data import Dataset, load_dataset
from toolkit.data.inputspec import InputSpec
from toolkit.errors import ModelError, PathError
from toolkit.train.config import (
    ProgressFn,
    TrainConfig,
    TrainEvent,
    TrainResult,
    default_run_dir,
)
from toolkit.train.models import build_model

RUN_SCHEMA = "cnnx.run/1"


def library_versions() -> dict[str, str]:
    return versions(("tensorflow", "keras", "numpy"))


def distribution_strategy(name: str) -> Any:
    import tensorflow as tf

    if name == "mirrored":
        # Without GPUs MirroredStrategy takes one CPU; use every logical CPU device instead
        # (several exist when configured with tf.config.set_logical_device_configuration).
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus or tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multiworker":
        # Reads the cluster from TF_CONFIG; without one it is a single worker.
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def pipeline(
    x: Any, y: Any, batch: int, *, shuffle_seed: int | None, drop_remainder: bool = False
) -> Any:
    """uint8 stays uint8 in memory; batches are cast to float32 on the fly.

    Every worker of a cluster builds the same pipeline with the same shuffle seed, so
    they agree on the order; tf.distribute then gives each its share of every batch.
    """
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(y), seed=shuffle_seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch, drop_remainder=drop_remainder)
    ds = ds.map(lambda a, b: (tf.cast(a, tf.float32), b))
    options = tf.data.Options()
    # The data lives in memory; sharding by data avoids the "no files" auto-shard warning.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def _resume_model(path: Path, dataset: Dataset) -> Any:
    import keras

    source = Path(path)
    if source.is_dir():
        source = source / "model.keras"
    if not source.is_file() or source.suffix != ".keras":
        raise PathError(f"--resume {path}: no run folder or .keras file there")
    from toolkit.sources.keras_files import load_keras_model
    from toolkit.sources.pivot import check_classifier

    model = load_keras_model(source, "keras")
    shape, classes = check_classifier(model, source)
    if shape != dataset.input_shape or classes != dataset.num_classes:
        raise ModelError(
            f"--resume {path} takes {shape} with {classes} classes but the data is "
            f"{dataset.input_shape} with {dataset.num_classes} classes"
        )
    assert isinstance(model, keras.Model)
    return model


class _Progress:
    """Keras callback -> TrainEvents."""

    def __init__(self, report: ProgressFn, epochs: int, steps: int) -> None:
        import keras

        outer = self

        class Callback(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
                outer.epoch = epoch + 1
                report(TrainEvent("epoch_start", epoch + 1, epochs, 0, steps))

            def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
                values = {k: float(v) for k, v in (logs or {}).items()}
                report(TrainEvent("batch", outer.epoch, epochs, batch + 1, steps, values))

            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                values = {k: float(v) for k, v in (logs or {}).items()}
                report(TrainEvent("epoch_end", epoch + 1, epochs, steps, steps, values))

        self.epoch = 0
        self.callback = Callback()


def train(config: TrainConfig, progress: ProgressFn | None = None) -> TrainResult:
    """Train per `config` and write the run folder; returns where it is and the metrics.

    `multiworker` runs this worker of the TF_CONFIG cluster in a supervised subprocess
    (toolkit/train/multiworker.py); the other strategies train in this process.
    """
    if config.strategy == "multiworker":
        from toolkit.train.multiworker import train_multiworker

        if config.out is not None:  # a new run folder must not sit inside what it reads
            refuse_overlap(Path(config.out), _reads(config))
        return train_multiworker(config, progress)

    from toolkit.core.quiet import silence_tensorflow

    silence_tensorflow()
    run_dir = Path(config.out) if config.out is not None else default_run_dir(config)
    if run_dir.exists():
        raise PathError(f"run folder {run_dir} already exists", "remove it or choose another --out")
    refuse_overlap(run_dir, _reads(config))
    with output_lock(run_dir, wait=config.wait):
        return _train(config, progress or (lambda event: None), run_dir)


def _reads(config: TrainConfig) -> dict[str, Path | str | None]:
    return {"data": config.data.path, "model to resume": config.resume}


def _train(config: TrainConfig, report: ProgressFn, run_dir: Path) -> TrainResult:
    dataset = load_training_data(config, report)
    strategy = distribution_strategy(config.strategy)
    model = compiled_model(config, dataset, strategy)

    batch = config.batch_size
    train_ds = pipeline(dataset.x_train, dataset.y_train, batch, shuffle_seed=config.seed)
    val_ds = pipeline(dataset.x_val, dataset.y_val, config.batch_size, shuffle_seed=None)
    test_ds = pipeline(dataset.x_test, dataset.y_test, config.batch_size, shuffle_seed=None)
    steps = math.ceil(len(dataset.y_train) / config.batch_size)

    started = time.perf_counter()
    fit = model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=config.epochs,
        verbose=0,
        callbacks=[_Progress(report, config.epochs, steps).callback],
    )
    seconds = time.perf_counter() - started
    test_loss, test_accuracy = (float(v) for v in model.evaluate(test_ds, verbose=0))
    report(TrainEvent("test", logs={"loss": test_loss, "accuracy": test_accuracy}))
    history = {key: [float(v) for v in values] for key, values in fit.history.items()}
    distribution = {
        "strategy": config.strategy,
        "workers": 1,
        "replicas": int(strategy.num_replicas_in_sync),
    }
    return finish_run(
        config,
        run_dir,
        model,
        dataset,
        history,
        (test_loss, test_accuracy, seconds),
        distribution,
        report,
    )


def load_training_data(config: TrainConfig, report: ProgressFn) -> Dataset:
    """The dataset, reported, refused when it leaves no validation or test images."""
    dataset = load_dataset(config.data)
    left_out = sum(dataset.details.get("left_out", {}).values())
    logs = {"train": len(dataset.y_train), "test": len(dataset.y_test), "left_out": left_out}
    report(TrainEvent("data", logs=logs))
    if len(dataset.y_val) == 0 or len(dataset.y_test) == 0:
        from toolkit.errors import DataError

        raise DataError(
            f"dataset {config.data.name!r} is too small for a validation and test split "
            f"({len(dataset.y_train)} train, {len(dataset.y_val)} val, {len(dataset.y_test)} test)"
        )
    return dataset


def compiled_model(config: TrainConfig, dataset: Dataset, strategy: Any) -> Any:
    """The seeded model (new or resumed), built and compiled in the strategy's scope.

    Create the strategy first: collective ops (multiworker) must be set up before
    TensorFlow runs anything else.
    """
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    with strategy.scope():
        if config.resume is not None:
            model = _resume_model(config.resume, dataset)
        else:
            model = build_model(
                config.arch, dataset.input_shape, dataset.num_classes, config.width, config.seed
            )
        model.compile(
            optimizer=keras.optimizers.Adam(config.learning_rate),
            loss=keras.losses.SparseCategoricalCrossentropy(),
            metrics=["accuracy"],
        )
    return model


def finish_run(
    config: TrainConfig,
    run_dir: Path,
    model: Any,
    dataset: Dataset,
    history: dict[str, list[float]],
    test: tuple[float, float, float],  # test loss, test accuracy, training seconds
    distribution: dict[str, Any],
    report: ProgressFn,
) -> TrainResult:
    """Write the run folder (model, pivot, history, curves, labels, run.json)."""
    import tensorflow as tf

    test_loss, test_accuracy, seconds = test
    metrics: dict[str, Any] = {
        "test_accuracy": test_accuracy,
        "test_loss": test_loss,
        "val_accuracy": history["val_accuracy"][-1],
        "train_accuracy": history["accuracy"][-1],
        "epochs": len(history["loss"]),
        "train_seconds": round(seconds, 2),
    }
    input_spec = InputSpec(
        height=dataset.input_shape[0],
        width=dataset.input_shape[1],
        channels=dataset.input_shape[2],
        color="GRAY" if dataset.input_shape[2] == 1 else "RGB",
        notes={"rescaling": "embedded in the model (raw 0..255 pixels in)"},
    )
    record = {
        "schema": RUN_SCHEMA,
        "created": now_iso(),
        "config": config.to_dict(),
        "data": config.data.to_dict(),
        "data_summary": dataset.summary(),
        "input": input_spec.to_dict(),
        "labels": list(dataset.class_names),
        "model": {
            "arch": config.arch,
            "width": config.width,
            "params": int(model.count_params()),
            "resumed_from": str(config.resume) if config.resume is not None else None,
        },
        "metrics": metrics,
        "versions": library_versions(),
        "devices": [d.name for d in tf.config.list_logical_devices()],
        "replicas": int(distribution["replicas"]),
        "distribution": distribution,
    }
    _write_run(run_dir, model, history, record, dataset.class_names)
    report(TrainEvent("saved", logs=metrics))
    return TrainResult(
        run_dir=run_dir,
        test_accuracy=test_accuracy,
        test_loss=test_loss,
        val_accuracy=metrics["val_accuracy"],
        train_accuracy=metrics["train_accuracy"],
        epochs=int(metrics["epochs"]),
        seconds=seconds,
        params=int(model.count_params()),
        history=history,
        workers=int(distribution["workers"]),
    )


def _write_run(
    run_dir: Path,
    model: Any,
    history: dict[str, list[float]],
    record: dict[str, Any],
    labels: list[str],
) -> None:
    from toolkit.sources.pivot import PIVOT_DIR, save_pivot

    with staged_dir(run_dir, replace=False) as tmp:
        model.save(tmp / "model.keras")
        model.save_weights(tmp / "model.weights.h5")
        save_pivot(model, tmp / PIVOT_DIR)
        (tmp / "history.json").write_text(json.dumps(history, indent=2) + "\n", encoding="utf-8")
        plot_learning_curves(history, tmp / "learning_curves.png")
        (tmp / "labels.txt").write_text(label_lines(labels), encoding="utf-8")
        # run.json last: its presence marks a complete run (locate.last_run looks for it).
        (tmp / RUN_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def plot_learning_curves(history: dict[str, list[float]], path: Path) -> None:
    """Accuracy and loss per epoch, train vs validation."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    epochs = range(1, len(history.get("loss", [])) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, title in ((axes[0], "accuracy", "Accuracy"), (axes[1], "loss", "Loss")):
        ax.plot(epochs, history.get(key, []), marker="o", label="train")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], marker="o", label="validation")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
