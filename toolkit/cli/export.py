"""Export a model to TFLite, TF.js and ONNX, with a manifest of hashes, shapes and quantization.

--model takes a cnnx run folder, or the model you already have: a .keras or .h5 file
(any Keras) or a SavedModel folder (default: the last run under ./runs). The SavedModel,
the reference for every comparison, is always exported too.

--data DIR gives your images, any size: class subfolders (named by class or by index)
or a flat folder. They calibrate full int8 and are recorded as the evaluation images,
so cnnx verify and cnnx bench need no flags afterwards. Without images, full int8 is
skipped (with a line saying so) and everything else is made.

A model cnnx did not train needs its preprocessing: --preprocess names the
keras.applications modes (unit, symmetric, imagenet, caffe), --scale/--offset or
--mean/--std give numbers (1/255 works). A model whose first layers rescale is detected
and takes raw pixels. The spec in force is printed and recorded.

With no --quantize, every precision of the chosen formats is made: TFLite float32,
float16, dynamic and int8; TF.js float32, uint8, uint16 and float16 weights; ONNX
float32, float16 and int8 (static QDQ, calibrated like TFLite's int8). For TF.js,
--quantize maps to the nearest weight format (none: float32, float16: float16, dynamic
and int8: uint8); --tfjs-quantize picks one directly.

Re-exporting one format keeps the others; a folder holding another model's artifacts is
refused unless --force. --out never replaces what the export reads (the model, its run,
the images). One export writes a folder at a time: a second fails (exit 3) unless
--wait.

--gpu-answer asks LiteRT's GPU accelerator (on the Vulkan device it finds: a GPU, or
SwiftShader, the software driver) whether each new .tflite runs whole on it, which ops
it leaves on the CPU and how far its outputs are from the CPU's, and records the answer
in the manifest (`details.gpu`); cnnx info and the Android bundle then read it. It costs
a few seconds a file, so it is asked for, not done by default.

On a terminal, progress bars show the artifact being made, the calibration images read
and the steps of --quantize auto's search; none when stdout is a pipe or a file.
"""

from __future__ import annotations

import enum
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from exporters import registry
from exporters.base import IO_TYPES
from toolkit.cli.common import console, err_console, handles_errors
from toolkit.cli.options import Unsafe, Wait, split_names
from toolkit.cli.progress import progress_bars
from toolkit.data.inputspec import PRESETS
from toolkit.data.pixels import COLORS, CROPS, RESIZE_METHODS

if TYPE_CHECKING:
    from toolkit.export.request import ExportRequest
    from toolkit.manifest import Manifest

NAME = "export"


# Every choice comes from the table that owns it: the artifact table
# (exporters/registry.py: a new row with a new --quantize value is a new choice here
# without an edit), the exporters' I/O types, the presets and the pixel rule.
To = enum.StrEnum("To", [(v, v) for v in registry.TO_CHOICES])  # type: ignore[misc]
Quantize = enum.StrEnum("Quantize", [(v, v) for v in (*registry.QUANTIZE, "auto")])  # type: ignore[misc]
TfjsQuantize = enum.StrEnum("TfjsQuantize", [(v, v) for v in registry.TFJS_QUANTIZE])  # type: ignore[misc]
IoType = enum.StrEnum("IoType", [(v, v) for v in IO_TYPES])  # type: ignore[misc]
Preset = enum.StrEnum("Preset", [(v, v) for v in PRESETS])  # type: ignore[misc]
# --color names the channel order of 3-channel pictures; GRAY follows from a 1-channel model.
Color = enum.StrEnum("Color", [(c.lower(), c.lower()) for c in COLORS if c != "GRAY"])  # type: ignore[misc]
Resize = enum.StrEnum("Resize", [(v, v) for v in RESIZE_METHODS])  # type: ignore[misc]
Crop = enum.StrEnum("Crop", [(v, v) for v in CROPS])  # type: ignore[misc]


@handles_errors
def command(
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            "-m",
            help="Run folder, .keras, .h5 or SavedModel folder [default: last run in ./runs]",
            show_default=False,
        ),
    ] = None,
    to: Annotated[To, typer.Option("--to", help="Format(s) to export.")] = To(registry.ALL),
    quantize: Annotated[
        Quantize | None,
        typer.Option(
            "--quantize",
            "-q",
            help="One precision only, or auto: the fastest artifact of --to tflite or --to "
            "onnx within budget [default: every precision]",
            show_default=False,
        ),
    ] = None,
    tfjs_quantize: Annotated[
        TfjsQuantize | None,
        typer.Option("--tfjs-quantize", help="TF.js weight format, overriding --quantize."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Artifacts folder [default: ./artifacts]", show_default=False
        ),
    ] = None,
    io: Annotated[
        IoType,
        typer.Option("--io", help="int8 model's input/output dtype (uint8 takes camera bytes)."),
    ] = IoType("uint8"),
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            "-d",
            help="Your images (any size): class subfolders, by class name or index, or a flat "
            "folder. They calibrate int8 and evaluate (apart), and are recorded for verify.",
        ),
    ] = None,
    calibration_data: Annotated[
        Path | None,
        typer.Option(
            "--calibration-data", help="A folder of images (any size) that only calibrates int8."
        ),
    ] = None,
    eval_data: Annotated[
        Path | None,
        typer.Option("--eval-data", help="A folder of images (any size) that only evaluates."),
    ] = None,
    calibration_samples: Annotated[
        int,
        typer.Option("--calibration-samples", min=1, help="Images calibrating int8, at most."),
    ] = 300,
    debug_quant: Annotated[
        bool,
        typer.Option("--debug-quant", help="Write a per-layer int8 error table beside the model."),
    ] = False,
    float_fallback: Annotated[
        str | None,
        typer.Option(
            "--float-fallback",
            help="Keep these layers in float in the int8 model: op types (SIN,CONV_2D) or "
            "tensor names from --debug-quant, comma-separated; or auto / auto:N (up to N "
            "layers, each kept only if it measurably improves agreement).",
        ),
    ] = None,
    min_agreement: Annotated[
        str | None,
        typer.Option(
            "--min-agreement",
            help="--quantize auto: top-1 agreement floor for every candidate (0.99, 99%) "
            "[default: each artifact's verify tolerance].",
            show_default=False,
        ),
    ] = None,
    max_accuracy_drop: Annotated[
        str | None,
        typer.Option(
            "--max-accuracy-drop",
            help="--quantize auto: accuracy lost, at most (0.01, 1pp).",
            show_default=False,
        ),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            "--target",
            help="--quantize auto: the runtime the candidates run in. --to tflite: litert "
            "(here, the default) or rpi (the emulated Raspberry Pi 4); --to onnx: "
            "onnxruntime (here, the default).",
            show_default=False,
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace a folder holding another model's artifacts.")
    ] = False,
    samples: Annotated[
        int, typer.Option("--samples", min=0, help="Test images written to samples/ as PNG.")
    ] = 20,
    preprocess: Annotated[
        Preset | None,
        typer.Option(
            "--preprocess",
            help="How the model was fed, as keras.applications' preprocess_input modes: unit "
            "(x/255), symmetric ([-1, 1], 'tf'), imagenet (mean/std, 'torch'), caffe (BGR, "
            "means subtracted) [default: found in the model, else none]",
            show_default=False,
        ),
    ] = None,
    scale: Annotated[
        str | None,
        typer.Option("--scale", help="Model input = pixels * scale + offset; 1/255 works."),
    ] = None,
    offset: Annotated[str | None, typer.Option("--offset", help="See --scale.")] = None,
    mean: Annotated[
        str | None, typer.Option("--mean", help="Model input = (pixels - mean) / std; e.g. 127.5")
    ] = None,
    std: Annotated[
        str | None, typer.Option("--std", help="See --mean; one value or one per channel.")
    ] = None,
    color: Annotated[
        Color | None,
        typer.Option(
            "--color", help="Channel order the model takes [default: rgb].", show_default=False
        ),
    ] = None,
    resize: Annotated[
        Resize | None,
        typer.Option(
            "--resize",
            help="How pictures of another size are resized [default: bilinear].",
            show_default=False,
        ),
    ] = None,
    crop: Annotated[
        Crop | None,
        typer.Option(
            "--crop",
            help="centre: crop to the model's aspect ratio before resizing [default: none].",
            show_default=False,
        ),
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(
            "--labels", help="Class names in output order: text (one per line), CSV or JSON."
        ),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option(
            "--output", help="The classification head of a model with several outputs (its name)."
        ),
    ] = None,
    gpu_answer: Annotated[
        bool,
        typer.Option(
            "--gpu-answer",
            help="Ask LiteRT's GPU accelerator about each new .tflite (fully accelerated, the "
            "ops it leaves on the CPU, its outputs against the CPU's) and record its answer in "
            "the manifest; some seconds an export on a software Vulkan device, in a child "
            "process. Without a Vulkan device: the static op-list reading, labelled so.",
        ),
    ] = False,
    unsafe: Unsafe = False,
    wait: Wait = False,
) -> None:
    """Export a model to TFLite / TF.js with a manifest; --to tflite --quantize int8 for int8."""
    from toolkit.export.request import ExportRequest
    from toolkit.sources.preprocessing import Preprocessing, parse_number, parse_numbers

    preprocessing = Preprocessing(
        preset=preprocess.value if preprocess else None,
        scale=None if scale is None else parse_number(scale, "--scale"),
        offset=None if offset is None else parse_number(offset, "--offset"),
        mean=parse_numbers(mean, "--mean"),
        std=parse_numbers(std, "--std"),
        color=color.value.upper() if color else None,
        resize=resize.value if resize else None,
        crop=crop.value if crop else None,
    )
    from toolkit.measure.tolerances import parse_fraction

    fallback = split_names(float_fallback)
    request = ExportRequest(
        model=model,
        to=to.value,
        quantize=quantize.value if quantize else None,
        tfjs_quantize=tfjs_quantize.value if tfjs_quantize else None,
        out=out,
        io=io.value,
        calibration_samples=calibration_samples,
        calibration_data=calibration_data,
        data=data,
        eval_data=eval_data,
        output=output,
        debug_quant=debug_quant,
        float_fallback=fallback,
        force=force,
        samples=samples,
        preprocessing=preprocessing if preprocessing.flags else None,
        labels_file=labels,
        unsafe=unsafe,
        min_agreement=None
        if min_agreement is None
        else parse_fraction(min_agreement, "--min-agreement", "min_agreement"),
        max_accuracy_drop=None
        if max_accuracy_drop is None
        else parse_fraction(max_accuracy_drop, "--max-accuracy-drop", "max_accuracy_drop"),
        target=target,
        wait=wait,
        gpu_answer=gpu_answer,
        command="cnnx " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["export"] else "",
    )
    from toolkit.autoquant.search import NothingPassed, export

    started = time.perf_counter()
    try:
        with progress_bars() as progress:
            manifest = export(request, progress)
    except NothingPassed as error:
        console.print(_decision_table(error.decision.to_dict()))
        raise
    seconds = time.perf_counter() - started
    _print(manifest, request, seconds)


def _print(manifest: Manifest, request: ExportRequest, seconds: float) -> None:
    from rich.table import Table

    from toolkit.measure.gpu_answer import recorded

    made = list(manifest.export.get("made") or [])
    decision = None
    if request.quantize == "auto":
        decided = [e for e in manifest.artifacts.values() if "quantize_auto" in e.details]
        latest = max(decided, key=lambda e: str(e.details.get("exported", "")))
        decision = latest.details["quantize_auto"]
    table = Table(title=f"Exported to {manifest.root}", title_justify="left")
    table.add_column("artifact", no_wrap=True)
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("input")
    table.add_column("output")
    for artifact_id in made:
        entry = manifest.artifact(artifact_id)
        table.add_row(artifact_id, _size(entry.size), _io(entry.inputs), _io(entry.outputs))
    console.print(table)
    for artifact_id in made:
        details = manifest.artifact(artifact_id).details
        recovery = details.get("fallback_recovery")
        if recovery:
            console.print(_fallback_line(details, recovery), highlight=False)
        check = details.get("calibration_check")
        if check and check.get("skipped") != "not asked for":
            from exporters.calibration_check import describe

            console.print(f"{artifact_id}: {describe(check)}", highlight=False)
        for table_name in details.get("debug_tables", []):
            console.print(f"per-layer int8 error: {manifest.root / 'tflite' / table_name}")
        gpu = recorded(manifest.artifact(artifact_id))
        if gpu is not None:
            console.print(f"{artifact_id} on the GPU: {gpu.summary()}", highlight=False)
            for note in gpu.notes:
                console.print(f"  {note}", highlight=False, markup=False, soft_wrap=True)
    if decision is not None:
        from toolkit.autoquant.tradeoff import tradeoff_files

        console.print(_decision_table(decision))
        console.print(f"winner: {decision['winner']}: {decision['reason']}", highlight=False)
        table_file, plot_file = tradeoff_files(decision)
        console.print(f"trade-off: {manifest.root / table_file}, {manifest.root / plot_file}")
    # Whole lines, wrapped by the terminal, not by rich: people grep them.
    console.print(
        f"input: {manifest.input.describe()}", highlight=False, markup=False, soft_wrap=True
    )
    for note in manifest.export.get("notes", []):
        console.print(note, highlight=False, markup=False, soft_wrap=True)
    for artifact_id, why in (manifest.export.get("skipped") or {}).items():
        console.print(
            f"skipped {artifact_id}: {why}", highlight=False, markup=False, soft_wrap=True
        )
    for warning in [*manifest.export.get("warnings", []), *manifest.warnings]:
        err_console.print(f"cnnx: warning: {warning}", markup=False)
    kept = sorted(set(manifest.artifacts) - set(made))
    if kept:
        console.print(f"kept from before: {', '.join(kept)}")
    console.print(f"manifest: {manifest.path} ({seconds:.1f} s)", highlight=False)


def _decision_table(decision: dict[str, Any]) -> Any:
    """The --quantize auto candidates with their figures."""
    from rich.table import Table

    from toolkit.autoquant.tradeoff import describe_budget

    table = Table(
        title=f"--quantize auto on {decision['images']} images of the {decision['on']}, "
        f"{decision['target']} x1, budget: {describe_budget(decision['budget'])}",
        title_justify="left",
    )
    for column in ("candidate", "result", "p50 ms", "size", "agree", "drop", "why not"):
        table.add_column(column, justify="left" if column in ("candidate", "why not") else "right")
    for row in decision["candidates"]:
        winner = row["candidate"] == decision["winner"]
        table.add_row(
            row["candidate"],
            "WINNER" if winner else row["status"],
            "-" if row["p50_ms"] is None else f"{row['p50_ms']:.3f}",
            _size(row["size"]),
            "-" if row["agreement"] is None else f"{row['agreement']:.1%}",
            "-" if row["accuracy_drop"] is None else f"{row['accuracy_drop']:.1%}",
            "; ".join(row["failed_checks"]),
        )
    return table


def _fallback_line(details: dict[str, Any], recovery: dict[str, Any]) -> str:
    """Before -> after of float fallback, or why plain int8 was kept."""
    plain, fixed = recovery["plain_int8"], recovery["with_fallback"]
    where = f"on {recovery['images']} {recovery['on']} images"
    if recovery.get("kept_plain_int8"):
        return (
            f"float fallback auto: kept plain int8 (agreement {plain['agreement']:.1%} {where}): "
            f"{recovery['stopped']}"
        )
    layers = details["float_fallback"]["ops"] + details["float_fallback"]["nodes"]
    line = (
        f"float fallback {', '.join(layers)}: "
        f"agreement {plain['agreement']:.1%} -> {fixed['agreement']:.1%}"
    )
    if "accuracy" in plain:
        line += f", accuracy {plain['accuracy']:.1%} -> {fixed['accuracy']:.1%}"
    line += f" ({where})"
    if recovery.get("stopped"):
        line += f"; stopped: {recovery['stopped']}"
    return line


def _size(size: int) -> str:
    return f"{size / 1024:.1f} KiB" if size < 1 << 20 else f"{size / (1 << 20):.2f} MiB"


def _io(tensors: list[dict[str, Any]]) -> str:
    if not tensors:
        return ""
    tensor = tensors[0]
    shape = "x".join("?" if d == -1 else str(d) for d in tensor["shape"])
    text = f"{tensor['dtype']} {shape}"
    quantization = tensor.get("quantization")
    if isinstance(quantization, dict):
        text += f" (scale {quantization['scale']:.3g}, zero {quantization['zero_point']})"
    return text
