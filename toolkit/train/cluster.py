"""The training cluster named by TF_CONFIG, read and checked before TensorFlow starts.

tf.distribute.MultiWorkerMirroredStrategy takes its cluster from the TF_CONFIG
environment variable, one per worker process:

    {"cluster": {"worker": ["10.0.0.1:2222", "10.0.0.2:2222"]},
     "task": {"type": "worker", "index": 0}}

A "chief" job may stand beside "worker"; without one, worker 0 is the chief. Only the
chief writes the run folder. TensorFlow itself reports a bad TF_CONFIG late or not at all
(a worker waits forever for a peer that was never listed), so cnnx checks it first.
"""

from __future__ import annotations

import errno
import json
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from toolkit.errors import ResourceError, UsageError

ENV_VAR = "TF_CONFIG"
JOBS = ("chief", "worker")  # the jobs MultiWorkerMirroredStrategy trains on, in rank order
DOCS = "see docs/training-and-sources.md, 'Training on several machines'"


@dataclass(frozen=True)
class Cluster:
    jobs: dict[str, tuple[str, ...]]  # job name -> "host:port" of each task
    task_type: str
    task_index: int

    @property
    def address(self) -> str:
        """This worker's own host:port."""
        return self.jobs[self.task_type][self.task_index]

    @property
    def tasks(self) -> list[tuple[str, int, str]]:
        """(job, index, address) of every task, chief first."""
        return [(job, i, a) for job in JOBS for i, a in enumerate(self.jobs.get(job, ()))]

    @property
    def workers(self) -> int:
        return len(self.tasks)

    @property
    def is_chief(self) -> bool:
        job, index, _ = self.tasks[0]
        return (self.task_type, self.task_index) == (job, index)

    @property
    def rank(self) -> int:
        """This task's place in `tasks` (0 is the chief)."""
        return [(job, i) for job, i, _ in self.tasks].index((self.task_type, self.task_index))

    @property
    def port(self) -> int:
        return _port(self.address)

    def name(self, job: str, index: int) -> str:
        """'worker 1 (10.0.0.2:2222)': how messages name a task."""
        return f"{job} {index} ({self.jobs[job][index]})"

    def others(self) -> list[tuple[str, int, str]]:
        return [t for t in self.tasks if (t[0], t[1]) != (self.task_type, self.task_index)]

    def to_dict(self) -> dict[str, object]:
        return {
            "cluster": {job: list(addresses) for job, addresses in self.jobs.items()},
            "task": {"type": self.task_type, "index": self.task_index},
        }


def read_cluster(environ: Mapping[str, str]) -> Cluster:
    """The cluster in environ["TF_CONFIG"]; UsageError (exit 2) saying what is wrong."""
    text = environ.get(ENV_VAR, "").strip()
    if not text:
        raise UsageError(
            "--strategy multiworker needs TF_CONFIG (the cluster and this worker's place in it)",
            DOCS,
        )
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(f"TF_CONFIG is not JSON: {error}", DOCS) from None
    if not isinstance(data, dict):
        raise UsageError(f"TF_CONFIG must be a JSON object, got {type(data).__name__}", DOCS)
    cluster, task = data.get("cluster"), data.get("task")
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise UsageError('TF_CONFIG needs "cluster" and "task" objects', DOCS)
    unknown = sorted(set(cluster) - set(JOBS))
    if unknown:
        raise UsageError(
            f"TF_CONFIG has jobs {unknown}; multi-worker training uses only 'chief' and 'worker'"
            " (parameter servers and evaluators are not supported)",
            DOCS,
        )
    jobs: dict[str, tuple[str, ...]] = {}
    for job, addresses in cluster.items():
        if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
            raise UsageError(f'TF_CONFIG cluster "{job}" must be a list of "host:port" strings')
        for address in addresses:
            _port(address)
        jobs[job] = tuple(addresses)
    if len(jobs.get("chief", ())) > 1:
        raise UsageError(f"TF_CONFIG lists {len(jobs['chief'])} chiefs; there can be one")
    everything = [a for addresses in jobs.values() for a in addresses]
    if not everything:
        raise UsageError("TF_CONFIG lists no worker", DOCS)
    repeated = sorted({a for a in everything if everything.count(a) > 1})
    if repeated:
        raise UsageError(f"TF_CONFIG lists {', '.join(repeated)} more than once", DOCS)
    task_type, index = task.get("type"), task.get("index")
    if task_type not in jobs:
        raise UsageError(f"TF_CONFIG task type {task_type!r} is not a job of the cluster", DOCS)
    if not isinstance(index, int) or isinstance(index, bool):
        raise UsageError(f"TF_CONFIG task index must be an integer, got {index!r}", DOCS)
    if not 0 <= index < len(jobs[task_type]):
        raise UsageError(
            f"TF_CONFIG task index {index} is out of range: "
            f"the {task_type} job has {len(jobs[task_type])} task(s)",
            DOCS,
        )
    return Cluster(jobs=jobs, task_type=task_type, task_index=index)


def _port(address: str) -> int:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:  # 0: any free port
        raise UsageError(f"TF_CONFIG address {address!r} is not host:port", DOCS)
    return int(port)


def check_port_free(cluster: Cluster) -> None:
    """ResourceError (exit 11) if this worker's port is taken: TensorFlow's server would
    fail to bind it deep inside start-up. TensorFlow listens on every interface."""
    port = cluster.port
    if port == 0:
        return
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Connections of a previous run left in TIME_WAIT must not count as "in use".
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind(("", port))
    except OSError as error:
        if error.errno in (errno.EADDRINUSE, errno.EACCES):
            why = "is already in use" if error.errno == errno.EADDRINUSE else "is not allowed"
            raise ResourceError(
                f"port {port} {why}: this worker ({cluster.task_type} {cluster.task_index} "
                f"of TF_CONFIG) cannot listen on {cluster.address}",
                "stop what holds it, or give this worker another port in every TF_CONFIG",
            ) from None
        raise
    finally:
        probe.close()


def answering(address: str, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections at host:port."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False
