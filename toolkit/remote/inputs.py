"""What a device bench sends: the Raspberry Pi bundle and the evaluation images.

The bundle is reused from ./bundles/rpi when it was built from this very manifest and
its files still match bundle.json; otherwise one is built in a temporary folder (never
into ./bundles, which belongs to `cnnx package`), byte for byte the same each time for
the same artifacts, so a device that already has it is sent nothing.

The evaluation images go as 8-bit PNG files at the model's size, so the device's
classify.py reads and preprocesses them itself, exactly as it would a photo, and
lands on the same float input the local runtimes were given.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from toolkit.core.locate import BUNDLES_DIR
from toolkit.data.inputspec import InputSpec
from toolkit.errors import DataError
from toolkit.manifest import Manifest, sha256_file
from toolkit.measure.evalset import EvalSet

GROUND_TRUTH = "ground_truth.json"


def matching_bundle(folder: Path, manifest: Manifest) -> bool:
    """Whether folder is a complete Pi bundle built from this manifest by this cnnx (its
    classify.py is today's, which reports what a row needs), files unchanged."""
    from toolkit.packaging.bundle import TEMPLATES

    try:
        record = json.loads((folder / "bundle.json").read_text(encoding="utf-8"))
        if record.get("target") != "rpi":
            return False
        today = (TEMPLATES / "rpi" / "classify.py").read_bytes()
        if (folder / "classify.py").read_bytes() != today:
            return False
        if record["source"]["manifest_sha256"] != sha256_file(manifest.path):
            return False
        return all(sha256_file(folder / f["path"]) == f["sha256"] for f in record["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return False


@contextlib.contextmanager
def pi_bundle(manifest: Manifest, bundles_dir: Path | None = None) -> Iterator[tuple[Path, bool]]:
    """(bundle folder, reused?): ./bundles/rpi if it matches, else a temporary build."""
    existing = (bundles_dir or Path.cwd() / BUNDLES_DIR) / "rpi"
    if matching_bundle(existing, manifest):
        yield existing, True
        return
    from toolkit.packaging.rpi import package_rpi

    with tempfile.TemporaryDirectory(prefix="cnnx-remote-") as scratch:
        bundle = package_rpi(manifest.root, Path(scratch) / "rpi", make_zip=False)
        _pin_created(bundle, manifest)
        yield bundle, False


def _pin_created(bundle: Path, manifest: Manifest) -> None:
    """A temporary build's bundle.json carries the manifest's time instead of the build's:
    the same artifacts then give the same bytes, so a device that has them (same sha256)
    is sent nothing the next time."""
    from toolkit.core.atomic import write_json_atomic

    path = bundle / "bundle.json"
    record = json.loads(path.read_text(encoding="utf-8"))
    record["created"] = manifest.created
    write_json_atomic(path, record)


def eval_pixels(evalset: EvalSet, spec: InputSpec) -> np.ndarray:
    """The evaluation images back as uint8 pixels (the inverse of the input spec).

    DataError when they are not 8-bit pictures (the spec applied to the recovered pixels
    must give the very floats the local runtimes saw).
    """
    x = np.asarray(evalset.images, dtype=np.float64)
    if spec.mean is not None and spec.std is not None:
        pixels = x * np.asarray(spec.std) + np.asarray(spec.mean)
    else:
        pixels = (x - spec.offset) / spec.scale
    if spec.color == "BGR":  # the spec swaps RGB pictures to BGR before normalising
        pixels = pixels[..., ::-1]
    rounded = np.clip(np.round(pixels), 0, 255).astype(np.uint8)
    again = spec.apply(rounded)
    scale = float(np.max(np.abs(evalset.images))) or 1.0
    if not np.allclose(again, evalset.images, rtol=0, atol=1e-5 * scale):
        raise DataError(
            f"the evaluation images ({evalset.source}) are not 8-bit pictures under the "
            "manifest's preprocessing, so a device cannot be given the same input"
        )
    return rounded


def write_eval_images(evalset: EvalSet, spec: InputSpec, folder: Path) -> Path:
    """PNG files eval_00000.png... (sorted = evaluation order) and their ground truth."""
    from PIL import Image

    pixels = eval_pixels(evalset, spec)
    folder.mkdir(parents=True, exist_ok=False)
    records = []
    for number, image in enumerate(pixels):
        name = f"eval_{number:05d}.png"
        Image.fromarray(image[..., 0] if spec.channels == 1 else image).save(folder / name)
        if evalset.labels is not None:
            index = int(evalset.labels[number])
            records.append({"file": name, "index": index, "label": evalset.class_names[index]})
    if records:
        (folder / GROUND_TRUTH).write_text(json.dumps({"images": records}), encoding="utf-8")
    return folder


@contextlib.contextmanager
def eval_folder(evalset: EvalSet, spec: InputSpec) -> Iterator[Path]:
    """The evaluation images as PNG files in a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="cnnx-evalset-") as scratch:
        yield write_eval_images(evalset, spec, Path(scratch) / "evalset")
