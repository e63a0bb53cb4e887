"""The Raspberry Pi bundle: a folder (and zip) that classifies with LiteRT on the Pi.

    rpi/
      models/model_int8.tflite     uint8 input: raw camera bytes go straight in
      models/model_float32.tflite  the reference
      models/model_float32.onnx    when exported: the same model for ONNX Runtime
      labels.txt, input_spec.json  labels and preprocessing, from the manifest
      classify.py                  needs only ai-edge-litert, numpy and Pillow (and
                                   onnxruntime for the ONNX model)
      pixels.py                    the pixel rule (toolkit/data/pixels.py, copied as is)
      requirements.txt, setup.sh, README.md
      requirements-onnx.txt        with the ONNX model: onnxruntime, pinned
      test_images/                 samples with ground_truth.json
      bundle.json                  source, per-model I/O, sha256 of every file, accuracies

Before it is put in place, the bundle's own classify.py runs here on its test images
with each model, and the accuracies are recorded: the numbers a Pi must reproduce.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from typing import Any

from toolkit.core.atomic import write_json_atomic
from toolkit.core.progress import ProgressFn, no_progress
from toolkit.data import pixels as pixel_rule
from toolkit.errors import ArtifactError, RuntimeUnavailable
from toolkit.manifest import load_manifest
from toolkit.packaging.bundle import (
    Stages,
    bundle_record,
    carry_model,
    copy_samples,
    copy_template,
    input_dtype,
    model_record,
    read_samples,
    require_edge_models,
    write_labels,
    writing_bundle,
)

TARGET = "rpi"
MODELS = {"int8": "tflite_int8", "float32": "tflite_float32"}
TEMPLATE_FILES = {
    "classify.py": True,
    "setup.sh": True,
    "requirements.txt": False,
}
# Carried when exported, run by classify.py --model onnx_float32 with onnxruntime.
ONNX_MODEL = "onnx_float32"
ONNX_FILE = "models/model_float32.onnx"
ONNX_REQUIREMENTS = "requirements-onnx.txt"
ONNX_SECTION = """
## ONNX Runtime

`{file}` ({size}) is the same classifier as ONNX (opset {opset}),
verified against the SavedModel in ONNX Runtime {version}. It needs `onnxruntime`
(pinned in `requirements-onnx.txt`, which `./setup.sh` installs too; PyPI has its
aarch64 wheel):

```
.venv/bin/python classify.py --model onnx_float32
```

At packaging time it was {accuracy} accurate on the test images.
"""


def package_rpi(
    artifacts_dir: Path,
    out_dir: Path,
    *,
    force: bool = False,
    make_zip: bool = True,
    progress: ProgressFn = no_progress,
) -> Path:
    """Write the Raspberry Pi bundle to out_dir (and out_dir.zip); return out_dir."""
    manifest = load_manifest(Path(artifacts_dir))
    models = require_edge_models(manifest, MODELS, "Raspberry Pi")
    int8_entry, int8_path = models["int8"]
    if input_dtype(int8_entry) not in ("uint8", "int8"):
        raise ArtifactError(
            f"{int8_path} takes {input_dtype(int8_entry)} input; the Pi bundle wants the "
            "integer-input int8 model",
            "re-export it: cnnx export --to tflite --quantize int8 --io uint8",
        )
    samples = read_samples(manifest)
    out_dir = Path(out_dir)

    stages = Stages(progress, TARGET, ["models", "self-test", "README"], make_zip=make_zip)
    with writing_bundle(out_dir, force=force, make_zip=make_zip, stages=stages) as folder:
        stages.start("models")
        (folder / "models").mkdir()
        model_records: dict[str, Any] = {}
        for name, (entry, path) in models.items():
            shutil.copyfile(path, folder / "models" / path.name)
            model_records[name] = model_record(folder, f"models/{path.name}", entry)
        onnx = carry_model(
            manifest, ONNX_MODEL, folder, ONNX_FILE, model_records, runtime="onnxruntime"
        )
        write_labels(manifest.labels, folder / "labels.txt")
        write_json_atomic(folder / "input_spec.json", manifest.input.to_dict())
        copy_samples(samples, folder / "test_images")
        for name, executable in TEMPLATE_FILES.items():
            copy_template(f"rpi/{name}", folder / name, executable=executable)
        if onnx is not None:
            copy_template(f"rpi/{ONNX_REQUIREMENTS}", folder / ONNX_REQUIREMENTS)
        # The pixel rule verify used, as the same file: the Pi resizes pictures the same way.
        shutil.copyfile(pixel_rule.__file__, folder / "pixels.py")
        (folder / "pixels.py").chmod(0o644)
        # classify.py reads the models from bundle.json; the file list and accuracies
        # are written again once it has run.
        bundle_record(folder, TARGET, manifest, models=model_records, samples=len(samples))
        stages.start("self-test")
        accuracies = self_test(folder, list(model_records))
        stages.start("README")
        for name, accuracy in accuracies.items():
            model_records[name]["accuracy_test_images"] = accuracy
        spec = manifest.input
        copy_template(
            "rpi/README.md",
            folder / "README.md",
            values={
                "name": manifest.source.get("name") or "cnnx model",
                "classes": str(len(manifest.labels)),
                "height": str(spec.height),
                "width": str(spec.width),
                "color": spec.color,
                "int8_size": _size(model_records["int8"]["size"]),
                "float32_size": _size(model_records["float32"]["size"]),
                "preprocessing": spec.describe(),
                "test_count": str(len(samples)),
                "accuracy_int8": _percent(accuracies["int8"]),
                "accuracy_float32": _percent(accuracies["float32"]),
                "onnx_file": _ONNX_ROW if onnx is not None else "",
                "onnx": ""
                if onnx is None
                else ONNX_SECTION.format(
                    file=ONNX_FILE,
                    size=_size(model_records[ONNX_MODEL]["size"]),
                    opset=onnx.details.get("opset", "?"),
                    version=onnx.details.get("versions", {}).get("onnxruntime", "?"),
                    accuracy=_percent(accuracies[ONNX_MODEL]),
                ),
            },
        )
        bundle_record(folder, TARGET, manifest, models=model_records, samples=len(samples))
    return out_dir


def self_test(folder: Path, names: list[str]) -> dict[str, float]:
    """Run the bundle's classify.py (in this process) on its test images with each model."""
    spec = importlib.util.spec_from_file_location("cnnx_rpi_classify", folder / "classify.py")
    if spec is None or spec.loader is None:
        raise ArtifactError(f"cannot load {folder / 'classify.py'}")
    module = importlib.util.module_from_spec(spec)
    sys.modules.pop("cnnx_rpi_classify", None)
    spec.loader.exec_module(module)
    accuracies: dict[str, float] = {}
    images = module.image_paths([str(folder / "test_images")])
    for name in names:
        try:
            classifier = module.Classifier(name, threads=1)
        except module.BundleError as error:
            raise RuntimeUnavailable(f"the bundle's classify.py fails here: {error}") from None
        report = module.classify_files(classifier, images, 1)
        accuracies[name] = float(report["summary"]["accuracy"])
    return accuracies


_ONNX_ROW = (
    f"\n| `{ONNX_FILE}`, `{ONNX_REQUIREMENTS}` | the float32 model as ONNX, for ONNX Runtime "
    "(`--model onnx_float32`), and its pinned `onnxruntime` |"
)


def _size(size: int) -> str:
    return f"{size / 1024:.1f} KiB" if size < 1 << 20 else f"{size / (1 << 20):.2f} MiB"


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%"
