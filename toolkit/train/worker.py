"""One worker of a multi-worker training, run by toolkit/train/multiworker.py in its own process.

    python -m toolkit.train.worker      (TF_CONFIG in the environment)

It reads one JSON request on stdin ({"config": TrainConfig.to_dict(), "chief": bool}) and
writes JSON lines on the pipe named by $CNNX_WORKER_FD: {"event": TrainEvent}, then
{"result": ...} or {"error": {"code", "message"}}. Its stdout and stderr (TensorFlow's
and gRPC's logs) go wherever the supervisor points them, never to the user's terminal.

Keras 3.15's fit() cannot train under MultiWorkerMirroredStrategy (it reduces a whole
input batch across workers to learn its shape, then reduces scalar metrics along an axis
they do not have), so the steps are a custom loop over the public tf.distribute API:
every worker builds the same seeded pipeline, tf.distribute gives each its share of
every global batch, per-example losses are averaged over the global batch and the
optimizer all-reduces the gradients.

The process ends with os._exit: TensorFlow's shutdown waits for peers that may be gone.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

from toolkit.errors import CnnxError, RuntimeUnavailable, UsageError, describe_internal
from toolkit.train.cluster import Cluster, read_cluster
from toolkit.train.config import ProgressFn, TrainConfig, TrainEvent
from toolkit.train.multiworker import CHANNEL_FD_VAR
from toolkit.train.training import (
    compiled_model,
    distribution_strategy,
    finish_run,
    load_training_data,
    pipeline,
)

HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")  # as Keras's fit names them
_TASK = re.compile(r"/job:(chief|worker)/replica:\d+/task:(\d+)")


def main() -> None:
    channel = os.fdopen(int(os.environ[CHANNEL_FD_VAR]), "w", buffering=1, encoding="utf-8")
    _exit_with_parent()
    code = 0
    try:
        request = json.loads(sys.stdin.read())
        result = run(request, lambda event: _send(channel, "event", asdict(event)))
        _send(channel, "result", result)
    except CnnxError as error:
        code = error.exit_code
        _send(channel, "error", {"code": code, "message": error.one_line()})
    except BaseException as error:  # a bug, or an interrupt: one line up, the rest in the log
        traceback.print_exc()
        code = 130 if isinstance(error, KeyboardInterrupt) else 1
        _send(channel, "error", {"code": code, "message": describe_internal(error)})
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        channel.flush()
        os._exit(code)


def _send(channel: TextIO, kind: str, payload: Any) -> None:
    channel.write(json.dumps({kind: payload}) + "\n")


def _exit_with_parent() -> None:
    """A worker whose supervisor died (killed, closed terminal) must not train on alone."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def run(request: dict[str, Any], report: ProgressFn) -> dict[str, Any]:
    from toolkit.core.quiet import silence_tensorflow

    silence_tensorflow()
    config = TrainConfig.from_dict(request["config"])
    cluster = read_cluster(os.environ)
    dataset = load_training_data(config, report)
    steps = len(dataset.y_train) // config.batch_size
    if steps == 0:
        raise UsageError(
            f"--batch-size {config.batch_size} is larger than the {len(dataset.y_train)} "
            "training images; multi-worker training needs at least one full batch"
        )

    import tensorflow as tf

    strategy = distribution_strategy("multiworker")  # blocks until every worker has started
    _barrier(strategy)
    replicas = int(strategy.num_replicas_in_sync)
    report(
        TrainEvent(
            "cluster",
            logs={"workers": cluster.workers, "rank": cluster.rank, "replicas": replicas},
        )
    )
    try:
        model = compiled_model(config, dataset, strategy)
        started = time.perf_counter()
        history, test_loss, test_accuracy = fit_distributed(
            model, strategy, dataset, config, steps, report
        )
        seconds = time.perf_counter() - started
        distribution = {
            "strategy": "multiworker",
            "workers": cluster.workers,
            "replicas": replicas,
            "chief": cluster.tasks[0][2],
            "cluster": cluster.to_dict()["cluster"],
        }
        # Every worker saves, as the Keras guide has it: saving may run collectives.
        # Only the chief's folder is the run; the supervisor deletes the others'.
        result = finish_run(
            config,
            Path(config.out or "run"),
            model,
            dataset,
            history,
            (test_loss, test_accuracy, seconds),
            distribution,
            report,
        )
        _barrier(strategy)  # nobody leaves while another still saves
    except tf.errors.OpError as error:
        raise peer_failure(error, cluster) from None
    payload = asdict(result)
    payload["run_dir"] = str(result.run_dir)
    payload["wrote_run"] = bool(request.get("chief"))
    return payload


def _barrier(strategy: Any) -> None:
    import tensorflow as tf

    ones = strategy.run(lambda: tf.constant(1.0))
    strategy.reduce(tf.distribute.ReduceOp.SUM, ones, axis=None).numpy()


def peer_failure(error: Exception, cluster: Cluster) -> RuntimeUnavailable:
    """A collective that failed because a peer died, hung or lost the network, in words."""
    from toolkit.errors import first_line

    text = str(error)
    mine = (cluster.task_type, cluster.task_index)
    named = []
    for job, index in _TASK.findall(text):
        task = (job, int(index))
        if task != mine and job in cluster.jobs and task[1] < len(cluster.jobs[job]):
            name = cluster.name(*task)
            if name not in named:
                named.append(name)
    hint = "start every worker of TF_CONFIG again; CNNX_DEBUG=1 shows TensorFlow's log"
    if named:
        return RuntimeUnavailable(
            f"{', '.join(named)} stopped answering (it crashed, was stopped or lost the network)",
            hint,
        )
    return RuntimeUnavailable(f"the cluster failed: {first_line(error)}", hint)


def fit_distributed(
    model: Any, strategy: Any, dataset: Any, config: TrainConfig, steps: int, report: ProgressFn
) -> tuple[dict[str, list[float]], float, float]:
    """Train `config.epochs` epochs of `steps` global batches; (history, test loss, test acc).

    Losses are summed per replica and divided by the global batch size, so the summed
    gradients the optimizer all-reduces are those of the mean loss over the global batch:
    the same step as one worker taking the whole batch.
    """
    import keras
    import tensorflow as tf

    batch = config.batch_size
    distribute = strategy.experimental_distribute_dataset
    train_ds = distribute(
        pipeline(dataset.x_train, dataset.y_train, batch, shuffle_seed=config.seed)
    )
    val_ds = distribute(pipeline(dataset.x_val, dataset.y_val, batch, shuffle_seed=None))
    test_ds = distribute(pipeline(dataset.x_test, dataset.y_test, batch, shuffle_seed=None))
    loss_fn = keras.losses.SparseCategoricalCrossentropy(reduction=None)
    optimizer = model.optimizer
    with strategy.scope():
        optimizer.build(model.trainable_variables)

    def sums(y: Any, probs: Any, losses: Any) -> tuple[Any, Any, Any]:
        labels = tf.cast(y, tf.int64)
        correct = tf.equal(tf.argmax(probs, axis=-1, output_type=tf.int64), labels)
        count = tf.cast(tf.shape(labels)[0], tf.float32)
        return tf.reduce_sum(losses), tf.reduce_sum(tf.cast(correct, tf.float32)), count

    def train_replica(x: Any, y: Any) -> tuple[Any, Any, Any]:
        # The last batch of an epoch is short: divide by its real size, as fit() does.
        context = tf.distribute.get_replica_context()
        size = context.all_reduce(tf.distribute.ReduceOp.SUM, tf.shape(y)[0])
        with tf.GradientTape() as tape:
            probs = model(x, training=True)
            losses = loss_fn(y, probs)
            loss = tf.nn.compute_average_loss(losses, global_batch_size=size)
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        return sums(y, probs, losses)

    def eval_replica(x: Any, y: Any) -> tuple[Any, Any, Any]:
        probs = model(x, training=False)
        return sums(y, probs, loss_fn(y, probs))

    def summed(values: tuple[Any, ...]) -> list[Any]:
        return [strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for v in values]

    @tf.function
    def train_step(inputs: Any) -> list[Any]:
        return summed(strategy.run(train_replica, args=inputs))

    @tf.function(reduce_retracing=True)
    def eval_step(inputs: Any) -> list[Any]:
        return summed(strategy.run(eval_replica, args=inputs))

    def evaluate(data: Any) -> tuple[float, float]:
        loss = correct = count = 0.0
        for inputs in data:
            values = [float(v) for v in eval_step(inputs)]
            loss, correct, count = loss + values[0], correct + values[1], count + values[2]
        return loss / max(count, 1.0), correct / max(count, 1.0)

    history: dict[str, list[float]] = {key: [] for key in HISTORY_KEYS}
    epochs = config.epochs
    for epoch in range(1, epochs + 1):
        report(TrainEvent("epoch_start", epoch, epochs, 0, steps))
        loss = correct = count = 0.0
        for step, inputs in enumerate(train_ds, start=1):
            values = [float(v) for v in train_step(inputs)]
            loss, correct, count = loss + values[0], correct + values[1], count + values[2]
            logs = {"loss": loss / count, "accuracy": correct / count}
            report(TrainEvent("batch", epoch, epochs, step, steps, logs))
        val_loss, val_accuracy = evaluate(val_ds)
        logs = {
            "loss": loss / max(count, 1.0),
            "accuracy": correct / max(count, 1.0),
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
        }
        for key, value in logs.items():
            history[key].append(value)
        report(TrainEvent("epoch_end", epoch, epochs, steps, steps, logs))
    test_loss, test_accuracy = evaluate(test_ds)
    report(TrainEvent("test", logs={"loss": test_loss, "accuracy": test_accuracy}))
    return history, test_loss, test_accuracy


if __name__ == "__main__":
    main()
