"""Defaults that find the last trained run and the artifacts under the current folder."""

from __future__ import annotations

from pathlib import Path

from toolkit.errors import PathError

RUNS_DIR = Path("runs")
ARTIFACTS_DIR = Path("artifacts")
BUNDLES_DIR = Path("bundles")
RUN_FILE = "run.json"


def last_run(base: Path | None = None) -> Path:
    """The newest run folder (by its run.json) under ./runs."""
    runs = (base or Path.cwd()) / RUNS_DIR
    candidates = sorted(runs.glob(f"*/{RUN_FILE}"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise PathError(
            f"no trained run under {runs}", "train one with cnnx train, or pass --model"
        )
    return candidates[-1].parent


def artifacts_dir(given: Path | None) -> Path:
    """The artifacts folder a command should read: the one given, else ./artifacts."""
    folder = Path(given) if given is not None else Path.cwd() / ARTIFACTS_DIR
    if not folder.exists():
        raise PathError(f"artifacts folder {folder} does not exist", "run cnnx export first")
    if not folder.is_dir():
        raise PathError(f"{folder} is not a folder", "name an artifacts folder")
    return folder
