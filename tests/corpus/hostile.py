"""Hostile input, as an attacker or a careless user makes it.

Set-ups for the bad-input corpus (tests/test_bad_input.py): each takes the case's
workspace (`ws.root`, `ws.models`, `ws.copy_artifacts()`, `ws.keep`) and builds one bad
thing in it. Deeply nested JSON, FIFOs, absurd model configurations, model.json files
whose shards climb out of their folder, graphs swapped in behind a manifest, fake run
folders to export over, output folders locked by another process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.corpus import images, manifests
from tests.corpus.artifacts import fake_tfjs_artifacts
from toolkit.data.inputspec import InputSpec

Setup = Callable[[Any], None]


def nested_json(depth: int) -> str:
    """A JSON value nested `depth` levels deep (lists in lists)."""
    return "[" * depth + "]" * depth


# --- fake runs and plain files ------------------------------------------------------------


def fake_run(ws: Any, name: str = "run", graph: str | None = None) -> Path:
    """A run folder as `cnnx train` leaves it, enough to be recognised as one (its model
    and history are plain bytes: an export over it must not touch them)."""
    run = ws.root / name
    run.mkdir(parents=True)
    record = {"input": InputSpec(16, 16, 3).to_dict(), "labels": ["a", "b", "c"]}
    (run / "run.json").write_text(json.dumps(record))
    (run / "model.keras").write_bytes(b"weights that must survive")
    (run / "history.json").write_text('{"loss": [1.0]}')
    pivot = run / "saved_model"
    if graph is not None:
        import shutil

        shutil.copytree(ws.models / "graphs" / graph, pivot)
    else:
        pivot.mkdir()
        (pivot / "saved_model.pb").write_bytes(b"not read before the refusal")
    return run


def run_folder(graph: str | None = None) -> Setup:
    return lambda ws: fake_run(ws, graph=graph) and None


def local_model(name: str = "good.keras", folder: str = "m") -> Setup:
    """A private copy of a shared model (a case that must not risk the shared folder)."""

    def setup(ws: Any) -> None:
        target = ws.root / folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((ws.models / name).read_bytes())

    return setup


def symlink(name: str, target: str) -> Setup:
    return lambda ws: (ws.root / name).symlink_to(target) and None


def fifo(name: str) -> Setup:
    def setup(ws: Any) -> None:
        path = ws.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(path)

    return setup


def replace_with_fifo(relative: str) -> Setup:
    """Turn a file of the workspace (made by an earlier set-up) into a FIFO."""

    def setup(ws: Any) -> None:
        path = ws.root / relative
        path.unlink()
        os.mkfifo(path)

    return setup


def write(name: str, text: str | bytes) -> Setup:
    def setup(ws: Any) -> None:
        path = ws.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)

    return setup


def copy_model(name: str, target: str) -> Setup:
    def setup(ws: Any) -> None:
        import shutil

        shutil.copytree(ws.models / name, ws.root / target, symlinks=True)

    return setup


# --- Keras files --------------------------------------------------------------------------


def keras_archive(name: str, config: str, *, declared_huge: bool = False) -> Setup:
    """A .keras zip whose config.json is `config` (or, declared_huge, 70 MB of spaces)."""

    def setup(ws: Any) -> None:
        body = " " * (70 << 20) if declared_huge else config
        with zipfile.ZipFile(ws.root / name, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("config.json", body)
            archive.writestr("metadata.json", '{"keras_version": "3.15.1"}')

    return setup


def many_layers(count: int) -> str:
    layer = '{"class_name": "ReLU", "config": {}},'
    return '{"class_name": "Sequential", "config": {"layers": [' + layer * count + "{}]}}"


def h5_with_config(name: str, value: Any) -> Setup:
    """An .h5 file whose model_config attribute is `value` (any type h5py stores)."""

    def setup(ws: Any) -> None:
        import h5py

        with h5py.File(ws.root / name, "w") as handle:
            handle.attrs["model_config"] = value
            handle.attrs["keras_version"] = "3.15.1"

    return setup


def lambda_function_keras(name: str) -> Setup:
    config = {
        "class_name": "Functional",
        "config": {
            "layers": [
                {
                    "class_name": "Activation",
                    "config": {
                        "activation": {
                            "class_name": "__lambda__",
                            "config": {"code": "print('ran')", "defaults": None, "closure": None},
                        }
                    },
                }
            ]
        },
    }
    return keras_archive(name, json.dumps(config))


# --- artifacts folders ------------------------------------------------------------------


def with_samples(folder: Path, count: int = 6, size: int = 16) -> None:
    """samples/ as an export writes it: PNGs, samples.json and the manifest's records."""
    from toolkit.manifest import sha256_file

    samples = folder / "samples"
    samples.mkdir(exist_ok=True)
    records, listed = [], []
    for n in range(count):
        name = f"{n:03d}_c{n % 3}.png"
        images.good_image(samples / name, size, seed=n)
        record = {"file": name, "label": n % 3, "label_name": f"class_{n % 3}"}
        records.append(record)
        path = samples / name
        relative = f"samples/{name}"
        listed.append(
            {**record, "path": relative, "sha256": sha256_file(path), "size": path.stat().st_size}
        )
    (samples / "samples.json").write_text(json.dumps(records))
    data = json.loads((folder / "manifest.json").read_text())
    data["samples"] = listed
    (folder / "manifest.json").write_text(json.dumps(data, indent=2))


def resample(folder: Path) -> None:
    """Recompute the manifest's sample hashes (an attacker's consistent edit)."""
    from toolkit.manifest import sha256_file

    data = json.loads((folder / "manifest.json").read_text())
    for record in data.get("samples") or []:
        path = folder / record["path"]
        if path.is_file():
            record["sha256"], record["size"] = sha256_file(path), path.stat().st_size
    (folder / "manifest.json").write_text(json.dumps(data, indent=2))


def sample_edit(edit: Callable[[Path], object], *, real: bool = True) -> Setup:
    """Artifacts with samples/ (a real export, or the hand-made TF.js one), then `edit`
    applied to its first sample image, the manifest kept consistent."""

    def setup(ws: Any) -> None:
        folder = ws.copy_artifacts() if real else fake_tfjs_artifacts(ws.artifacts)
        with_samples(folder)
        edit(folder / "samples" / "000_c0.png")
        resample(folder)
        images.class_folder(ws.root / "images", classes=3, per_class=2)

    return setup


def artifacts_then(*edits: Callable[[Path], object], real: bool = True) -> Setup:
    def setup(ws: Any) -> None:
        folder = ws.copy_artifacts() if real else fake_tfjs_artifacts(ws.artifacts)
        for edit in edits:
            edit(folder)
        images.class_folder(ws.root / "images", classes=3, per_class=2)

    return setup


def swapped_graph(graph: str) -> Setup:
    """Artifacts whose SavedModel was swapped for a hostile graph, the manifest's hashes
    updated to match (a hash proves nothing about what a graph does)."""

    def setup(ws: Any) -> None:
        manifests.swap_savedmodel(ws.copy_artifacts(), ws.models / "graphs" / graph)
        images.class_folder(ws.root / "images", classes=3, per_class=2)

    return setup


def tfjs_op(op: str) -> Callable[[Path], object]:
    def edit(folder: Path) -> None:
        def change(model: dict[str, Any]) -> None:
            nodes = model["modelTopology"]["node"]
            victim = next(n for n in nodes if n.get("op") not in ("Placeholder", "Const"))
            victim["op"] = op

        manifests.edit_model_json(folder, change)

    return edit


def tfjs_shard_path(path: str, outside_copy: bool = True) -> Callable[[Path], object]:
    """model.json's first shard path becomes `path` (the shard's bytes copied there)."""

    def edit(folder: Path) -> None:
        def change(model: dict[str, Any]) -> None:
            group = model["weightsManifest"][0]
            original = folder / "tfjs" / "float32" / group["paths"][0]
            target = (original.parent / path).resolve()
            if outside_copy and not path.startswith("/"):
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(original.read_bytes())
            group["paths"][0] = path

        manifests.edit_model_json(folder, change)

    return edit


def tfjs_extra_unlisted_shard(folder: Path) -> None:
    """model.json names a second shard that is on disk but not in the manifest's list."""

    def change(model: dict[str, Any]) -> None:
        model["weightsManifest"][0]["paths"].append("extra-shard.bin")

    manifests.edit_model_json(folder, change)
    extra = folder / "tfjs" / "float32" / "extra-shard.bin"
    extra.write_bytes(b"\x00" * 16)
    data = json.loads((folder / "manifest.json").read_text())
    entry = data["artifacts"]["tfjs_float32"]
    entry["files"] = [f for f in entry["files"] if not f["path"].endswith("extra-shard.bin")]
    (folder / "manifest.json").write_text(json.dumps(data, indent=2))


def tfjs_shard_symlink_out(folder: Path) -> None:
    data = json.loads((folder / "manifest.json").read_text())
    shard = next(
        folder / f["path"]
        for f in data["artifacts"]["tfjs_float32"]["files"]
        if f["path"].endswith(".bin")
    )
    outside = folder.parent / "outside.bin"
    outside.write_bytes(shard.read_bytes())
    shard.unlink()
    shard.symlink_to(outside)


def manifest_with(key: str, raw_json: str) -> Callable[[Path], object]:
    """The manifest with `key` set to the JSON text `raw_json` (nested, huge, ...)."""

    def edit(folder: Path) -> None:
        data = json.loads((folder / "manifest.json").read_text())
        data[key] = "PLACEHOLDER"
        text = json.dumps(data).replace('"PLACEHOLDER"', raw_json)
        (folder / "manifest.json").write_text(text)

    return edit


# --- a process holding an output folder's lock ----------------------------------------


class LockHolder:
    """Another process holding the advisory lock of `out` (as a writer of it would).

    It writes its pid, says "held" and sleeps; close() kills it with SIGKILL, which
    leaves the lock file behind exactly as a killed writer would.
    """

    def __init__(self, out: Path) -> None:
        lock = out.parent / f".{out.name}.lock"
        code = (
            "import fcntl, os, sys, time\n"
            f"fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT, 0o644)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "os.write(fd, f'{os.getpid()}\\n'.encode())\n"
            "print('held', flush=True)\n"
            "time.sleep(3600)\n"
        )
        self.process = subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "held"

    @property
    def pid(self) -> int:
        return self.process.pid

    def close(self) -> None:
        self.process.kill()
        self.process.wait(timeout=30)
        if self.process.stdout is not None:
            self.process.stdout.close()


def locked(out: str, *then: Setup) -> Setup:
    def setup(ws: Any) -> None:
        for step in then:
            step(ws)
        ws.keep.append(LockHolder(ws.root / out))

    return setup
