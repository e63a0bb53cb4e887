"""Session fixtures shared by the test modules."""

from __future__ import annotations

import importlib.abc
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.once import built_once
from toolkit.core.quiet import silence_tensorflow

silence_tensorflow()

# --- order: the longest files first -----------------------------------------------------

# `make test` runs the suite on every core, one file per worker at a time (pytest-xdist
# --dist loadfile, keeping each file's module fixtures in one process); the files that
# take minutes start first, so no worker is left with one at the end while others idle.
LONGEST_FIRST = (
    "test_demo.py",
    "test_byom_families.py",
    "test_byom_binary.py",
    "test_quantize.py",
    "test_gpu_check.py",
    "test_byom_mobilenet.py",
    "test_faults.py",
    "test_bad_input.py",
    "test_multiworker.py",
    "test_faults_signals.py",
    "test_progress.py",
    "test_litertjs_runtime.py",
    "test_browser.py",
    "test_byom_export.py",
)


# --- tiers: `make check` runs what needs no TensorFlow, Node, Chromium or qemu ----------

# A test is in the full tier when it carries a marker that says it starts one of those, or
# asks (directly or through another fixture) for a fixture that builds or loads models.
# So a new test that needs a trained run is full-tier by asking for it, and one that
# imports TensorFlow unmarked fails the quick tier's guard below instead of slowing it.
FULL_MARKERS = {"slow", "node", "browser", "emulation", "android", "gpu"}
FULL_FIXTURES = {
    "tiny_run",
    "artifacts",
    "corpus_models",
    "drifting_run",
    "tiny",  # test_package: the tiny TFLite artifacts
    "bad_models",  # test_cli_train: Keras files to refuse
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--tier",
        choices=("check", "full"),
        default="full",
        help="check: only the tests that need no TensorFlow, Node, Chromium or qemu",
    )


def in_full_tier(item: pytest.Item) -> bool:
    markers = {marker.name for marker in item.iter_markers()}
    return bool(markers & FULL_MARKERS or FULL_FIXTURES & set(getattr(item, "fixturenames", ())))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("tier") == "check":
        full = [item for item in items if in_full_tier(item)]
        config.hook.pytest_deselected(items=full)
        items[:] = [item for item in items if not in_full_tier(item)]
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep order


class _NoTensorFlow(importlib.abc.MetaPathFinder):
    """The quick tier's guard: importing TensorFlow (or Keras, which imports it) fails
    the test that does it, at that line, and nothing else."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> None:
        if name.partition(".")[0] in ("tensorflow", "keras", "tf_keras"):
            raise ImportError(
                f"the quick tier (make check) runs without {name}: mark this test slow or "
                "give it a full-tier fixture (tests/conftest.py FULL_FIXTURES)"
            )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("tier") == "check":
        sys.meta_path.insert(0, _NoTensorFlow())


# --- tiny_data / tiny_run: one small dataset and one tiny trained run per test run ----

# Small enough to train in seconds on a shared 2-core machine, big enough that the model
# learns well above chance (10 classes: 10%), so int8 agreement tests mean something.
TINY_SIZE = 1500
TINY_EPOCHS = 12
TINY_WIDTH = 0.25


@pytest.fixture(scope="session")
def tiny_data():
    """A small `shapes` DataSpec: 1,500 seeded 32x32 RGB images, 10 classes."""
    from toolkit.data import DataSpec

    return DataSpec(kind="shapes", seed=0, size=TINY_SIZE, image_size=32)


@pytest.fixture(scope="session")
def tiny_run(tiny_data, tmp_path_factory) -> Path:
    """A run folder trained once per test run: the seed CNN at width 0.25 on tiny_data."""

    def build(folder: Path) -> None:
        from toolkit.train.training import TrainConfig, train

        config = TrainConfig(
            data=tiny_data,
            arch="seed",
            epochs=TINY_EPOCHS,
            batch_size=32,
            learning_rate=5e-3,
            width=TINY_WIDTH,
            seed=0,
            out=folder / "run",
        )
        result = train(config)
        assert result.test_accuracy > 0.25, f"tiny run did not learn: {result.test_accuracy:.3f}"

    return built_once(tmp_path_factory, "tiny-run", build) / "run"


# --- artifacts: every format of tiny_run, exported once per test run -------------------


@pytest.fixture(scope="session")
def artifacts(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An artifacts folder holding ALL formats of `tiny_run` (cnnx export --to all).

    Shared by every test that reads artifacts, in every worker: treat it as read-only
    (copy it with shutil.copytree before changing anything). Its manifest.json lists
    savedmodel, tflite_{float32,float16,dynamic,int8}, tfjs_{float32,uint8,uint16,float16}
    and onnx_{float32,float16,int8}, plus samples/ (20 test-split PNGs).
    """

    def build(folder: Path) -> None:
        from toolkit.export.artifacts import ExportRequest, export

        export(ExportRequest(model=tiny_run, to="all", out=folder / "artifacts"))

    return built_once(tmp_path_factory, "artifacts", build) / "artifacts"


@pytest.fixture
def artifacts_copy(artifacts: Path, tmp_path: Path) -> Path:
    """A private copy of `artifacts` (without any report) for a test that changes it."""
    target = tmp_path / "artifacts"
    shutil.copytree(artifacts, target, ignore=shutil.ignore_patterns("report"))
    return target


# --- corpus_models: the tiny models every loader must accept or refuse ----------------


@pytest.fixture(scope="session")
def corpus_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/corpus/models.py's folder (good.keras, good_savedmodel, lambda_*, ...), built
    once per test run; tests that change it (the unsafe models' marker) put it back."""
    from tests.corpus.models import build_models

    return built_once(tmp_path_factory, "corpus-models", build_models)


# --- drifting_run: a model where plain int8 measurably loses agreement ----------------


@pytest.fixture(scope="session")
def drifting_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cnnx run of Conv -> Activation -> BatchNorm blocks trained briefly on `shapes`
    (tests/corpus/drifting.py, shipped under tests/models/): plain int8 loses agreement
    on it, int16x8 does not. A copy in the run's shared folder, so nothing writes into
    the shipped one."""
    from tests.factories import family

    shipped = family("drifting").path
    copy = built_once(tmp_path_factory, "drifting", lambda f: shutil.copytree(shipped, f / "run"))
    return copy / "run"
