"""A tiny trained run (shapes, 400 images, 1/8 width, one epoch), made once a session."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CLI = [sys.executable, "-m", "toolkit"]


def tiny_run(folder: Path) -> Path:
    """Train with the real CLI into `folder` unless a finished run is already there."""
    folder = Path(folder)
    if (folder / "run.json").is_file():
        return folder
    done = subprocess.run(
        [
            *CLI,
            "train",
            "--data",
            "shapes",
            "--size",
            "400",
            "--image-size",
            "32",
            "--width",
            "0.125",
            "--epochs",
            "1",
            "--out",
            str(folder),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"cnnx train failed: {done.stderr}")
    return folder
