"""Multi-worker training: this worker of the TF_CONFIG cluster, supervised.

`cnnx train --strategy multiworker` runs on every machine of the cluster, each with its
own TF_CONFIG. This module checks the cluster and this worker's port before anything
starts, then runs the worker in a subprocess (toolkit/train/worker.py) and watches it:

- TensorFlow blocks, deaf to SIGTERM and Ctrl-C, while it waits for a worker that never
  starts, and its shutdown can wait for peers that are gone. The subprocess can be
  killed; this process stays responsive and turns a missing or dead peer into one line.
- The subprocess's stdout and stderr (TensorFlow's and gRPC's logs) go to a scratch
  file, or to the terminal under CNNX_DEBUG=1. Progress comes back as JSON lines.
- Only the chief writes the run folder. The other workers save into the scratch folder,
  as the Keras guide has them do, and it is deleted at the end whatever happens.

Timeouts (`TrainConfig.worker_timeout`): every worker must have joined that long after
the start, and a joined worker must report a step at least that often.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from toolkit.errors import CnnxError, PathError, RuntimeUnavailable
from toolkit.train.cluster import Cluster, answering, check_port_free, read_cluster
from toolkit.train.config import ProgressFn, TrainConfig, TrainEvent, TrainResult, default_run_dir

DEBUG_HINT = "CNNX_DEBUG=1 shows TensorFlow's log"
CHANNEL_FD_VAR = "CNNX_WORKER_FD"  # the supervisor's pipe, inherited under its own number


def train_multiworker(config: TrainConfig, progress: ProgressFn | None = None) -> TrainResult:
    """Train this worker of the TF_CONFIG cluster; the chief returns the run it wrote."""
    report: ProgressFn = progress or (lambda event: None)
    cluster = read_cluster(os.environ)
    check_port_free(cluster)
    if cluster.is_chief:
        run_dir = Path(config.out) if config.out is not None else default_run_dir(config)
        if run_dir.exists():
            raise PathError(
                f"run folder {run_dir} already exists", "remove it or choose another --out"
            )
    scratch = Path(tempfile.mkdtemp(prefix="cnnx-worker-"))
    try:
        out = run_dir if cluster.is_chief else scratch / "run"
        request = {"config": replace(config, out=out).to_dict(), "chief": cluster.is_chief}
        payload = _Supervisor(cluster, config.worker_timeout, report, scratch).run(request)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    payload["run_dir"] = Path(payload["run_dir"]) if cluster.is_chief else Path(config.out or "")
    return TrainResult(**payload)


def _error_class(code: int) -> type[CnnxError]:
    """The CnnxError subclass with this exit code (CnnxError itself for 1 and unknowns)."""
    pending: list[type[CnnxError]] = [CnnxError]
    while pending:
        cls = pending.pop()
        if cls.exit_code == code:
            return cls
        pending.extend(cls.__subclasses__())
    return CnnxError


class _Supervisor:
    def __init__(self, cluster: Cluster, timeout: float, report: ProgressFn, scratch: Path) -> None:
        self.cluster = cluster
        self.timeout = timeout
        self.report = report
        self.scratch = scratch
        self.joined = False
        self.where = "before the first epoch"

    def run(self, request: dict[str, Any]) -> dict[str, Any]:
        read_fd, write_fd = os.pipe()
        debug = bool(os.environ.get("CNNX_DEBUG"))
        log = None if debug else open(self.scratch / "worker.log", "wb")  # noqa: SIM115
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "toolkit.train.worker"],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT if log else None,
                pass_fds=(write_fd,),
                start_new_session=True,  # Ctrl-C reaches this process, which stops it
                env=self._environment(write_fd),
            )
        finally:
            os.close(write_fd)
            if log is not None:
                log.close()
        try:
            assert process.stdin is not None
            process.stdin.write(json.dumps(request).encode("utf-8"))
            process.stdin.close()
            return self._follow(process, read_fd)
        finally:
            os.close(read_fd)
            _stop(process)

    def _environment(self, fd: int) -> dict[str, str]:
        # TMPDIR: TensorFlow's own temporary files (autograph's) go with the scratch folder.
        return {**os.environ, CHANNEL_FD_VAR: str(fd), "TMPDIR": str(self.scratch)}

    def _follow(self, process: subprocess.Popen[bytes], fd: int) -> dict[str, Any]:
        selector = selectors.DefaultSelector()
        selector.register(fd, selectors.EVENT_READ)
        start = last = time.monotonic()
        buffer = b""
        while True:
            now = time.monotonic()
            deadline = (last if self.joined else start) + self.timeout
            if now >= deadline:
                _stop(process)
                raise self._timed_out()
            if not selector.select(timeout=min(deadline - now, 1.0)):
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                answer = self._message(json.loads(line))
                if answer is not None:
                    return answer
            last = time.monotonic()
        code = process.wait()
        why = f"signal {-code}" if code < 0 else f"exit code {code}"
        raise RuntimeUnavailable(
            f"the training process of this worker ended without a result ({why}) {self.where}",
            DEBUG_HINT,
        )

    def _message(self, message: dict[str, Any]) -> dict[str, Any] | None:
        if "event" in message:
            event = TrainEvent(**message["event"])
            if event.kind == "cluster":
                self.joined = True
            elif event.kind in ("epoch_start", "batch"):
                self.where = f"in epoch {event.epoch}/{event.epochs}, step {event.step}"
            elif event.kind in ("test", "saved"):
                self.where = "after training (testing and saving)"
            self.report(event)
            return None
        if "error" in message:
            error = message["error"]
            cls = _error_class(int(error["code"]))
            hint = DEBUG_HINT if cls is CnnxError else None
            raise cls(str(error["message"]), hint)
        return dict(message["result"])

    def _timed_out(self) -> RuntimeUnavailable:
        seconds = f"{self.timeout:g} s"
        if self.joined:
            return RuntimeUnavailable(
                f"this worker made no progress for {seconds} {self.where}: a worker is hung "
                "or the network stalled",
                "check every worker, then start them all again; --worker-timeout sets the limit",
            )
        others = self.cluster.others()
        missing = [self.cluster.name(job, i) for job, i, where in others if not answering(where)]
        if missing:
            return RuntimeUnavailable(
                f"the cluster did not form within {seconds}: no answer from " + ", ".join(missing),
                "start every worker of TF_CONFIG, each with its own task index, and check "
                "the addresses and firewalls; --worker-timeout sets how long to wait",
            )
        return RuntimeUnavailable(
            f"the cluster did not form within {seconds}, though every worker answers on its port",
            "give every worker the same TF_CONFIG cluster (only the task differs), or raise "
            "--worker-timeout",
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Kill the worker and everything it started (it ignores SIGTERM while it waits)."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
