"""The bad-input corpus: every command, fed what users really feed it.

One table of cases. Each case runs `cnnx` (tests/cli.py: in the test process, or as a
real process with a time limit where a missing refusal could hang or exhaust memory)
inside its own workspace folder and must end with:

- the documented exit code (toolkit/errors.py EXIT_CODES);
- exactly one line on stderr, `cnnx: error: ...`, naming what is wrong (Typer's own
  usage errors are several lines: for those, exit 2 and no traceback);
- no traceback anywhere;
- nothing changed: the workspace (with any artifacts folder copied into it) and the
  shared model files hash the same before and after, and nothing new was written.

The cases run in one fixture (the real processes a few at a time), then each is asserted
by its own test; most fail before TensorFlow is imported and cost a fraction of a second.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.cli import cnnx
from tests.corpus import files, images, manifests
from tests.corpus import hostile as h
from tests.corpus.artifacts import fake_tfjs_artifacts
from tests.corpus.flex import flex_savedmodel
from tests.corpus.graphs import REFUSED_OP, build_graphs
from tests.corpus.keras34 import write_keras34

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
    needs: frozenset[str] = frozenset()  # "models", "artifacts", "tensorflow" (to set up)
    env: tuple[tuple[str, str], ...] = ()
    timeout: float = 180.0

    @property
    def process(self) -> bool:
        """Run as a real process, with a time limit: a server that would stay up, a read
        that could block (FIFOs, devices) or memory that could run out (bombs, huge
        inputs) must not take the test run with it if the refusal were missing."""
        risky = ("fifo", "device", "bomb", "huge")
        return self.command == "serve" or any(word in self.id for word in risky)


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
    case("bad-format-choice", "export", "export --to coreml", 2, usage=True),
    case("bad-quantize-choice", "export", "export --to tflite --quantize int4", 2, usage=True),
    case(
        "quantize-for-savedmodel",
        "export",
        "export --to savedmodel --quantize int8",
        2,
        "--quantize does not apply",
    ),
    case(
        "debug-quant-without-int8", "export", "export --to tfjs --debug-quant", 2, "full int8 only"
    ),
    case(
        "float-fallback-bad-count",
        "export",
        "export --to tflite --float-fallback auto:x",
        2,
        "positive integer",
    ),
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
        "export-data-folder-reads-as-two-classes",
        "export",
        "export --model models/good.keras --to tflite --quantize none --data images "
        "--labels images/labels.txt",
        5,
        "subfolder '0_Dog' reads as two classes: 'Cat' (class index 0) and '0 Dog'",
        setup=chain(
            mkdir("images"),
            lambda ws: images.class_folder(_in(ws, "images"), classes=3, per_class=2) and None,
            lambda ws: _in(ws, "images/class_0").rename(_in(ws, "images/0_Dog")),
            lambda ws: _in(ws, "images/labels.txt").write_text("Cat\n0 Dog\nBird\n") and None,
        ),
        needs=M,
    ),
    case(
        "export-data-without-pictures",
        "export",
        "export --model models/good.keras --to tflite --quantize none --data notes",
        5,
        "holds no pictures (left out 3 files: 2 .txt (not an image), 1 a FIFO (named pipe))",
        setup=chain(
            mkdir("notes/cats"),
            lambda ws: _in(ws, "notes/cats/a.txt").write_text("not a picture") and None,
            lambda ws: _in(ws, "notes/cats/b.txt").write_text("nor this") and None,
            lambda ws: os.mkfifo(_in(ws, "notes/cats/pipe")),  # never opened: left out
        ),
        needs=M,
    ),
    case(
        "export-keras-minor-unknown-argument",
        "export",
        "export --model old.keras --to tflite",
        4,
        "layer 'conv2d' (Conv2D) has argument 'fancy_padding', which Keras 3.",
        setup=lambda ws: (
            write_keras34(_in(ws, "old.keras"), {"conv2d": {"fancy_padding": 1}}) and None
        ),
        needs="tensorflow",  # Keras itself names the argument it does not know
    ),
    case(
        "export-needs-flex-ops",
        "export",
        "export --model needs_flex --to tflite --quantize none",
        6,
        "needs TensorFlow ops that TFLite has no builtin kernel for: FlexCumprod, "
        "FlexExtractImagePatches",
        setup=lambda ws: flex_savedmodel(_in(ws, "needs_flex")) and None,
        needs="tensorflow",  # the set-up builds the model
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


# --- hostile input: what an attacker or a careless user feeds it -------------------------

G = "models/graphs"  # SavedModels whose graphs touch files (tests/corpus/graphs.py)
VERIFY = "--data images --min-reference-accuracy 0"
DEEP = h.nested_json(100_000)  # past Python's recursion limit
DEEPISH = h.nested_json(150)  # within the recursion limit, past cnnx's depth limit

CASES += [
    # Graphs that do more than compute are refused before anything runs (exit 4).
    *(
        case(
            f"graph-{name}-export",
            "export",
            f"export --model {G}/{name} --to savedmodel --out out",
            4,
            op,
            needs=M,
        )
        for name, op in REFUSED_OP.items()
    ),
    case("graph-info", "info", f"info {G}/write_file", 4, "WriteFile", needs=M),
    case(
        "graph-run-folder-swapped",
        "export",
        "export --model run --to savedmodel --out out",
        4,
        "WriteFile",
        setup=h.run_folder(graph="write_file"),
        needs=M,
    ),
    case(
        "graph-info-run-swapped",
        "info",
        "info run",
        4,
        "PrintV2",
        setup=h.run_folder(graph="print_to_file"),
        needs=M,
    ),
    case(
        "graph-verify-swapped-savedmodel",
        "verify",
        f"verify artifacts {VERIFY}",
        4,
        "WriteFile",
        setup=h.swapped_graph("write_file"),
        needs=A,
    ),
    case(
        "graph-verify-swapped-tf1",
        "verify",
        f"verify artifacts {VERIFY} -r tf",
        4,
        "WriteFile",
        setup=h.swapped_graph("tf1_main_op"),
        needs=A,
    ),
    case(
        "graph-bench-swapped-savedmodel",
        "bench",
        "bench artifacts --runtimes tf --data images",
        4,
        "SaveV2",
        setup=h.swapped_graph("save_v2"),
        needs=A,
    ),
    case(
        "graph-verify-tfjs-op",
        "verify",
        f"verify artifacts {VERIFY} -r tfjs-node",
        4,
        "WriteFile",
        setup=h.artifacts_then(h.tfjs_op("WriteFile")),
        needs=A,
    ),
    case(
        "graph-verify-tfjs-unknown-op",
        "verify",
        f"verify artifacts {VERIFY} -r tfjs-node",
        4,
        "MysteryOp",
        setup=h.artifacts_then(h.tfjs_op("MysteryOp")),
        needs=A,
    ),
    case(
        "graph-info-tfjs-op",
        "info",
        "info artifacts/tfjs/float32",
        4,
        "ReadFile",
        setup=h.artifacts_then(h.tfjs_op("ReadFile")),
        needs=A,
    ),
    case(
        "graph-savedmodel-truncated-pb",
        "export",
        "export --model sm --to savedmodel --out out",
        4,
        "saved_model.pb",
        setup=chain(
            h.copy_model("good_savedmodel", "sm"),
            h.write("sm/saved_model.pb", b"\x12\xff\xff\xff\x0f"),
        ),
        needs=M,
    ),
    case(
        "graph-savedmodel-random-pb",
        "info",
        "info sm",
        4,
        "saved_model.pb",
        setup=chain(h.copy_model("good_savedmodel", "sm"), random_file("sm/saved_model.pb")),
        needs=M,
    ),
    case(
        "keras-lambda-function",
        "export",
        "export --model fn.keras --to savedmodel",
        4,
        "__lambda__",
        setup=h.lambda_function_keras("fn.keras"),
    ),
    # Paths read from a model.json, a manifest or a samples index stay inside (exit 7).
    case(
        "tfjs-shard-climbs-out-verify",
        "verify",
        f"verify artifacts {VERIFY} -r tfjs-node",
        7,
        "outside",
        setup=h.artifacts_then(h.tfjs_shard_path("../../../outside/weights.bin")),
        needs=A,
    ),
    case(
        "tfjs-shard-climbs-out-bench",
        "bench",
        "bench artifacts --runtimes tfjs-node --data images",
        7,
        "outside",
        setup=h.artifacts_then(h.tfjs_shard_path("../../outside.bin")),
        needs=A,
    ),
    case(
        "tfjs-shard-climbs-out-info",
        "info",
        "info artifacts/tfjs/float32",
        7,
        "outside",
        setup=h.artifacts_then(h.tfjs_shard_path("../x/../../shard.bin")),
        needs=A,
    ),
    case(
        "tfjs-shard-climbs-out-package",
        "package",
        "package --target web artifacts --out web",
        7,
        "outside",
        setup=h.artifacts_then(h.tfjs_shard_path("../../../outside.bin")),
        needs=A,
    ),
    case(
        "tfjs-shard-absolute",
        "verify",
        f"verify artifacts {VERIFY} -r tfjs-node",
        7,
        "/etc/hostname",
        setup=h.artifacts_then(h.tfjs_shard_path("/etc/hostname")),
        needs=A,
    ),
    case(
        "tfjs-shard-missing",
        "verify",
        f"verify artifacts {VERIFY} -r tfjs-node",
        7,
        "missing",
        setup=h.artifacts_then(h.tfjs_shard_path("gone.bin", outside_copy=False)),
        needs=A,
    ),
    case(
        "tfjs-shard-symlink-out",
        "verify",
        f"verify artifacts {VERIFY} -r tfjs-node",
        7,
        "outside",
        setup=h.artifacts_then(h.tfjs_shard_symlink_out),
        needs=A,
    ),
    case(
        "tfjs-shard-unlisted-package",
        "package",
        "package --target web artifacts --out web",
        7,
        "extra-shard.bin",
        setup=h.artifacts_then(h.tfjs_extra_unlisted_shard),
        needs=A,
    ),
    case(
        "manifest-sample-climbs-out",
        "verify",
        f"verify artifacts {VERIFY}",
        7,
        "outside",
        setup=h.artifacts_then(
            h.manifest_with("samples", '[{"file": "x.png", "label": 0, "path": "../../x.png"}]')
        ),
        needs=A,
    ),
    case(
        "samples-index-climbs-out",
        "package",
        "package --target web artifacts --out web",
        5,
        "../../secret.txt",
        setup=chain(
            fake_tfjs,
            h.write("artifacts/samples/samples.json", '[{"file": "../../secret.txt", "label": 0}]'),
        ),
    ),
    # --out over what the command reads: refused, --force or not (exit 3, nothing lost).
    case(
        "out-is-the-run",
        "export",
        "export --model run --out run --force",
        3,
        "is the source model",
        setup=h.run_folder(),
    ),
    case(
        "out-inside-the-run",
        "export",
        "export --model run --out run/saved_model --force",
        3,
        "sits inside",
        setup=h.run_folder(),
    ),
    case(
        "out-is-the-run-via-symlink",
        "export",
        "export --model run --out alias --force",
        3,
        "is the source model",
        setup=chain(h.run_folder(), h.symlink("alias", "run")),
    ),
    case(
        "out-is-the-run-via-dotdot",
        "export",
        "export --model run --out run/../run --force",
        3,
        "is the source model",
        setup=h.run_folder(),
    ),
    case(
        "out-contains-the-model",
        "export",
        "export --model m/good.keras --out m --force",
        3,
        "contains the source model",
        setup=h.local_model(),
        needs=M,
    ),
    case(
        "out-is-the-cwd",
        "export",
        "export --model m/good.keras --out . --force",
        3,
        "contains",
        setup=h.local_model(),
        needs=M,
    ),
    case(
        "out-is-the-model-file",
        "export",
        "export --model m/good.keras --out m/good.keras",
        3,
        "is the source model",
        setup=h.local_model(),
        needs=M,
    ),
    case(
        "out-is-calibration-data",
        "export",
        "export --model m/good.keras --to tflite -q int8 --calibration-data images "
        "--out images --force",
        3,
        "--calibration-data folder",
        setup=chain(h.local_model(), image_folder()),
        needs=M,
    ),
    case(
        "out-contains-labels",
        "export",
        "export --model m/good.keras --labels lab/labels.txt --out lab --force",
        3,
        "labels file",
        setup=chain(h.local_model(), h.write("lab/labels.txt", "a\nb\nc\n")),
        needs=M,
    ),
    case(
        "package-out-is-artifacts",
        "package",
        "package --target web artifacts --out artifacts --force",
        3,
        "is the artifacts folder",
        setup=fake_tfjs,
    ),
    case(
        "package-out-inside-artifacts",
        "package",
        "package --target web artifacts --out artifacts/web --force",
        3,
        "sits inside",
        setup=fake_tfjs,
    ),
    case(
        "package-out-contains-artifacts",
        "package",
        "package --target rpi artifacts --out . --force",
        3,
        "contains",
        setup=fake_tfjs,
    ),
    case(
        "package-out-via-symlink",
        "package",
        "package --target web artifacts --out link --force",
        3,
        "artifacts folder",
        setup=chain(fake_tfjs, h.symlink("link", "artifacts")),
    ),
    case(
        "bench-out-is-artifacts",
        "bench",
        "bench artifacts --runtimes tf --out artifacts",
        3,
        "is the artifacts folder",
        setup=fake_tfjs,
    ),
    case(
        "bench-out-contains-artifacts",
        "bench",
        "bench artifacts --runtimes tf --out .",
        3,
        "contains",
        setup=fake_tfjs,
    ),
    case(
        "bench-out-is-an-artifact",
        "bench",
        "bench artifacts --runtimes tf --out artifacts/tfjs/float32",
        3,
        "tfjs_float32",
        setup=fake_tfjs,
    ),
    case(
        "bench-out-holds-the-baseline",
        "bench",
        "bench artifacts --runtimes tf --baseline base/report.json --out base",
        3,
        "baseline",
        setup=chain(fake_tfjs, h.write("base/report.json", "{}")),
    ),
    case(
        "bench-out-is-the-data",
        "bench",
        "bench artifacts --runtimes tf --data images --out images",
        3,
        "data folder",
        setup=chain(fake_tfjs, image_folder()),
    ),
    case(
        "train-out-inside-data",
        "train",
        "train --data images --out images/run",
        3,
        "sits inside",
        setup=image_folder(),
    ),
    # One writer at a time: another process holds the output folder (exit 3, its pid).
    case(
        "locked-export",
        "export",
        "export --model m/good.keras --to savedmodel --out out",
        3,
        "pid",
        setup=h.locked("out", h.local_model()),
        needs=M,
    ),
    case(
        "locked-package",
        "package",
        "package --target web artifacts --out web",
        3,
        "pid",
        setup=h.locked("web", fake_tfjs),
    ),
    case(
        "locked-bench",
        "bench",
        "bench artifacts --runtimes tf --out report",
        3,
        "pid",
        setup=h.locked("report", fake_tfjs),
    ),
    case(
        "locked-train",
        "train",
        "train --data images --out run",
        3,
        "pid",
        setup=h.locked("run", image_folder()),
    ),
    # JSON nested past any sane depth, in every JSON file cnnx reads.
    case(
        "deep-manifest",
        "verify",
        "verify artifacts",
        7,
        "nested",
        setup=h.artifacts_then(h.manifest_with("command", DEEP), real=False),
    ),
    case(
        "deepish-manifest",
        "info",
        "info artifacts",
        7,
        "nested",
        setup=h.artifacts_then(h.manifest_with("source", DEEPISH), real=False),
    ),
    case(
        "deep-run-json",
        "info",
        "info run",
        4,
        "nested",
        setup=chain(h.run_folder(), h.write("run/run.json", DEEP)),
    ),
    case(
        "deep-tolerances-json",
        "verify",
        "verify artifacts --tolerances tol.json",
        2,
        "nested",
        setup=chain(fake_tfjs, h.write("tol.json", DEEP)),
    ),
    case(
        "deep-tolerances-toml",
        "verify",
        "verify artifacts --tolerances tol.toml",
        2,
        "nested",
        setup=chain(fake_tfjs, h.write("tol.toml", "x = " + DEEP)),
    ),
    case(
        "deep-baseline",
        "bench",
        "bench artifacts --runtimes tf --baseline base.json",
        2,
        "nested",
        setup=chain(fake_tfjs, h.write("base.json", DEEP)),
    ),
    case(
        "deep-keras-config",
        "export",
        "export --model deep.keras --to savedmodel",
        4,
        "nested",
        setup=h.keras_archive("deep.keras", DEEP),
    ),
    case(
        "deep-h5-config",
        "info",
        "info deep.h5",
        4,
        "nested",
        setup=h.h5_with_config("deep.h5", DEEPISH),
    ),
    case(
        "deep-model-json",
        "info",
        "info tfjs/model.json",
        7,
        "nested",
        setup=h.write("tfjs/model.json", DEEP),
    ),
    case(
        "deep-samples-index",
        "package",
        "package --target web artifacts --out web",
        5,
        "nested",
        setup=chain(fake_tfjs, h.write("artifacts/samples/samples.json", DEEP)),
    ),
    # Model files of absurd size or the wrong types inside (exit 4).
    case(
        "keras-200k-layers",
        "export",
        "export --model big.keras --to savedmodel",
        4,
        "layers",
        setup=h.keras_archive("big.keras", h.many_layers(200_000)),
    ),
    case(
        "h5-many-layers",
        "info",
        "info big.h5",
        4,
        "layers",
        setup=h.h5_with_config("big.h5", h.many_layers(60_000)),
    ),
    case(
        "keras-config-zip-bomb",
        "info",
        "info bomb.keras",
        4,
        "limit",
        setup=h.keras_archive("bomb.keras", "", declared_huge=True),
    ),
    case(
        "h5-config-an-integer",
        "export",
        "export --model odd.h5 --to savedmodel",
        4,
        "model_config",
        setup=h.h5_with_config("odd.h5", 42),
    ),
    case(
        "h5-config-an-array",
        "info",
        "info odd.h5",
        4,
        "model_config",
        setup=h.h5_with_config("odd.h5", [1.5, 2.5]),
    ),
    case(
        "h5-config-not-utf8",
        "info",
        "info odd.h5",
        4,
        "UTF-8",
        setup=h.h5_with_config("odd.h5", b"\xff\xfe{}"),
    ),
    # Images: bombs and wrong sizes wherever images are read (exit 5).
    case(
        "sample-bomb-verify",
        "verify",
        "verify artifacts --min-reference-accuracy 0",
        5,
        "pixels",
        setup=h.sample_edit(lambda p: images.decompression_bomb(p, 8000)),
        needs=A,
    ),
    case(
        "sample-bomb-package-rpi",
        "package",
        "package --target rpi artifacts --out rpi",
        5,
        "pixels",
        setup=h.sample_edit(lambda p: images.decompression_bomb(p, 8000)),
        needs=A,
    ),
    case(
        "sample-bomb-package-web",
        "package",
        "package --target web artifacts --out web",
        5,
        "pixels",
        setup=h.sample_edit(images.decompression_bomb, real=False),
    ),
    case(
        "calibration-bomb",
        "export",
        "export --model m/good.keras --to tflite -q int8 --calibration-data images --out out",
        5,
        "pixels",
        setup=chain(h.local_model(), image_folder(("class_0/bomb.png", images.decompression_bomb))),
        needs=M,
    ),
    case(
        "verify-data-bomb",
        "verify",
        f"verify artifacts {VERIFY}",
        5,
        "bomb.png",
        setup=chain(
            h.artifacts_then(),
            lambda ws: (
                images.decompression_bomb(ws.root / "images" / "class_0" / "bomb.png") and None
            ),
        ),
        needs=A,
    ),
    # Sizes that would need more memory than the machine has (exit 11, the size named).
    case(
        "bench-batch-absurd",
        "bench",
        "bench artifacts --runtimes tf --data images --batch 1000000000",
        11,
        "--batch",
        setup=h.artifacts_then(),
        needs=A,
    ),
    case("train-size-absurd", "train", "train --size 1000000000 --epochs 1", 11, "memory"),
    # An input so large that one picture would not fit: refused from the shape (exit 11).
    case(
        "export-input-huge",
        "export",
        "export --model models/huge_input.keras --to tflite --quantize none --out out",
        11,
        "100000x100000x3 input",
        needs=M,
    ),
    case(
        "verify-input-huge",
        "verify",
        "verify artifacts",
        11,
        "100000x100000x3 input",
        setup=artifacts_edit(manifests.huge_input),
        needs=A,
    ),
    # FIFOs and devices where files belong: refused before opening, never a hang (exit 3).
    case(
        "fifo-model-keras",
        "export",
        "export --model pipe.keras --to savedmodel",
        3,
        "FIFO",
        setup=h.fifo("pipe.keras"),
    ),
    case("fifo-model-h5", "info", "info pipe.h5", 3, "FIFO", setup=h.fifo("pipe.h5")),
    case(
        "device-as-model",
        "export",
        "export --model /dev/zero --to savedmodel",
        3,
        "character device",
    ),
    case(
        "fifo-labels",
        "export",
        "export --model m/good.keras --labels pipe --to savedmodel",
        3,
        "FIFO",
        setup=chain(h.local_model(), h.fifo("pipe")),
        needs=M,
    ),
    case(
        "device-as-labels",
        "export",
        "export --model m/good.keras --labels /dev/zero --to savedmodel",
        3,
        "character device",
        setup=h.local_model(),
        needs=M,
    ),
    case(
        "fifo-tolerances",
        "verify",
        "verify artifacts --tolerances pipe.toml",
        3,
        "FIFO",
        setup=chain(fake_tfjs, h.fifo("pipe.toml")),
    ),
    case(
        "fifo-baseline",
        "bench",
        "bench artifacts --runtimes tf --baseline pipe.json",
        3,
        "FIFO",
        setup=chain(fake_tfjs, h.fifo("pipe.json")),
    ),
    case(
        "fifo-calibration-image",
        "export",
        "export --model m/good.keras --to tflite -q int8 --calibration-data images --out out",
        3,
        "FIFO",
        setup=chain(h.local_model(), image_folder(), h.fifo("images/class_0/pipe.png")),
        needs=M,
    ),
    case(
        "fifo-training-image",
        "train",
        "train --data images --epochs 1",
        3,
        "FIFO",
        setup=chain(image_folder(), h.fifo("images/class_1/pipe.jpg")),
    ),
    case(
        "fifo-verify-image",
        "verify",
        f"verify artifacts {VERIFY}",
        3,
        "FIFO",
        setup=chain(h.artifacts_then(), h.fifo("images/class_2/pipe.png")),
        needs=A,
    ),
    case(
        "fifo-savedmodel-variables",
        "export",
        "export --model sm --to savedmodel --out out",
        3,
        "FIFO",
        setup=chain(
            h.copy_model("good_savedmodel", "sm"),
            h.replace_with_fifo("sm/variables/variables.index"),
        ),
        needs=M,
    ),
    case(
        "fifo-run-json",
        "info",
        "info run/run.json",
        3,
        "FIFO",
        setup=chain(h.run_folder(), h.replace_with_fifo("run/run.json")),
    ),
    case(
        "fifo-manifest",
        "info",
        "info artifacts/manifest.json",
        3,
        "FIFO",
        setup=chain(fake_tfjs, h.replace_with_fifo("artifacts/manifest.json")),
    ),
    case(
        "fifo-tfjs-shard",
        "info",
        "info tfjs",
        7,
        "FIFO",
        setup=chain(
            lambda ws: fake_tfjs_artifacts(ws.root / "a") and None,
            h.write(
                "tfjs/model.json",
                '{"modelTopology": {}, "weightsManifest": [{"paths": ["w.bin"], "weights": []}]}',
            ),
            h.fifo("tfjs/w.bin"),
        ),
    ),
    case(
        "labels-not-utf8",
        "export",
        "export --model m/good.keras --labels lab.txt",
        5,
        "UTF-8",
        setup=chain(h.local_model(), h.write("lab.txt", b"\xff\xfe\x00a\n")),
        needs=M,
    ),
    case(
        "labels-huge",
        "export",
        "export --model m/good.keras --labels lab.txt",
        5,
        "limit",
        setup=chain(h.local_model(), h.write("lab.txt", "a\n" * (9 << 20))),
        needs=M,
    ),
    # Folders that would walk the machine (exit 5).
    case("data-is-the-root", "train", "train --data / --epochs 1", 5, "root"),
    case("data-is-proc", "train", "train --data /proc --epochs 1", 5, "kernel"),
    case(
        "class-folder-links-to-root",
        "train",
        "train --data images --epochs 1",
        5,
        "root",
        setup=chain(image_folder(), h.symlink("images/everything", "/")),
    ),
    case(
        "class-folder-links-to-parent",
        "train",
        "train --data images --epochs 1",
        5,
        "leads back",
        setup=chain(image_folder(), h.symlink("images/loop", "..")),
    ),
    case(
        "verify-data-is-the-root", "verify", "verify artifacts --data /", 5, "root", setup=fake_tfjs
    ),
    case(
        "calibration-data-is-the-root",
        "export",
        "export --model m/good.keras --to tflite -q int8 --calibration-data / --out out",
        5,
        "root",
        setup=h.local_model(),
        needs=M,
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
    args = [a.replace("{port}", port) for a in item.args]
    node = str(root / "node") if (root / "node").exists() else None
    env = {"CNNX_NODE": node, **dict(item.env)}
    before = files.snapshot(root)
    models_before = files.snapshot(workspace.models)
    start = time.perf_counter()
    try:
        code, out, err = cnnx(*args, cwd=root, env=env, process=item.process, timeout=item.timeout)
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
def corpus_models(corpus_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the run's tiny models (tests/conftest.py), with the graph corpus beside
    them: every case checks that nothing in it changed, and the shared folder is also
    read, and its unsafe models' marker written, by tests in other workers."""
    folder = files.copy_tree(corpus_models, tmp_path_factory.mktemp("bad-input") / "models")
    build_graphs(folder / "graphs")
    return folder


@pytest.fixture(scope="module")
def artifacts_master(tmp_path_factory: pytest.TempPathFactory, corpus_models: Path) -> Path:
    """A real export of the tiny model in every format, made once by the real CLI."""
    folder = tmp_path_factory.getbasetemp() / "corpus-artifacts"
    if not (folder / "manifest.json").exists():
        calibration = images.class_folder(folder.with_name("corpus-calibration"), 3, 10)
        model = corpus_models / "good.keras"
        done = cnnx("export", "--model", model, "--to", "all", "--calibration-data", calibration,
                    "--out", folder)  # fmt: skip
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

    # The processes a few at a time; then, one after the other, the cases run in this
    # process (a command changes the working folder, environment and output streams).
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        results = dict(pool.map(one, [c for c in selected if c.process]))
    results.update(one(c) for c in selected if not c.process)
    yield results


# A case that needs the tiny models or a real export is in the full tier (tests/conftest.py).
@pytest.mark.parametrize(
    "item",
    [pytest.param(c, id=c.id, marks=[pytest.mark.slow] if c.needs else []) for c in CASES],
)
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
    assert len(CASES) >= 120
    assert len({c.id for c in CASES}) == len(CASES)
    commands = {c.command for c in CASES}
    assert {"train", "export", "bench", "verify", "serve", "package", "info"} <= commands
