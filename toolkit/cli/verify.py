"""Check every artifact against the SavedModel on the same images; exit 9 on drift.

For each artifact and runtime: top-1 agreement, max and mean absolute error, cosine
similarity, and accuracy and its drop when labels are known. Default tolerances by
precision: float32 max abs 1e-4 and 100% agreement; float16 and quantized TF.js 99.5%;
dynamic 99%; int8 98% and at most one point of accuracy lost. Values are fractions
(0.995) or percent/points (99.5%, 1pp); give VALUE for every artifact or
PRECISION=VALUE / ID=VALUE for some. The whole table is printed before the exit.

On a terminal, a progress bar names the row being run, with an estimate of the time
left, and a second one counts the row's pictures; none under --json or when stdout is a
pipe or a file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from toolkit.cli.common import console, handles_errors
from toolkit.cli.options import (
    ArtifactIds,
    ArtifactsDir,
    Backends,
    Device,
    DeviceOption,
    Limit,
    Unsafe,
    split_names,
)
from toolkit.cli.progress import progress_bars

NAME = "verify"


@handles_errors
def command(
    artifacts_dir: ArtifactsDir = None,
    runtimes: Annotated[
        str,
        typer.Option(
            "--runtimes",
            "-r",
            help="Runtimes to verify in: tf, litert, tfjs-node, browser, litertjs, litertjs-node.",
        ),
    ] = "tf,litert,onnxruntime,tfjs-node",
    artifacts: ArtifactIds = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Folder of class subfolders to verify on [default: the manifest's test split]",
            show_default=False,
        ),
    ] = None,
    limit: Limit = None,
    min_agreement: Annotated[
        list[str] | None,
        typer.Option(
            "--min-agreement", help="Top-1 agreement floor: 0.99, 99%, int8=0.97 (repeatable)."
        ),
    ] = None,
    max_abs: Annotated[
        list[str] | None,
        typer.Option(
            "--max-abs", help="Max absolute output error: 1e-4, float16=1e-2 (repeatable)."
        ),
    ] = None,
    max_accuracy_drop: Annotated[
        list[str] | None,
        typer.Option(
            "--max-accuracy-drop", help="Accuracy lost: 0.01, 1pp, int8=2pp (repeatable)."
        ),
    ] = None,
    tolerances: Annotated[
        Path | None,
        typer.Option(
            "--tolerances",
            help="TOML or JSON file of tolerances by precision or artifact id.",
            show_default=False,
        ),
    ] = None,
    min_reference_accuracy: Annotated[
        str | None,
        typer.Option(
            "--min-reference-accuracy",
            help="Floor of the SavedModel's own accuracy [default: clearly above chance].",
            show_default=False,
        ),
    ] = None,
    backends: Backends = None,
    device: DeviceOption = Device.cpu,
    reference_kernels: Annotated[
        bool,
        typer.Option(
            "--reference-kernels",
            help="Also run each TFLite artifact on LiteRT's reference kernels and say whether "
            "a drift comes from the conversion or from the optimized (XNNPACK) kernels.",
        ),
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the results as JSON on stdout.")
    ] = False,
    unsafe: Unsafe = False,
) -> None:
    from toolkit.cli.tables import render_verify
    from toolkit.core import locate
    from toolkit.manifest import load_manifest
    from toolkit.measure.tolerances import load_tolerances, parse_flag_values, parse_fraction
    from toolkit.measure.verify import VerifyConfig, verify
    from toolkit.runtimes import parse_runtimes

    folder = locate.artifacts_dir(artifacts_dir)
    manifest = load_manifest(folder)
    ids = tuple(manifest.artifacts)
    layers = [load_tolerances(tolerances)] if tolerances else []
    for key, values in (
        ("min_agreement", min_agreement),
        ("max_abs", max_abs),
        ("max_accuracy_drop", max_accuracy_drop),
    ):
        if values:
            layers.append(parse_flag_values(key, values, ids))
    config = VerifyConfig(
        artifacts_dir=folder,
        artifacts=split_names(artifacts),
        runtimes=parse_runtimes(runtimes),
        data=data,
        limit=limit,
        device=device.value,
        backends=split_names(backends),
        overrides=tuple(layers),
        min_reference_accuracy=None
        if min_reference_accuracy is None
        else parse_fraction(min_reference_accuracy, "--min-reference-accuracy", "min_agreement"),
        reference_kernels=reference_kernels,
        unsafe=unsafe,
    )
    with progress_bars(quiet=json_output) as progress:
        report = verify(config, manifest, progress)
    if json_output:
        import json

        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        console.print(render_verify(report))
        for witness in report.witnesses:
            console.print(f"kernels: {witness.line()}", highlight=False)
    report.raise_for_failures()
