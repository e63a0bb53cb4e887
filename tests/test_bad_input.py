"""The bad-input corpus: every command, fed what users really feed it.

One table of cases. Each case runs the real `cnnx` in a subprocess inside its own
workspace folder and must end with:

- the documented exit code (toolkit/errors.py EXIT_CODES);
- exactly one line on stderr, `cnnx: error: ...`, naming what is wrong (Typer's own
  usage errors are several lines: for those, exit 2 and no traceback);
- no traceback anywhere;
- nothing changed: the workspace (with any artifacts folder copied into it) and the
  shared model files hash the same before and after, and nothing new was written.

The cases run concurrently (a few at a time) in one fixture, then each is asserted by
its own test; most fail before TensorFlow is imported and cost a fraction of a second.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.corpus import files, images, manifests
from tests.corpus.artifacts import fake_tfjs_artifacts
from tests.corpus.models import build_models

CLI = [sys.executable, "-m", "toolkit"]
WORKERS = 3


@dataclass
class Workspace:
    """One case's folder. `models` is the shared, read-only folder of tiny models."""

    root: Path
    models: Path
    artifacts_master: Path | None
    keep: list[Any] = field(default_factory=list)  # sockets etc. held during the run

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    def copy_artifacts(self) -> Path:
        assert self.artifacts_master is not None, "case needs a real export"
        return files.copy_tree(self.artifacts_master, self.artifacts)


Setup = Callable[[Workspace], None]


@dataclass(frozen=True)
class Case:
    id: str
    command: str
    args: tuple[str, ...]
    code: int
    says: str = ""  # must appear in the error line (case-insensitive)
    setup: Setup | None = None
    usage: bool = False  # Typer's own usage error: several lines are fine
    needs: frozenset[str] = frozenset()  # "models", "artifacts"
    env: tuple[tuple[str, str], ...] = ()
    timeout: float = 180.0


def case(
    id: str,
    command: str,
    args: str | tuple[str, ...],
    code: int,
    says: str = "",
    *,
    setup: Setup | None = None,
    usage: bool = False,
    needs: str = "",
    env: dict[str, str] | None = None,
) -> Case:
    argv = tuple(args.split()) if isinstance(args, str) else args
    return Case(
        id,
        command,
        argv,
        code,
        says,
        setup,
        usage,
        frozenset(needs.split()),
        tuple((env or {}).items()),
    )


# --- set-ups: each builds the bad input inside the workspace --------------------------


def _in(ws: Workspace, name: str) -> Path:
    return ws.root / name


def truncated(source: str, target: str, fraction: float = 0.5) -> Setup:
    return lambda ws: files.truncated_copy(ws.models / source, _in(ws, target), fraction) and None


def random_file(target: str, size: int = 4096) -> Setup:
    return lambda ws: files.random_bytes(_in(ws, target), size) and None


def text(target: str) -> Setup:
    return lambda ws: files.text_file(_in(ws, target)) and None


def copied(source: str, target: str) -> Setup:
    def setup(ws: Workspace) -> None:
        src = ws.models / source
        if src.is_dir():
            files.copy_tree(src, _in(ws, target))
        else:
            _in(ws, target).write_bytes(src.read_bytes())

    return setup


def image_folder(*bad: tuple[str, Callable[[Path], Path]], classes: int = 2) -> Setup:
    def setup(ws: Workspace) -> None:
        folder = images.class_folder(_in(ws, "images"), classes=classes, per_class=4)
        for relative, make in bad:
            make(folder / relative)

    return setup


def artifacts_edit(edit: Callable[[Path], object]) -> Setup:
    def setup(ws: Workspace) -> None:
        edit(ws.copy_artifacts())
        images.class_folder(_in(ws, "images"), classes=3, per_class=2)  # for --data

    return setup


def fake_tfjs(ws: Workspace) -> None:
    fake_tfjs_artifacts(ws.artifacts)


def port_taken(ws: Workspace) -> None:
    fake_tfjs_artifacts(ws.artifacts)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    ws.keep.append(listener)
    (ws.root / "port").write_text(str(listener.getsockname()[1]))


def fake_node(body: str) -> Setup:
    def setup(ws: Workspace) -> None:
        ws.copy_artifacts()
        script = ws.root / "node"
        script.write_text("#!/bin/sh\n" + body + "\n")
        script.chmod(0o755)

    return setup


def mkdir(name: str) -> Setup:
    return lambda ws: _in(ws, name).mkdir(parents=True) and None


def chain(*steps: Setup) -> Setup:
    def setup(ws: Workspace) -> None:
        for step in steps:
            step(ws)

    return setup


M = "models"
A = "artifacts"

# --- the table ------------------------------------------------------------------------

CASES: list[Case] = [
    # Usage: unknown commands and flags, bad choices, contradictory options (exit 2).
    case("unknown-command", "", "frobnicate", 2, usage=True),
    case("unknown-flag", "export", "export --frobnicate", 2, usage=True),
    case("bad-format-choice", "export", "export --to onnx", 2, usage=True),
    case("bad-quantize-choice", "export", "export --to tflite --quantize int4", 2, usage=True),
    case("bad-package-target", "package", "package --target ios", 2, usage=True),
    case("bad-arch", "train", "train --arch resnet9000", 2, usage=True),
    case("negative-epochs", "train", "train --epochs -3", 2, usage=True),
    case("serve-port-out-of-range", "serve", "serve --port 99999", 2, "port", setup=fake_tfjs),
    case("serve-port-not-a-number", "serve", "serve --port http", 2, usage=True),
    case("doctor-bad-timeout", "doctor", "doctor --timeout -1", 2, "timeout"),
    case(
        "bench-unknown-runtime",
        "bench",
        "bench artifacts --runtimes tf,quantum",
        2,
        "quantum",
        setup=fake_tfjs,
    ),
    case(
        "std-zero", "export", "export --model models/good.keras --std 0 --mean 0", 2, "std", needs=M
    ),
    case(
        "mean-std-wrong-count",
        "export",
        "export --model models/good.keras --mean 1,2 --std 1,2",
        2,
        "mean",
        needs=M,
    ),
    case(
        "mean-without-std",
        "export",
        "export --model models/good.keras --mean 127.5",
        2,
        "std",
        needs=M,
    ),
    # Paths (exit 3).
    case("info-missing-file", "info", "info nowhere.keras", 3, "nowhere.keras"),
    case("export-missing-model", "export", "export --model nowhere/", 3, "nowhere"),
    case("export-no-runs", "export", "export --to tflite", 3, "cnnx train"),
    case("bench-missing-folder", "bench", "bench nowhere", 3, "nowhere"),
    case("verify-no-artifacts", "verify", "verify", 3, "artifacts"),
    case(
        "verify-folder-without-manifest",
        "verify",
        "verify empty",
        3,
        "manifest",
        setup=mkdir("empty"),
    ),
    case("serve-missing-folder", "serve", "serve nowhere", 3, "nowhere"),
    case("package-missing-folder", "package", "package --target rpi nowhere", 3, "nowhere"),
    case("train-missing-data", "train", "train --data nowhere", 3, "nowhere"),
    case(
        "export-out-is-a-file",
        "export",
        "export --model models/good.keras --out afile",
        3,
        "afile",
        setup=text("afile"),
        needs=M,
    ),
    # Models that cannot be read, or are not image classifiers (exit 4).
    case(
        "info-truncated-keras",
        "info",
        "info cut.keras",
        4,
        "cut.keras",
        setup=truncated("good.keras", "cut.keras"),
        needs=M,
    ),
    case(
        "export-truncated-keras",
        "export",
        "export --model cut.keras --to tflite",
        4,
        "cut.keras",
        setup=truncated("good.keras", "cut.keras"),
        needs=M,
    ),
    case(
        "export-random-keras",
        "export",
        "export --model junk.keras --to tflite",
        4,
        "junk.keras",
        setup=random_file("junk.keras"),
    ),
    case(
        "export-truncated-h5",
        "export",
        "export --model cut.h5 --to tflite",
        4,
        "cut.h5",
        setup=truncated("good.h5", "cut.h5"),
        needs=M,
    ),
    case("info-random-h5", "info", "info junk.h5", 4, "junk.h5", setup=random_file("junk.h5")),
    case(
        "export-text-as-keras",
        "export",
        "export --model notes.keras --to tflite",
        4,
        "notes.keras",
        setup=text("notes.keras"),
    ),
    case(
        "export-keras-named-h5",
        "export",
        "export --model renamed.h5 --to tflite",
        4,
        "renamed.h5",
        setup=copied("good.keras", "renamed.h5"),
        needs=M,
    ),
    case(
        "export-wrong-extension",
        "export",
        "export --model model.onnx --to tflite",
        4,
        "onnx",
        setup=random_file("model.onnx"),
    ),
    case(
        "export-folder-not-savedmodel",
        "export",
        "export --model stuff --to tflite",
        4,
        "saved_model.pb",
        setup=chain(mkdir("stuff"), text("stuff/readme.txt")),
    ),
    case(
        "export-savedmodel-without-variables",
        "export",
        "export --model models/no_variables_savedmodel --to tflite",
        4,
        "no_variables_savedmodel",
        needs=M,
    ),
    case(
        "export-rank2-input",
        "export",
        "export --model models/rank2_input.keras --to tflite",
        4,
        "rank 2",
        needs=M,
    ),
    case(
        "export-two-inputs",
        "export",
        "export --model models/two_inputs.keras --to tflite",
        4,
        "2 inputs",
        needs=M,
    ),
    case(
        "export-two-outputs",
        "export",
        "export --model models/two_outputs.keras --to tflite",
        4,
        "2 outputs",
        needs=M,
    ),
    case(
        "export-dynamic-size",
        "export",
        "export --model models/dynamic_size.keras --to tflite",
        4,
        "dynamic",
        needs=M,
    ),
    case(
        "export-lambda-keras",
        "export",
        "export --model models/lambda.keras --to tflite",
        4,
        "--unsafe",
        needs=M,
    ),
    case(
        "info-random-tflite",
        "info",
        "info junk.tflite",
        7,
        "junk.tflite",
        setup=random_file("junk.tflite"),
    ),
    case(
        "info-truncated-tflite",
        "info",
        "info cut.tflite",
        7,
        "cut.tflite",
        setup=truncated("good.tflite", "cut.tflite"),
        needs=M,
    ),
    case(
        "info-random-model-json",
        "info",
        "info tfjs/model.json",
        7,
        "model.json",
        setup=random_file("tfjs/model.json", 300),
    ),
    case(
        "info-truncated-model-json",
        "info",
        "info artifacts/tfjs/float32/model.json",
        7,
        "model.json",
        setup=chain(
            fake_tfjs,
            lambda ws: (
                files.truncated_copy(
                    ws.artifacts / "tfjs/float32/model.json",
                    ws.artifacts / "tfjs/float32/model.json",
                    0.6,
                )
                and None
            ),
        ),
    ),
    # Data: image folders that cannot train or calibrate (exit 5).
    case(
        "train-corrupt-image",
        "train",
        "train --data images --epochs 1",
        5,
        "bad.png",
        setup=image_folder(("class_1/bad.png", images.corrupt_image)),
    ),
    case(
        "train-zero-byte-image",
        "train",
        "train --data images --epochs 1",
        5,
        "empty.jpg",
        setup=image_folder(("class_0/empty.jpg", images.zero_byte)),
    ),
    case(
        "train-truncated-jpeg",
        "train",
        "train --data images --epochs 1",
        5,
        "cut.jpg",
        setup=image_folder(("class_0/cut.jpg", images.truncated_jpeg)),
    ),
    case(
        "train-decompression-bomb",
        "train",
        "train --data images --epochs 1",
        5,
        "bomb.png",
        setup=image_folder(("class_1/bomb.png", images.decompression_bomb)),
    ),
    case(
        "train-empty-folder",
        "train",
        "train --data empty --epochs 1",
        5,
        "empty",
        setup=mkdir("empty"),
    ),
    case(
        "train-single-class",
        "train",
        "train --data images --epochs 1",
        5,
        "class",
        setup=image_folder(classes=1),
    ),
    case(
        "export-calibration-corrupt",
        "export",
        "export --model models/good.keras --to tflite --quantize int8 --calibration-data images",
        5,
        "bad.png",
        needs=M,
        setup=image_folder(("class_0/bad.png", images.corrupt_image)),
    ),
    # Hand-edited manifests and damaged artifacts (exit 7).
    case(
        "verify-manifest-bad-json",
        "verify",
        "verify artifacts --data images --min-reference-accuracy 0",
        7,
        "json",
        setup=artifacts_edit(manifests.break_json),
        needs=A,
    ),
    case(
        "verify-manifest-wrong-schema",
        "verify",
        "verify artifacts --data images --min-reference-accuracy 0",
        7,
        "schema",
        setup=artifacts_edit(manifests.wrong_schema),
        needs=A,
    ),
    case(
        "verify-manifest-missing-file",
        "verify",
        "verify artifacts --data images --min-reference-accuracy 0",
        7,
        "missing",
        setup=artifacts_edit(manifests.delete_file),
        needs=A,
    ),
    case(
        "verify-manifest-wrong-hash",
        "verify",
        "verify artifacts --data images --min-reference-accuracy 0",
        7,
        "sha256",
        setup=artifacts_edit(manifests.wrong_hash),
        needs=A,
    ),
    case(
        "verify-truncated-tfjs-shard",
        "verify",
        "verify artifacts --data images --min-reference-accuracy 0",
        7,
        "sha256",
        setup=artifacts_edit(lambda f: manifests.truncate_file(f, "tfjs")),
        needs=A,
    ),
    case(
        "bench-manifest-escaping-path",
        "bench",
        "bench artifacts --runtimes tf --data images",
        7,
        "outside",
        setup=artifacts_edit(manifests.escaping_path),
        needs=A,
    ),
    case(
        "serve-manifest-bad-json",
        "serve",
        "serve artifacts --port 0",
        7,
        "json",
        setup=chain(fake_tfjs, lambda ws: manifests.break_json(ws.artifacts)),
    ),
    case(
        "serve-without-web-artifacts",  # neither TF.js nor TFLite: no engine has a model
        "serve",
        "serve artifacts --port 0",
        7,
        "tf.js or tflite",
        setup=artifacts_edit(lambda f: manifests.drop_artifacts(f, "savedmodel")),
        needs=A,
    ),
    case(
        "package-web-without-tfjs",
        "package",
        "package --target web artifacts --out web",
        7,
        "tfjs",
        setup=artifacts_edit(lambda f: manifests.drop_artifacts(f, "tflite")),
        needs=A,
    ),
    case(
        "package-rpi-without-int8",
        "package",
        "package --target rpi artifacts --out rpi",
        7,
        "int8",
        setup=artifacts_edit(lambda f: manifests.drop_artifacts(f, "tfjs")),
        needs=A,
    ),
    # Machine resources (exit 11).
    case(
        "serve-port-taken",
        "serve",
        ("serve", "artifacts", "--port", "{port}"),
        11,
        "in use",
        setup=port_taken,
    ),
]


# --- running --------------------------------------------------------------------------


@dataclass
class Outcome:
    code: int | None
    stdout: str
    stderr: str
    seconds: float
    before: dict[str, str]
    after: dict[str, str]
    models_before: dict[str, str]
    models_after: dict[str, str]


def _run_case(item: Case, workspace: Workspace) -> Outcome:
    root = workspace.root
    if item.setup is not None:
        item.setup(workspace)
    if "models" in item.needs or any("models/" in a for a in item.args):
        (root / "models").symlink_to(workspace.models)
    port = (root / "port").read_text() if (root / "port").exists() else ""
    argv = [*CLI, *(a.replace("{port}", port) for a in item.args)]
    env = {**os.environ, "CNNX_NODE": str(root / "node"), **dict(item.env)}
    if not (root / "node").exists():
        env.pop("CNNX_NODE")
    before = files.snapshot(root)
    models_before = files.snapshot(workspace.models)
    start = time.perf_counter()
    try:
        done = subprocess.run(
            argv, cwd=root, env=env, capture_output=True, text=True, timeout=item.timeout
        )
        code, out, err = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as expired:
        code, out, err = None, str(expired.stdout or ""), str(expired.stderr or "")
    seconds = time.perf_counter() - start
    for held in workspace.keep:
        held.close()
    return Outcome(
        code,
        out,
        err,
        seconds,
        before,
        files.snapshot(root),
        models_before,
        files.snapshot(workspace.models),
    )


@pytest.fixture(scope="module")
def corpus_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.getbasetemp() / "corpus-models"
    build_models(folder)
    return folder


@pytest.fixture(scope="module")
def artifacts_master(tmp_path_factory: pytest.TempPathFactory, corpus_models: Path) -> Path:
    """A real export of the tiny model in every format, made once by the real CLI."""
    folder = tmp_path_factory.getbasetemp() / "corpus-artifacts"
    if not (folder / "manifest.json").exists():
        calibration = images.class_folder(folder.with_name("corpus-calibration"), 3, 10)
        done = subprocess.run(
            [
                *CLI,
                "export",
                "--model",
                str(corpus_models / "good.keras"),
                "--to",
                "all",
                "--calibration-data",
                str(calibration),
                "--out",
                str(folder),
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr
    return folder


@pytest.fixture(scope="module")
def outcomes(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Outcome]]:
    """Run every selected case concurrently; results by case id."""
    selected = [
        item.callspec.params["item"]
        for item in request.session.items
        if getattr(item, "originalname", "") == "test_bad_input" and hasattr(item, "callspec")
    ]
    models = request.getfixturevalue("corpus_models") if any(c.needs for c in selected) else None
    master = None
    if any("artifacts" in c.needs for c in selected):
        master = request.getfixturevalue("artifacts_master")
    models = models or tmp_path_factory.mktemp("no-models")

    def one(item: Case) -> tuple[str, Outcome]:
        root = tmp_path_factory.mktemp(item.id)
        return item.id, _run_case(item, Workspace(root, models, master))

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        yield dict(pool.map(one, selected))


@pytest.mark.parametrize("item", CASES, ids=[c.id for c in CASES])
def test_bad_input(item: Case, outcomes: dict[str, Outcome]) -> None:
    result = outcomes[item.id]
    print(f"{item.id}: {result.seconds:.1f}s")
    where = f"exit {result.code}; stderr:\n{result.stderr}\nstdout:\n{result.stdout[-2000:]}"
    assert result.code is not None, f"timed out after {result.seconds:.0f}s; {where}"
    assert "Traceback" not in result.stderr + result.stdout, where
    assert result.code == item.code, where
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if item.usage:
        assert lines, where  # Typer says what was wrong, over several lines
    else:
        assert len(lines) == 1, where
        assert lines[0].startswith("cnnx: error: "), where
        assert item.says.lower() in lines[0].lower(), where
        assert "internal error" not in lines[0], where
    assert result.after == result.before, "the workspace changed: " + _diff(
        result.before, result.after
    )
    assert result.models_after == result.models_before, "the shared models changed"


def _diff(before: dict[str, str], after: dict[str, str]) -> str:
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    return f"added {added[:10]}, removed {removed[:10]}, changed {changed[:10]}"


def test_the_corpus_is_big_enough() -> None:
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)
    commands = {c.command for c in CASES}
    assert {"train", "export", "bench", "verify", "serve", "package", "info"} <= commands
