"""The Raspberry Pi bundle's classify.py, run on a device over SSH.

    result = run_on_device(target, bundle_dir, eval_dir, models=("int8", "float32"),
                           threads=(1,), runs=100)

One call: probe the device (its machine, CPU, Python, LiteRT, numpy and Pillow, and the
sha256 of what an earlier run left there), copy the bundle and the evaluation images
unless the same files are there already, check every copied file's sha256 before it is
put in place, then run `classify.py test_images EVAL --model M --threads T --bench N
--json` with the device's own Python once per model and thread count.

Nothing here raises for the device's sake: an unreachable host, a refused key, a missing
Python or LiteRT, a timeout or a failing classify.py become a reason on the result
(`RemoteResult.reason` when nothing could run, `RemoteRun.reason` for one run), and the
caller turns them into failed rows.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.errors import shorten
from toolkit.remote.device_script import SKIPPED as SKIPPED_PARTS  # the device skips the same
from toolkit.remote.ssh import RemoteError, SshClient, SshTarget, remote_path

SCRIPT = Path(__file__).resolve().parent / "device_script.py"
COMMAND_TIMEOUT = 60.0  # a probe or an install: Python start-up on a slow board
COPY_TIMEOUT = 300.0
RUN_TIMEOUT = 600.0  # one classify.py run: LiteRT's import and N timed runs on a Pi Zero


@dataclass(frozen=True)
class DeviceInfo:
    """What the device said about itself (the probe's answer)."""

    machine: str
    python: str
    executable: str
    os: str
    cpu: str
    cores: int | None
    litert: str | None  # ai-edge-litert's version, else tflite-runtime's, else None
    numpy: str | None
    pillow: str | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class RemoteRun:
    """classify.py with one model and one thread count on the device."""

    model: str  # the bundle's model name: int8 | float32
    threads: int
    status: str  # ok | failed
    reason: str = ""
    scores: np.ndarray | None = None  # float32 [N, K] on the evaluation images, in order
    test_accuracy: float | None = None  # on the bundle's test images
    latency: dict[str, Any] = field(default_factory=dict)  # classify.py's "bench" record
    load_ms: float | None = None  # classify.py reading, checking and loading the model
    seconds: float = 0.0  # the whole ssh call, start-up included


@dataclass(frozen=True)
class RemoteResult:
    target: SshTarget
    device: DeviceInfo | None = None
    runs: tuple[RemoteRun, ...] = ()
    reason: str = ""  # set when nothing could run (unreachable, no LiteRT, bad copy)
    copied: tuple[str, ...] = ()  # folders sent this time (the rest were there already)
    remote_dirs: dict[str, str] = field(default_factory=dict)


def folder_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file under folder, by its relative path (what the device compares)."""
    found = {}
    for path in sorted(Path(folder).rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and not SKIPPED_PARTS & set(relative.parts):
            found[relative.as_posix()] = _sha256(path)
    return found


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _content_name(prefix: str, hashes: dict[str, str]) -> str:
    """A folder name that changes whenever any file does: rpi-1a2b3c4d5e6f."""
    listing = json.dumps(sorted(hashes.items())).encode("utf-8")
    return f"{prefix}-{hashlib.sha256(listing).hexdigest()[:12]}"


def run_on_device(
    target: SshTarget,
    bundle: Path,
    eval_dir: Path,
    *,
    models: Sequence[str],
    threads: Sequence[int],
    runs: int,
    timeout: float | None = None,
    client: SshClient | None = None,
) -> RemoteResult:
    """Copy (when needed) and run the bundle on the device; never raises for the device."""
    client = client or SshClient.for_target(target)
    session = _Session(client, timeout)
    local = {"bundle": Path(bundle), "eval": Path(eval_dir)}
    hashes = {key: folder_hashes(folder) for key, folder in local.items()}
    names = {
        "bundle": _content_name("rpi", hashes["bundle"]),
        "eval": _content_name("evalset", hashes["eval"]),
    }
    remote = {key: f"{target.dir}/{name}" for key, name in names.items()}
    try:
        device, present = session.probe(list(remote.values()))
        copied = []
        for key in ("bundle", "eval"):
            if present.get(remote[key]) != hashes[key]:
                session.send(local[key], target.dir, names[key], hashes[key])
                copied.append(names[key])
    except RemoteError as error:
        return RemoteResult(target, reason=error.one_line(), remote_dirs=remote)
    results = [
        session.classify(remote["bundle"], names["eval"], model, count, runs)
        for model in models
        for count in threads
    ]
    return RemoteResult(target, device, tuple(results), copied=tuple(copied), remote_dirs=remote)


class _Session:
    def __init__(self, client: SshClient, timeout: float | None) -> None:
        self.client = client
        self.target = client.target
        self.timeout = timeout
        self.script = SCRIPT.read_bytes()

    def _python(self, *args: str) -> str:
        return " ".join([remote_path(self.target.python), "-", *(remote_path(a) for a in args)])

    def _script(self, args: list[str], doing: str) -> dict[str, Any]:
        done = self.client.run(
            self._python(*args),
            stdin=self.script,
            timeout=self.timeout or COMMAND_TIMEOUT,
            doing=doing,
        )
        if done.returncode != 0:
            raise self._python_failure(done, doing)
        try:
            return dict(json.loads(done.stdout.decode("utf-8")))
        except (ValueError, TypeError, UnicodeDecodeError):
            raise RemoteError(
                f"{self.target.name}: {self.target.python} answered something that is not "
                f"JSON {doing}: {shorten(done.stdout.decode('utf-8', 'replace'))!r}"
            ) from None

    def _python_failure(self, done: subprocess.CompletedProcess[bytes], doing: str) -> RemoteError:
        python, name = self.target.python, self.target.name
        if done.returncode in (126, 127):  # the shell's "not executable" / "not found"
            return RemoteError(
                f"{name}: no Python at {python!r} on the device",
                "install python3 there, or name one: ssh://host/dir?python=/path/to/python3",
            )
        last = _last_line(done.stderr) or f"exit code {done.returncode}"
        return RemoteError(f"{name}: {python} failed {doing}: {last}")

    def probe(self, folders: list[str]) -> tuple[DeviceInfo, dict[str, Any]]:
        answer = self._script(["probe", *folders], "probing the device")
        litert = answer.get("ai_edge_litert") or answer.get("tflite_runtime")
        device = DeviceInfo(
            machine=str(answer.get("machine", "")),
            python=str(answer.get("python", "")),
            executable=str(answer.get("executable", "")),
            os=str(answer.get("os", "")),
            cpu=str(answer.get("cpu", "")),
            cores=answer.get("cores"),
            litert=litert,
            numpy=answer.get("numpy"),
            pillow=answer.get("pillow"),
        )
        missing = [
            name
            for name, version in (
                ("ai-edge-litert", litert),
                ("numpy", device.numpy),
                ("Pillow", device.pillow),
            )
            if not version
        ]
        if missing:
            raise RemoteError(
                f"{self.target.name}: {', '.join(missing)} not installed for "
                f"{device.executable or self.target.python} "
                f"(Python {device.python}, {device.machine})",
                "run the bundle's setup.sh there and use its venv (?python=DIR/.venv/bin/python), "
                "or pip install -r requirements.txt",
            )
        return device, dict(answer.get("folders") or {})

    def send(self, local: Path, parent: str, name: str, hashes: dict[str, str]) -> None:
        """scp the folder to a fresh staging name, check it there, rename it into place."""
        self.client.run(
            f"mkdir -p {remote_path(parent)}",
            timeout=self.timeout or COMMAND_TIMEOUT,
            doing="making the folder",
        )
        staging = f"{parent}/.incoming-{name}-{secrets.token_hex(4)}"
        self.client.copy(local, staging, timeout=max(self.timeout or 0, COPY_TIMEOUT))
        final = f"{parent}/{name}"
        answer = self._script(
            ["install", staging, final, json.dumps(hashes)], f"checking the copy of {local.name}"
        )
        if not answer.get("ok"):
            bad = [*answer.get("mismatched", []), *answer.get("unexpected", [])]
            raise RemoteError(
                f"{self.target.name}: the copy of {local.name} does not match its sha256 "
                f"({len(bad)} file(s): {', '.join(bad[:3])})",
                "check the device's disk and rerun (the bad copy was deleted)",
            )

    def classify(
        self, bundle: str, eval_name: str, model: str, threads: int, runs: int
    ) -> RemoteRun:
        command = " ".join(
            [
                "cd",
                remote_path(bundle),
                "&&",
                remote_path(self.target.python),
                "classify.py",
                "test_images",
                remote_path(f"../{eval_name}"),
                f"--model {model} --threads {threads} --bench {runs} --json --top-k 1",
            ]
        )
        started = time.perf_counter()
        failed = {"model": model, "threads": threads, "status": "failed"}
        try:
            done = self.client.run(
                command, timeout=self.timeout or RUN_TIMEOUT, doing=f"running classify.py ({model})"
            )
        except RemoteError as error:
            return RemoteRun(**failed, reason=error.one_line())  # type: ignore[arg-type]
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            reason = _last_line(done.stderr) or f"exit code {done.returncode}"
            return RemoteRun(**failed, reason=f"{self.target.name}: {reason}", seconds=seconds)  # type: ignore[arg-type]
        try:
            report = json.loads(done.stdout.decode("utf-8"))
            results = report["results"]
            evaluated = [r for r in results if not str(r["file"]).startswith("test_images")]
            tested = [r for r in results if str(r["file"]).startswith("test_images")]
            scores = np.asarray([r["scores"] for r in evaluated], dtype=np.float32)
            correct = [r["correct"] for r in tested if "correct" in r]
            accuracy = sum(correct) / len(correct) if correct else None
            latency = dict(report["bench"])
            load_ms = float(report["load_ms"])
        except (ValueError, KeyError, TypeError) as error:
            return RemoteRun(
                **failed,  # type: ignore[arg-type]
                reason=f"{self.target.name}: classify.py's JSON is not as expected: {error}",
                seconds=seconds,
            )
        return RemoteRun(
            model=model,
            threads=threads,
            status="ok",
            scores=scores,
            test_accuracy=accuracy,
            latency=latency,
            load_ms=load_ms,
            seconds=seconds,
        )


def _last_line(data: bytes) -> str:
    lines = [line.strip() for line in data.decode("utf-8", "replace").splitlines() if line.strip()]
    return shorten(lines[-1]) if lines else ""
