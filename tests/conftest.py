"""Session fixtures shared by the test modules."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest


# --- artifacts: every format of tiny_run, exported once per session -----------------


@pytest.fixture(scope="session")
def artifacts(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An artifacts folder holding ALL formats of `tiny_run` (cnnx export --to all).

    Shared by every session test that reads artifacts: treat it as read-only (copy it
    with shutil.copytree before changing anything). Its manifest.json lists savedmodel,
    tflite_{float32,float16,dynamic,int8} and tfjs_{float32,uint8,uint16,float16}, plus
    samples/ (20 test-split PNGs).
    """
    from toolkit.exporting import ExportRequest, export

    try:
        run = request.getfixturevalue("tiny_run")
    except pytest.FixtureLookupError:  # until tiny_run lands: a tiny run of our own
        from toolkit.data import DataSpec
        from toolkit.training import TrainConfig, train

        run_dir = tmp_path_factory.mktemp("artifacts-run") / "run"
        config = TrainConfig(data=DataSpec(size=600, image_size=20), epochs=2, width=0.25)
        train(replace(config, out=run_dir))
        run = run_dir
    out = tmp_path_factory.mktemp("artifacts-session") / "artifacts"
    export(ExportRequest(model=Path(run), to="all", out=out))
    return out
