"""Benchmark every artifact in every runtime and write the report.

Per artifact and runtime: size, load time, first inference, batch-1 latency after
warm-up (p50/p90/p99/mean/std), throughput at a larger batch, memory where it can be
read, top-1/top-5 accuracy and parity with the SavedModel. LiteRT runs at each --threads
count, TF.js at each backend. A runtime that fails gives a failed row; the others go on.
Each --remote device runs the Raspberry Pi bundle over SSH: rows `litert@HOST`
(docs/remote.md).

Writes report.json (schema cnnx.report/1), report.md and PNG plots into
ARTIFACTS_DIR/report (or --out). Gates (--max-size-kb, --max-latency-ms,
--max-accuracy-drop, --baseline with --max-regression) exit 10 after the report is
written; drift past tolerance exits 9; a failed runtime row exits 8.

On a terminal, a progress bar names the row being measured, with an estimate of the
time left; none under --json or when stdout is a pipe or a file.
"""

from __future__ import annotations

import shlex
import sys
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
    Wait,
    split_names,
)
from toolkit.cli.progress import progress_bars

NAME = "bench"


def _counts(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in split_names(text))
    except ValueError:
        raise typer.BadParameter(
            f"--threads takes counts separated by commas, got {text!r}"
        ) from None


@handles_errors
def command(
    artifacts_dir: ArtifactsDir = None,
    runtimes: Annotated[
        str,
        typer.Option(
            "--runtimes",
            "-r",
            help="Runtimes: tf, litert, tfjs-node, browser, litertjs (litertjs-node on request).",
        ),
    ] = "tf,litert,onnxruntime,tfjs-node,browser,litertjs,onnxruntime-web",
    device: DeviceOption = Device.cpu,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print report.json on stdout.")
    ] = False,
    artifacts: ArtifactIds = None,
    threads: Annotated[str, typer.Option("--threads", help="LiteRT thread counts.")] = "1,2",
    backends: Backends = None,
    runs: Annotated[int, typer.Option("--runs", min=1, help="Timed batch-1 runs.")] = 100,
    warmup: Annotated[int, typer.Option("--warmup", min=0, help="Untimed runs first.")] = 10,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Batch size for throughput.")] = 32,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Folder of class subfolders [default: the manifest's test split]",
            show_default=False,
        ),
    ] = None,
    limit: Limit = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Report folder [default: ARTIFACTS_DIR/report]", show_default=False
        ),
    ] = None,
    plots: Annotated[bool, typer.Option("--plots/--no-plots", help="Write the PNG plots.")] = True,
    tolerances: Annotated[
        Path | None,
        typer.Option(
            "--tolerances",
            help="TOML or JSON file of parity tolerances (see cnnx verify).",
            show_default=False,
        ),
    ] = None,
    max_size_kb: Annotated[
        float | None,
        typer.Option("--max-size-kb", help="Gate: largest artifact size.", show_default=False),
    ] = None,
    max_latency_ms: Annotated[
        float | None,
        typer.Option("--max-latency-ms", help="Gate: largest batch-1 p50.", show_default=False),
    ] = None,
    max_accuracy_drop: Annotated[
        str | None,
        typer.Option(
            "--max-accuracy-drop",
            help="Gate: accuracy lost vs the SavedModel: 0.01 or 1pp.",
            show_default=False,
        ),
    ] = None,
    baseline: Annotated[
        Path | None,
        typer.Option(
            "--baseline", help="Gate: an earlier report.json to compare with.", show_default=False
        ),
    ] = None,
    max_regression: Annotated[
        float,
        typer.Option("--max-regression", min=0, help="Gate: percent p50 slower than --baseline."),
    ] = 20.0,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            min=1,
            help="Seconds one call to Node, the browser or a --remote device may take.",
            show_default=False,
        ),
    ] = None,
    remote: Annotated[
        list[str] | None,
        typer.Option(
            "--remote",
            metavar="URL",
            help="Also bench the Pi bundle on a device over SSH (repeatable): "
            "ssh://user@host:port/dir?python=PATH, all but host optional.",
            show_default=False,
        ),
    ] = None,
    ssh_config: Annotated[
        Path | None,
        typer.Option(
            "--ssh-config",
            metavar="FILE",
            help="ssh config file for --remote [default: yours, or CNNX_SSH_CONFIG]",
            show_default=False,
        ),
    ] = None,
    unsafe: Unsafe = False,
    wait: Wait = False,
) -> None:
    from toolkit.bench.gates import Gates
    from toolkit.bench.run import BenchConfig, bench
    from toolkit.cli.tables import render_bench
    from toolkit.core import locate
    from toolkit.manifest import load_manifest
    from toolkit.measure.tolerances import load_tolerances, parse_fraction
    from toolkit.remote.ssh import parse_remote
    from toolkit.runtimes import parse_runtimes

    folder = locate.artifacts_dir(artifacts_dir)
    load_manifest(folder)  # a bad manifest fails before anything else
    gates = Gates(
        max_size_kb=max_size_kb,
        max_latency_ms=max_latency_ms,
        max_accuracy_drop=None
        if max_accuracy_drop is None
        else parse_fraction(max_accuracy_drop, "--max-accuracy-drop", "max_accuracy_drop"),
        baseline=baseline,
        max_regression=max_regression,
    )
    config = BenchConfig(
        artifacts_dir=folder,
        artifacts=split_names(artifacts),
        runtimes=parse_runtimes(runtimes),
        device=device.value,
        threads=_counts(threads),
        backends=split_names(backends),
        runs=runs,
        warmup=warmup,
        batch=batch,
        data=data,
        limit=limit,
        overrides=(load_tolerances(tolerances),) if tolerances else (),
        gates=gates,
        out=out,
        plots=plots,
        timeout=timeout,
        remotes=tuple(parse_remote(url) for url in remote or ()),
        ssh_config=ssh_config,
        command=shlex.join(["cnnx", *sys.argv[1:]]),
        unsafe=unsafe,
        wait=wait,
    )
    with progress_bars(quiet=json_output) as progress:
        report = bench(config, progress)
    if json_output:
        import json

        typer.echo(json.dumps(report.to_dict(report.plots), indent=2))
    else:
        console.print(render_bench(report))
    report.raise_for_status()
