"""cnnx as a Python library: export, verify, bench and load, as four calls.

    from toolkit import api

    manifest = api.export(model, "artifacts", data="images/")   # a keras.Model or a path
    report = api.verify("artifacts")                             # every artifact, every runtime
    speed = api.bench("artifacts", runtimes=("tf", "litert"))
    with api.load("artifacts", "tflite_int8") as predictor:
        scores = predictor.predict(picture)                      # raw uint8 HxWxC, any size

Each call builds the same request the matching `cnnx` command builds and calls the same
library function (toolkit/export/artifacts.py, verify.py, bench.py), so a call and the command
with the same options write the same artifacts and measure the same figures. Nothing
here prints or exits: bad input raises the typed errors of toolkit/errors.py (each with
the exit code the command would give); results are frozen dataclasses with `to_dict()`.

Drift past a tolerance is a result, not an exception: read `report.ok`, or call
`report.raise_for_failures()` (verify) / `report.raise_for_status()` (bench) to raise
what the command would exit with. docs/python-api.md has a worked example.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.errors import UsageError

if TYPE_CHECKING:
    from toolkit.bench.run import BenchReport
    from toolkit.manifest import Manifest
    from toolkit.measure.tolerances import ToleranceOverrides
    from toolkit.measure.verify import VerifyReport
    from toolkit.predictor import Predictor
    from toolkit.sources.preprocessing import Preprocessing

PathLike = str | os.PathLike[str]
Names = str | Sequence[str]

__all__ = ["bench", "export", "load", "verify"]


def export(
    model_or_path: Any,
    out: PathLike,
    *,
    to: str = "all",
    quantize: str | None = None,
    data: PathLike | None = None,
    labels: PathLike | Sequence[str] | None = None,
    preprocess: str | Mapping[str, Any] | Preprocessing | None = None,
    tfjs_quantize: str | None = None,
    io: str = "uint8",
    calibration_data: PathLike | None = None,
    eval_data: PathLike | None = None,
    calibration_samples: int = 300,
    samples: int = 20,
    float_fallback: Names = (),
    debug_quant: bool = False,
    force: bool = False,
    unsafe: bool = False,
    min_agreement: float | str | None = None,
    max_accuracy_drop: float | str | None = None,
    gpu_answer: bool = False,
    target: str | None = None,
) -> Manifest:
    """Export a model into the artifacts folder `out`; returns its manifest.

    `model_or_path` is an in-memory `keras.Model` (Keras 3 or tf_keras, built: its input
    shape known) or what `cnnx export --model` takes: a run folder, a `.keras` or `.h5`
    file, a SavedModel folder. The other arguments are the command's options:

    - `to`: "tflite", "tfjs", "onnx", "savedmodel" or "all"; `quantize`: "none",
      "float16", "dynamic", "int8", "int16x8" (None: every precision), or "auto" with
      `to="tflite"` or `to="onnx"`: the fastest precision within the budget
      `min_agreement` / `max_accuracy_drop` (fractions, or "99%", "1pp"), run in
      `target` ("litert" or "rpi" for TFLite, "onnxruntime" for ONNX; None: the
      format's own runtime); `tfjs_quantize`, `io` as the flags.
    - `data`: a folder of your images, any size (class subfolders or flat); part of it
      calibrates full int8, the rest is recorded for verify and bench.
      `calibration_data` / `eval_data`: a folder for one role only.
    - `labels`: the class names in output order, as a list or a file.
    - `preprocess`: how the model was fed, a keras.applications mode ("unit",
      "symmetric", "imagenet", "caffe"), or a mapping of the flags' values
      ({"scale": 1/255}, {"mean": [...], "std": [...]}, "color", "resize", "crop").
    - `gpu_answer`: record LiteRT's GPU accelerator's answer on each new .tflite in the
      manifest (`--gpu-answer`).

    Raises UsageError (2), PathError (3), ModelError (4), DataError (5), ExportError (6),
    ResourceError (11), as `cnnx export` exits.
    """
    from toolkit.autoquant.search import export as run_export
    from toolkit.export.request import ExportRequest

    model, described = _model(model_or_path)
    request = ExportRequest(
        model=model,
        to=to,
        quantize=quantize,
        tfjs_quantize=tfjs_quantize,
        out=Path(out),
        io=io,
        calibration_samples=calibration_samples,
        calibration_data=_path(calibration_data),
        data=_path(data),
        eval_data=_path(eval_data),
        debug_quant=debug_quant,
        float_fallback=_names(float_fallback, "float_fallback"),
        force=force,
        samples=samples,
        preprocessing=_preprocessing(preprocess),
        labels_file=_labels(labels),
        unsafe=unsafe,
        min_agreement=_fraction(min_agreement, "min_agreement"),
        max_accuracy_drop=_fraction(max_accuracy_drop, "max_accuracy_drop"),
        gpu_answer=gpu_answer,
        target=target,
        command=_call("export", described, repr(str(out)), to=to, quantize=quantize, data=data),
    )
    return run_export(request)


def verify(
    artifacts: PathLike,
    *,
    data: PathLike | None = None,
    runtimes: Names | None = None,
    tolerances: PathLike | Mapping[str, Any] | None = None,
    artifact_ids: Names = (),
    limit: int | None = None,
    backends: Names = (),
    device: str = "cpu",
    min_reference_accuracy: float | str | None = None,
    reference_kernels: bool = False,
    timeout: float | None = None,
) -> VerifyReport:
    """Every artifact of the folder in every runtime against the SavedModel, as
    `cnnx verify`. `runtimes`: default the command's (tf, litert, tfjs-node); `data`: a
    folder of images (default: what export recorded);
    `tolerances`: a TOML/JSON file or a mapping of the same shape ({"min_agreement":
    0.99}, {"int8": {"min_agreement": "97%"}}, {"tflite_int8": {...}});
    `reference_kernels`: also run TFLite on LiteRT's reference kernels (`report.witnesses`
    says whether a drift comes from the conversion or the optimized kernels).

    Returns the report whatever drifted (`report.ok`, `report.raise_for_failures()`);
    raises PathError / ArtifactError for a missing or damaged folder, UsageError for a
    bad option, DataError for unusable images.
    """
    from toolkit.manifest import load_manifest
    from toolkit.measure.verify import VERIFY_RUNTIMES, VerifyConfig
    from toolkit.measure.verify import verify as run_verify

    folder = Path(artifacts)
    manifest = load_manifest(folder)
    config = VerifyConfig(
        artifacts_dir=folder,
        artifacts=_names(artifact_ids, "artifact_ids"),
        runtimes=_runtimes(runtimes, VERIFY_RUNTIMES),
        data=_path(data),
        limit=limit,
        device=device,
        backends=_names(backends, "backends"),
        overrides=_overrides(tolerances),
        min_reference_accuracy=_fraction(
            min_reference_accuracy, "min_reference_accuracy", "min_agreement"
        ),
        reference_kernels=reference_kernels,
        timeout=timeout,
    )
    return run_verify(config, manifest)


def bench(
    artifacts: PathLike,
    *,
    runtimes: Names | None = None,
    artifact_ids: Names = (),
    threads: Sequence[int] = (1, 2),
    backends: Names = (),
    runs: int = 100,
    warmup: int = 10,
    batch: int = 32,
    data: PathLike | None = None,
    limit: int | None = None,
    tolerances: PathLike | Mapping[str, Any] | None = None,
    device: str = "cpu",
    out: PathLike | None = None,
    write: bool = True,
    plots: bool = True,
    timeout: float | None = None,
) -> BenchReport:
    """Latency, throughput, memory, size, accuracy and parity of every artifact in every
    runtime configuration, as `cnnx bench` (`runtimes` default: the command's). With
    `write` (the default) the report (report.json, report.md, plots) goes to `out`
    (default ARTIFACTS/report) as the command writes it; `write=False` measures only.

    Returns the report whatever drifted (`report.raise_for_status()` raises what the
    command exits with); raises the typed errors for bad input.
    """
    from toolkit.bench.run import BENCH_RUNTIMES, BenchConfig, run_bench
    from toolkit.bench.run import bench as run_and_write

    folder = Path(artifacts)
    config = BenchConfig(
        artifacts_dir=folder,
        artifacts=_names(artifact_ids, "artifact_ids"),
        runtimes=_runtimes(runtimes, BENCH_RUNTIMES),
        device=device,
        threads=tuple(_count(t) for t in threads),
        backends=_names(backends, "backends"),
        runs=runs,
        warmup=warmup,
        batch=batch,
        data=_path(data),
        limit=limit,
        overrides=_overrides(tolerances),
        out=_path(out),
        plots=plots,
        timeout=timeout,
        command=_call("bench", repr(str(artifacts)), runtimes=runtimes, runs=runs),
    )
    return run_and_write(config) if write else run_bench(config)


def load(
    artifacts: PathLike,
    artifact_id: str,
    *,
    runtime: str | None = None,
    threads: int | None = None,
    backend: str | None = None,
    device: str = "cpu",
    timeout: float | None = None,
) -> Predictor:
    """One artifact in one runtime (default: tf for the SavedModel, litert for TFLite,
    tfjs-node for TF.js; "browser" runs TF.js in headless Chromium). Its `predict(images)`
    takes raw uint8 pictures of any size and applies the recorded preprocessing.
    Close it, or use it in a `with` block."""
    from toolkit.predictor import Predictor

    options: dict[str, Any] = {"device": device}
    for key, value in (("threads", threads), ("backend", backend), ("timeout", timeout)):
        if value is not None:
            options[key] = value
    return Predictor.open(Path(artifacts), artifact_id, runtime, **options)


# --- from Python values to the request the command builds --------------------------


def _model(value: Any) -> tuple[Any, str]:
    """(what ExportRequest.model takes, how the manifest's command names it)."""
    if isinstance(value, str | os.PathLike):
        return Path(value), repr(str(value))
    if value is None:
        return None, "None"  # the last run under ./runs, as the command's default
    if callable(value) and hasattr(value, "layers"):  # a Keras model, built or not
        return value, f"<keras model {getattr(value, 'name', '')!r}>"
    raise UsageError(
        f"model_or_path must be a keras.Model or a path, got {type(value).__name__}",
        "pass the model object, or a run folder, .keras, .h5 or SavedModel path",
    )


def _labels(value: PathLike | Sequence[str] | None) -> Path | tuple[str, ...] | None:
    """A labels file, or the names themselves (read_labels checks either)."""
    if value is None or isinstance(value, str | os.PathLike):
        return _path(value)
    return tuple(value)


def _call(name: str, *args: str, **options: Any) -> str:
    """How the manifest and the report name the call that made them (their `command`)."""
    given = [
        f"{key}={os.fspath(value) if isinstance(value, os.PathLike) else value!r}"
        for key, value in options.items()
        if value is not None
    ]
    return f"toolkit.api.{name}({', '.join([*args, *given])})"


def _path(value: PathLike | None) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, str | os.PathLike):
        raise UsageError(f"expected a path, got {type(value).__name__}: {value!r}")
    return Path(value)


def _names(value: Names, what: str) -> tuple[str, ...]:
    """'a, b' or ['a', 'b'] -> ('a', 'b')."""
    items = value.split(",") if isinstance(value, str) else list(value)
    if not all(isinstance(item, str) for item in items):
        raise UsageError(f"{what} takes names, got {value!r}")
    return tuple(item.strip() for item in items if item.strip())


def _runtimes(value: Names | None, default: tuple[str, ...]) -> tuple[str, ...]:
    from toolkit.runtimes import parse_runtimes

    return parse_runtimes(",".join(_names(default if value is None else value, "runtimes")))


def _fraction(value: float | str | None, name: str, kind: str = "") -> float | None:
    """0.99, "99%" or "1pp" as a fraction (None stays None), checked as the flags are."""
    from toolkit.measure.tolerances import parse_fraction

    return None if value is None else parse_fraction(value, name, kind or name)


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"threads takes whole numbers, got {value!r}")
    return value


def _overrides(value: PathLike | Mapping[str, Any] | None) -> tuple[ToleranceOverrides, ...]:
    from toolkit.measure.tolerances import load_tolerances, tolerances_from_mapping

    if value is None:
        return ()
    if isinstance(value, Mapping):
        return (tolerances_from_mapping(dict(value), "tolerances"),)
    return (load_tolerances(Path(value)),)


def _preprocessing(value: Any) -> Preprocessing | None:
    from toolkit.sources.preprocessing import Preprocessing, parse_number, parse_numbers

    if value is None or isinstance(value, Preprocessing):
        return value
    if isinstance(value, str):
        return Preprocessing(preset=value)
    if not isinstance(value, Mapping):
        raise UsageError(
            f"preprocess takes a preset name or a mapping, got {type(value).__name__}",
            "e.g. 'imagenet' or {'scale': 1/255}",
        )
    known = ("preset", "scale", "offset", "mean", "std", "color", "resize", "crop")
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise UsageError(f"preprocess has unknown keys {unknown}", f"known: {', '.join(known)}")

    def numbers(key: str) -> tuple[float, ...] | None:
        given = value.get(key)
        if given is None or isinstance(given, str):
            return parse_numbers(given, key)
        if isinstance(given, int | float):
            return (float(given),)
        return tuple(parse_number(v, key) for v in given)

    scale, offset = value.get("scale"), value.get("offset")
    color = value.get("color")
    return Preprocessing(
        preset=value.get("preset"),
        scale=None if scale is None else parse_number(scale, "scale"),
        offset=None if offset is None else parse_number(offset, "offset"),
        mean=numbers("mean"),
        std=numbers("std"),
        color=None if color is None else str(color).upper(),
        resize=value.get("resize"),
        crop=value.get("crop"),
    )
