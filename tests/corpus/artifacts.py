"""A small hand-made artifacts folder: a valid manifest naming a TF.js artifact.

For tests of code that reads the manifest and serves or copies files without running
the model (the web server's refusals, packaging's zip paths); everything that runs a
model uses a real export instead.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from toolkit.data.inputspec import InputSpec
from toolkit.manifest import SCHEMA, describe_files

TFJS_DIR = "tfjs/float32"


def fake_tfjs_artifacts(folder: Path, labels: tuple[str, ...] = ("a", "b", "c")) -> Path:
    tfjs = folder / TFJS_DIR
    tfjs.mkdir(parents=True, exist_ok=True)
    (tfjs / "model.json").write_text(
        json.dumps({"format": "graph-model", "modelTopology": {}, "weightsManifest": []})
    )
    (tfjs / "group1-shard1of1.bin").write_bytes(b"\x00" * 64)
    (folder / "secret.txt").write_text("not to be served\n")
    manifest = {
        "schema": SCHEMA,
        "created": "2025-01-01T00:00:00+00:00",
        "command": "hand-made for a test",
        "source": {},
        "input": InputSpec(16, 16, 3).to_dict(),
        "labels": list(labels),
        "eval_data": None,
        "versions": {},
        "artifacts": {
            "tfjs_float32": {
                "format": "tfjs",
                "precision": "float32",
                "runtime": "tfjs",
                "path": TFJS_DIR,
                "files": describe_files(folder, TFJS_DIR),
                "inputs": [],
                "outputs": [],
                "tolerance": {},
                "details": {},
            }
        },
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return folder


def write_samples(folder: Path, images: Any, labels: Any, names: Sequence[str]) -> None:
    """samples/ as an export writes it: one PNG per image and samples.json with labels."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        name = f"{i:03d}_{names[label]}.png"
        Image.fromarray(image, "RGB").save(folder / name)
        records.append({"file": name, "label": names[label], "index": int(label)})
    (folder / "samples.json").write_text(json.dumps({"samples": records}, indent=2))
