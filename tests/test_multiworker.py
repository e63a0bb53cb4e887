"""Multi-worker training with real workers: `cnnx train --strategy multiworker` in two
processes on 127.0.0.1, each with its own TF_CONFIG and a free port, as on two machines.

They must train one model together (the chief alone writes the run, the other worker's
scratch folder is gone), land in the accuracy band of single-worker training on the same
data, and keep TensorFlow's and gRPC's logs off the terminal. A worker that dies, one
that never starts and a port already taken each end in one line and an exit code, not a
hang.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.cli import spawn
from toolkit.errors import RuntimeUnavailable, UsageError
from toolkit.train.cluster import Cluster, read_cluster

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
COLOURS = ("red", "green", "blue")
# Three colour classes learn to ~100% in a few epochs: both runs land in the band
# whatever the order of their batches, so the comparison is not a coin toss.
TRAIN_ARGS = ["--epochs", "6", "--width", "0.25", "--batch-size", "16", "--learning-rate", "0.005"]


@pytest.fixture(scope="module")
def colour_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 32x32 images: a bright square of the class's colour on dark noise."""
    root = tmp_path_factory.mktemp("colours") / "colours"
    rng = np.random.default_rng(0)
    for channel, name in enumerate(COLOURS):
        (root / name).mkdir(parents=True)
        for i in range(100):
            image = rng.integers(0, 120, size=(32, 32, 3), dtype=np.uint8)
            top, left = rng.integers(0, 20, size=2)
            size = int(rng.integers(8, 13))
            patch = (size, size)
            image[top : top + size, left : left + size, channel] = rng.integers(170, 256, patch)
            Image.fromarray(image).save(root / name / f"{i:03d}.png")
    return root


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(ports: list[int], index: int) -> str:
    workers = [f"127.0.0.1:{port}" for port in ports]
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


def start_worker(
    ports: list[int], index: int, args: list[str], scratch: Path
) -> subprocess.Popen[str]:
    scratch.mkdir(parents=True, exist_ok=True)
    env = {
        "PYTHONPATH": str(ROOT),
        "TF_CONFIG": tf_config(ports, index),
        "TMPDIR": str(scratch),  # where a non-chief keeps its throwaway copy of the run
        "COLUMNS": "160",
        "PYTHONUNBUFFERED": "1",  # lines reach the test as they are printed
        "CNNX_DEBUG": None,
    }
    return spawn("train", "--strategy", "multiworker", *args, env=env, start_new_session=True)


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:  # a failed assertion must not leave workers behind
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def finish(process: subprocess.Popen[str], timeout: float) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def test_two_workers_train_one_run_in_the_band_of_one_worker(
    colour_folder: Path, tmp_path: Path, workers: list[subprocess.Popen[str]]
) -> None:
    from toolkit.data import parse_data_arg
    from toolkit.train.training import TrainConfig, train

    ports = free_ports(2)
    outs = [tmp_path / "chief-run", tmp_path / "other-run"]
    for index in (0, 1):
        args = ["--data", str(colour_folder), *TRAIN_ARGS, "--out", str(outs[index])]
        workers.append(start_worker(ports, index, args, tmp_path / f"scratch{index}"))
    # The single-worker reference trains here while the workers start and wait on each other.
    single = train(
        TrainConfig(
            data=parse_data_arg(str(colour_folder), image_size=32),
            epochs=6,
            width=0.25,
            batch_size=16,
            learning_rate=0.005,
            out=tmp_path / "single",
        )
    )
    # The time limit only catches a hang: benchmarks/train_bench.py times the workers.
    results = [finish(process, timeout=300) for process in workers]

    for code, out, err in results:
        assert code == 0, err[-3000:]
        assert err == "", err  # no TensorFlow or gRPC log on the terminal
        assert "cluster: 2 workers joined" in out
    assert f"run saved to {outs[0]}" in results[0][1]
    assert "the chief of the 2 workers wrote the run folder" in results[1][1]
    assert not outs[1].exists()  # only the chief writes
    assert list((tmp_path / "scratch1").iterdir()) == []  # the other's copy is cleaned up
    assert list((tmp_path / "scratch0").iterdir()) == []

    record = json.loads((outs[0] / "run.json").read_text())
    assert record["config"]["strategy"] == "multiworker"
    distribution = record["distribution"]
    assert distribution["strategy"] == "multiworker"
    assert distribution["workers"] == 2 and distribution["replicas"] == 2
    assert distribution["cluster"] == {"worker": [f"127.0.0.1:{p}" for p in ports]}
    assert (outs[0] / "saved_model" / "saved_model.pb").is_file()
    history = json.loads((outs[0] / "history.json").read_text())
    assert len(history["loss"]) == 6 and history["loss"][-1] < history["loss"][0] / 2

    accuracy = record["metrics"]["test_accuracy"]
    assert single.test_accuracy >= 0.9, single.history
    assert accuracy >= 0.9, history
    assert abs(accuracy - single.test_accuracy) <= 0.1
    # Both workers computed the same all-reduced metrics.
    lines = [[s for s in out.splitlines() if "test accuracy" in s] for _, out, _ in results]
    assert lines[0] == lines[1] != []


def test_a_worker_that_dies_is_named_and_the_other_stops(
    colour_folder: Path, tmp_path: Path, workers: list[subprocess.Popen[str]]
) -> None:
    ports = free_ports(2)
    out = tmp_path / "run"
    long = ["--data", str(colour_folder), "--epochs", "200", "--width", "0.25", "--out", str(out)]
    for index in (0, 1):
        workers.append(start_worker(ports, index, long, tmp_path / f"scratch{index}"))
    # Training has started once the cluster has formed; then worker 1 is killed outright.
    assert workers[0].stdout is not None
    joined = ""
    deadline = time.monotonic() + 180
    while "cluster:" not in joined and time.monotonic() < deadline:
        joined += workers[0].stdout.readline()
        assert workers[0].poll() is None or "cluster:" in joined, workers[0].stderr
    assert "cluster: 2 workers joined" in joined
    time.sleep(2)
    os.killpg(workers[1].pid, signal.SIGKILL)
    code, _, err = finish(workers[0], timeout=120)  # a hang fails here
    assert code == RuntimeUnavailable.exit_code, err
    assert err.startswith("cnnx: error: worker 1 (127.0.0.1:")
    assert f"worker 1 (127.0.0.1:{ports[1]}) stopped answering" in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()  # nothing half-written


def test_a_worker_that_never_starts_times_out_by_name(
    colour_folder: Path, tmp_path: Path, workers: list[subprocess.Popen[str]]
) -> None:
    ports = free_ports(2)
    # Worker 1 never answers, so any limit ends the wait; 2 s passes before worker 0 has
    # even imported TensorFlow on a loaded machine, which the message does not depend on.
    args = ["--data", str(colour_folder), "--out", str(tmp_path / "run"), "--worker-timeout", "2"]
    workers.append(start_worker(ports, 0, args, tmp_path / "scratch"))
    code, _, err = finish(workers[0], timeout=120)
    assert code == RuntimeUnavailable.exit_code, err
    assert err.strip() == (
        f"cnnx: error: the cluster did not form within 2 s: no answer from worker 1 "
        f"(127.0.0.1:{ports[1]}) (start every worker of TF_CONFIG, each with its own task "
        "index, and check the addresses and firewalls; --worker-timeout sets how long to wait)"
    )
    assert not (tmp_path / "run").exists()
    assert list((tmp_path / "scratch").iterdir()) == []


def test_a_port_in_use_is_one_line_before_tensorflow_starts(
    tmp_path: Path, workers: list[subprocess.Popen[str]]
) -> None:
    ports = free_ports(2)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", ports[0]))
        holder.listen()
        workers.append(start_worker(ports, 0, ["--out", str(tmp_path / "run")], tmp_path / "s"))
        code, out, err = finish(workers[0], timeout=60)
    assert code == 11, err
    assert err.strip() == (
        f"cnnx: error: port {ports[0]} is already in use: this worker (worker 0 of TF_CONFIG) "
        f"cannot listen on 127.0.0.1:{ports[0]} (stop what holds it, or give this worker "
        "another port in every TF_CONFIG)"
    )
    assert out.strip() == ""  # refused before anything started: not even the data loaded


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "--strategy multiworker needs TF_CONFIG"),
        ("{nope", "TF_CONFIG is not JSON"),
        ('{"cluster": {"worker": ["a:1"]}}', 'TF_CONFIG needs "cluster" and "task"'),
        ('{"cluster": {"ps": ["a:1"]}, "task": {}}', "parameter servers and evaluators"),
        ('{"cluster": {"worker": ["a"]}, "task": {}}', "'a' is not host:port"),
        ('{"cluster": {"worker": ["a:1", "a:1"]}, "task": {}}', "a:1 more than once"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief"}}', "'chief' is not a job"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}', "range"),
    ],
)
def test_a_bad_tf_config_says_what_is_wrong(value: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        read_cluster({"TF_CONFIG": value})


def test_cluster_roles_and_peer_failure_messages() -> None:
    from toolkit.train.worker import peer_failure

    cluster = read_cluster(
        {
            "TF_CONFIG": json.dumps(
                {
                    "cluster": {"chief": ["c:1"], "worker": ["w:1", "w:2"]},
                    "task": {"type": "worker", "index": 1},
                }
            )
        }
    )
    assert isinstance(cluster, Cluster)
    assert cluster.workers == 3 and cluster.rank == 2 and not cluster.is_chief
    assert cluster.address == "w:2" and cluster.tasks[0] == ("chief", 0, "c:1")
    error = Exception(
        "Collective ops is aborted by: The following tasks are unhealthy (stopped sending "
        "heartbeats):\n/job:chief/replica:0/task:0\n/job:worker/replica:0/task:1\nThe tasks "
        "have crashed"
    )
    assert peer_failure(error, cluster).message == (
        "chief 0 (c:1) stopped answering (it crashed, was stopped or lost the network)"
    )
    assert peer_failure(Exception("Socket closed"), cluster).message == (
        "the cluster failed: Socket closed"
    )
