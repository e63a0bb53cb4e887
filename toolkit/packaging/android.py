"""The Android bundle: float32 and int8 (uint8 I/O) models carrying TFLite metadata.

The metadata (normalization mean/std derived from the InputSpec, the labels file packed
into the model, input and output descriptions) is what MediaPipe Tasks, the TFLite Task
Library and Android Studio's ML binding read, so an app needs no preprocessing code.

    android/
      models/model_float32.tflite  models/model_int8.tflite   with metadata
      labels.txt  README.md (Gradle dependencies, Kotlin for ImageClassifier and Interpreter)
      test_images/ (ground_truth.json)  bundle.json

The metadata writer (tflite-support) cannot live in TensorFlow's venv; it runs in the
android environment (`make android-env`) through android_worker.py, a subprocess
speaking JSON, with a time limit.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from toolkit import __version__
from toolkit.errors import ArtifactError, CnnxError, ExportError, RuntimeUnavailable
from toolkit.inputspec import InputSpec
from toolkit.manifest import ArtifactEntry, load_manifest, sha256_file
from toolkit.packaging.bundle import (
    bundle_record,
    copy_samples,
    copy_template,
    input_dtype,
    read_samples,
    require_edge_models,
    spec_normalization,
    write_labels,
    writing_bundle,
)

TARGET = "android"
MODELS = {"float32": "tflite_float32", "int8": "tflite_int8"}
ENV_VAR = "CNNX_ANDROID_ENV"
SETUP_HINT = "build it with: make android-env (or bash scripts/setup_android_env.sh DIR)"
WORKER = Path(__file__).resolve().parent / "android_worker.py"
WORKER_TIMEOUT = 180.0  # seconds; a cold MediaPipe import takes a few
_SOURCE_ROOT = Path(__file__).resolve().parents[2]


def android_python(env_dir: Path | None = None) -> Path:
    """The android environment's python, or RuntimeUnavailable saying how to make it."""
    places = (
        [Path(env_dir)]
        if env_dir is not None
        else [
            *([Path(os.environ[ENV_VAR])] if os.environ.get(ENV_VAR) else []),
            Path.cwd() / ".cache" / "android-env",
            _SOURCE_ROOT / ".cache" / "android-env",
        ]
    )
    for place in places:
        python = place / "bin" / "python"
        if python.exists():
            return python
    raise RuntimeUnavailable(
        "no android environment with the TFLite metadata writer (looked in "
        + ", ".join(str(p) for p in places)
        + ")",
        SETUP_HINT,
    )


def run_worker(
    request: dict[str, Any],
    *,
    timeout: float = WORKER_TIMEOUT,
    error: type[CnnxError] = RuntimeUnavailable,
    env_dir: Path | None = None,
) -> dict[str, Any]:
    """Send one request to android_worker.py in the android environment; its answer."""
    python = android_python(env_dir)
    action = request.get("action", "?")
    try:
        process = subprocess.run(
            [str(python), str(WORKER)],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, "PYTHONNOUSERSITE": "1", "GLOG_minloglevel": "2"},
        )
    except subprocess.TimeoutExpired:
        raise RuntimeUnavailable(
            f"the android environment did not finish {action!r} in {timeout:.0f} s"
        ) from None
    except OSError as failure:
        raise RuntimeUnavailable(
            f"cannot start {python}: {failure.strerror or failure}", SETUP_HINT
        ) from None
    # Native libraries may log to stdout too: the answer is the last JSON line.
    lines = [line for line in process.stdout.splitlines() if line.startswith("{")]
    try:
        answer = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        answer = None
    if not isinstance(answer, dict):
        last = (process.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeUnavailable(
            f"the android environment's {action!r} crashed (exit {process.returncode}): {last}",
            SETUP_HINT,
        )
    if "error" in answer:
        raise error(f"{action} in the android environment failed: {answer['error']}")
    return answer


def read_metadata(model: Path, env_dir: Path | None = None) -> dict[str, Any]:
    """The TFLite metadata of `model` (as JSON) and the files packed into it."""
    return run_worker({"action": "read_metadata", "model": str(model)}, env_dir=env_dir)


def mediapipe_classify(
    model: Path, images: list[Path], max_results: int = 3, env_dir: Path | None = None
) -> list[list[dict[str, Any]]]:
    """MediaPipe Tasks' ImageClassifier (the task code Android runs) on image files."""
    answer = run_worker(
        {
            "action": "classify",
            "model": str(model),
            "images": [str(p) for p in images],
            "max_results": max_results,
        },
        env_dir=env_dir,
    )
    return list(answer["results"])


def uint8_input_is_raw_pixels(entry: ArtifactEntry, spec: InputSpec) -> bool:
    """Whether the uint8 input's quantization maps raw bytes to what the spec makes of
    them: MediaPipe feeds a uint8 model the image bytes unchanged."""
    quantization = entry.inputs[0].get("quantization") if entry.inputs else None
    if not quantization:
        return False
    scale, zero_point = float(quantization["scale"]), int(quantization["zero_point"])
    for pixel in (0.0, 127.0, 255.0):
        wanted = float(spec.apply(_pixel(pixel, spec.channels))[0])
        if abs(scale * (pixel - zero_point) - wanted) > scale / 2:
            return False
    return True


def _pixel(value: float, channels: int) -> Any:
    import numpy as np

    return np.full((channels,), value, dtype=np.float32)


def package_android(
    artifacts_dir: Path,
    out_dir: Path,
    *,
    force: bool = False,
    make_zip: bool = True,
    env_dir: Path | None = None,
) -> Path:
    """Write the Android bundle to out_dir (and out_dir.zip); return out_dir."""
    manifest = load_manifest(Path(artifacts_dir))
    models = require_edge_models(manifest, MODELS, "Android")
    int8_entry, int8_path = models["int8"]
    int8_input = input_dtype(int8_entry)
    if int8_input != "uint8":
        raise ArtifactError(
            f"{int8_path} takes {int8_input or 'unknown'} input; MediaPipe and the Task "
            "Library take uint8 or float32 images, not int8",
            "re-export with uint8 I/O: cnnx export --to tflite --quantize int8 --io uint8",
        )
    android_python(env_dir)  # fail before any work if the metadata writer is absent
    samples = read_samples(manifest)
    spec = manifest.input
    mean, std = spec_normalization(spec)
    name = str(manifest.source.get("name") or "cnnx image classifier")
    version = str(manifest.versions.get("cnnx") or __version__)

    with writing_bundle(Path(out_dir), force=force, make_zip=make_zip) as folder:
        (folder / "models").mkdir()
        write_labels(manifest.labels, folder / "labels.txt")
        records: dict[str, Any] = {}
        for variant, (entry, path) in models.items():
            target = folder / "models" / path.name
            answer = run_worker(
                {
                    "action": "write_metadata",
                    "model": str(path),
                    "out": str(target),
                    "labels": str(folder / "labels.txt"),
                    "mean": mean,
                    "std": std,
                    "color": spec.color,
                    "name": f"{name} ({variant})",
                    "version": version,
                    "description": (
                        f"Classifies a {spec.height}x{spec.width} {spec.color} image into "
                        f"{len(manifest.labels)} classes."
                    ),
                    "author": "cnnx",
                    "input_description": _input_description(spec, entry),
                    "output_description": (
                        f"Probabilities of the {len(manifest.labels)} classes in labels.txt."
                    ),
                },
                error=ExportError,
                env_dir=env_dir,
            )
            packed = answer.get("associated_text", {}).get("labels.txt")
            if packed != manifest.labels:
                raise ExportError(
                    f"the metadata written into {target.name} carries labels {packed!r}, "
                    f"not the manifest's {manifest.labels!r}"
                )
            records[variant] = {
                "file": f"models/{path.name}",
                "artifact": entry.id,
                "source_sha256": sha256_file(path),
                "sha256": sha256_file(target),
                "size": target.stat().st_size,
                "inputs": entry.inputs,
                "outputs": entry.outputs,
                "normalization": {"mean": mean, "std": std},
                "associated_files": answer.get("associated_files", []),
            }
        records["int8"]["raw_pixels_in"] = uint8_input_is_raw_pixels(int8_entry, spec)
        copy_samples(samples, folder / "test_images")
        copy_template(
            "android/README.md",
            folder / "README.md",
            values={
                "name": name,
                "classes": str(len(manifest.labels)),
                "height": str(spec.height),
                "width": str(spec.width),
                "channels": str(spec.channels),
                "mean": _floats(mean),
                "std": _floats(std),
                "test_count": str(len(samples)),
                "labels": ", ".join(manifest.labels[:10])
                + (", ..." if len(manifest.labels) > 10 else ""),
            },
        )
        bundle_record(folder, TARGET, manifest, {"models": records})
    return Path(out_dir)


def _input_description(spec: InputSpec, entry: ArtifactEntry) -> str:
    dtype = str(entry.inputs[0].get("dtype", "float32")) if entry.inputs else "float32"
    if dtype == "uint8":
        return f"A {spec.height}x{spec.width} {spec.color} image, raw 0..255 bytes."
    return (
        f"A {spec.height}x{spec.width} {spec.color} image as float32, normalized with the "
        "mean and std in this metadata."
    )


def _floats(values: list[float]) -> str:
    return ", ".join(f"{v:g}f" for v in values)
