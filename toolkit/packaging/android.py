"""The Android bundle: float32 and int8 (uint8 I/O) models carrying TFLite metadata.

The metadata (normalization mean/std derived from the InputSpec, the labels file packed
into the model, input and output descriptions) is what MediaPipe Tasks, the TFLite Task
Library and Android Studio's ML binding read, so an app needs no preprocessing code.

    android/
      models/model_float32.tflite  models/model_int8.tflite   with metadata
      models/model_float32.onnx    when exported: for ONNX Runtime Mobile (no metadata)
      labels.txt  README.md (Gradle dependencies, Kotlin for ImageClassifier and Interpreter)
      test_images/ (ground_truth.json)  bundle.json

The metadata is written in process with MediaPipe's metadata writers
(android_metadata.py; MediaPipe comes with the `android` extra).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from toolkit import __version__
from toolkit.core.progress import ProgressFn, no_progress
from toolkit.data.inputspec import InputSpec
from toolkit.errors import ArtifactError, ExportError
from toolkit.graph.gpu_readiness import GpuReadiness
from toolkit.manifest import ArtifactEntry, load_manifest, sha256_file
from toolkit.measure.gpu_answer import gpu_readiness, recorded
from toolkit.packaging import android_metadata
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
    spec_normalization,
    write_labels,
    writing_bundle,
)

TARGET = "android"
# The LiteRT AAR the README names: 1.4.0 is the first whose native libraries are aligned
# to 16 KB pages, which Google Play requires of apps targeting Android 15+ (2025-11-01).
LITERT_ANDROID = "1.4.0"
MODELS = {"float32": "tflite_float32", "int8": "tflite_int8"}
ONNX_MODEL = "onnx_float32"  # carried when exported, for ONNX Runtime Mobile
ONNX_FILE = "models/model_float32.onnx"
ONNX_SECTION = """
## ONNX Runtime Mobile

`{file}` is the same classifier as ONNX (opset {opset}, float32 `[N, {height}, {width},
{channels}]` NHWC, normalized as above, float32 probabilities out), verified against the
SavedModel in ONNX Runtime {version}. It carries no metadata: the app resizes and
normalizes (mean `{mean}`, std `{std}`) itself. In `app/build.gradle.kts`:

```kotlin
dependencies {{
    // the ONNX Runtime Mobile package of the release it was verified with
    implementation("com.microsoft.onnxruntime:onnxruntime-android:{version}")
}}
```

```kotlin
val env = OrtEnvironment.getEnvironment()
val session = env.createSession(assets.open("model_float32.onnx").readBytes())
val input = OnnxTensor.createTensor(env, floats, longArrayOf(1, {height}, {width}, {channels}))
val probabilities = (session.run(mapOf("image" to input))[0].value as Array<FloatArray>)[0]
```
"""


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
    progress: ProgressFn = no_progress,
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
    android_metadata.require_writers()  # fail before any work if MediaPipe is absent
    samples = read_samples(manifest)
    spec = manifest.input
    if spec.color == "BGR":
        # TFLite metadata has no field for the channel order: MediaPipe's ImageClassifier
        # would feed RGB and the model would see its colours swapped.
        raise ArtifactError(
            f"{manifest.path} records a BGR input; the Android bundle's metadata can only "
            "describe RGB (or gray) images",
            "the Raspberry Pi and web bundles follow the full input spec",
        )
    mean, std = spec_normalization(spec)
    name = str(manifest.source.get("name") or "cnnx image classifier")
    version = str(manifest.versions.get("cnnx") or __version__)

    stages = Stages(
        progress,
        TARGET,
        [*(f"metadata {variant}" for variant in models), "samples"],
        make_zip=make_zip,
    )
    with writing_bundle(Path(out_dir), force=force, make_zip=make_zip, stages=stages) as folder:
        (folder / "models").mkdir()
        write_labels(manifest.labels, folder / "labels.txt")
        records: dict[str, Any] = {}
        for variant, (entry, path) in models.items():
            stages.start(f"metadata {variant}")
            target = folder / "models" / path.name
            answer = android_metadata.write_classifier_metadata(
                path,
                target,
                android_metadata.ClassifierMetadata(
                    name=f"{name} ({variant})",
                    version=version,
                    description=(
                        f"Classifies a {spec.height}x{spec.width} {spec.color} image into "
                        f"{len(manifest.labels)} classes."
                    ),
                    author="cnnx",
                    input_description=_input_description(spec, entry),
                    output_description=(
                        f"Probabilities of the {len(manifest.labels)} classes in labels.txt."
                    ),
                    mean=tuple(mean),
                    std=tuple(std),
                    color=spec.color,
                    labels=tuple(manifest.labels),
                ),
            )
            packed = answer["associated_text"].get("labels.txt")
            if packed != manifest.labels:
                raise ExportError(
                    f"the metadata written into {target.name} carries labels {packed!r}, "
                    f"not the manifest's {manifest.labels!r}"
                )
            records[variant] = model_record(
                folder,
                f"models/{path.name}",
                entry,
                source_sha256=sha256_file(path),
                normalization={"mean": mean, "std": std},
                associated_files=answer["associated_files"],
            )
        records["int8"]["raw_pixels_in"] = uint8_input_is_raw_pixels(int8_entry, spec)
        gpu = {variant: _gpu_answer(entry, path) for variant, (entry, path) in models.items()}
        for variant, readiness in gpu.items():
            records[variant]["gpu"] = readiness.to_dict()
        onnx = carry_model(
            manifest, ONNX_MODEL, folder, ONNX_FILE, records, runtime="ONNX Runtime Mobile"
        )
        stages.start("samples")
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
                "litert_version": LITERT_ANDROID,
                "gpu_adapter": _adapter_name(gpu["float32"]),
                "gpu_float32": gpu["float32"].summary(),
                "gpu_int8": gpu["int8"].summary(),
                "labels": ", ".join(manifest.labels[:10])
                + (", ..." if len(manifest.labels) > 10 else ""),
                "onnx": ONNX_SECTION.format(
                    file=ONNX_FILE,
                    opset=onnx.details.get("opset", "?"),
                    version=onnx.details.get("versions", {}).get("onnxruntime", "?"),
                    height=spec.height,
                    width=spec.width,
                    channels=spec.channels,
                    mean=_floats(mean),
                    std=_floats(std),
                )
                if onnx is not None
                else "",
            },
        )
        bundle_record(folder, TARGET, manifest, models=records, samples=len(samples))
    return Path(out_dir)


def _gpu_answer(entry: ArtifactEntry, path: Path) -> GpuReadiness:
    """The GPU accelerator's answer on the model: the one recorded at export
    (`cnnx export --gpu-answer`), else asked here."""
    answer = recorded(entry) or gpu_readiness(path)
    return replace(answer, path=entry.path)


def _adapter_name(answer: GpuReadiness) -> str:
    """The adapter the accelerator ran on, or why the answer is a static reading."""
    if answer.adapter is None:
        return "no GPU adapter (a static reading of the op list)"
    software = ", a software Vulkan device" if answer.adapter.get("software") else ""
    return f"{answer.adapter['name']}{software}"


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
