"""Bench rows from devices reached over SSH (`cnnx bench --remote`).

    rows = remote_rows(manifest, evalset, reference, RemoteBench(targets, ...))

Every --remote device gets the Raspberry Pi bundle (./bundles/rpi when it matches the
manifest, else a temporary build) and the evaluation images as PNG files, and runs
classify.py with its own Python and LiteRT once per bundle model and --threads count.
Each run is a row (runtime `litert@HOST`) whose scores are checked against the local
SavedModel's outputs under the same tolerances as the local rows. Nothing here raises
for a device: an unreachable host, a refused key, a missing LiteRT, a timeout, a bundle
that cannot be built: each is a failed row with its reason, and the other rows go on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.errors import CnnxError, UsageError
from toolkit.manifest import Manifest
from toolkit.measure.evalset import EvalSet
from toolkit.measure.parity import check, compare
from toolkit.measure.rows import Row, Speed
from toolkit.measure.timing import LatencyStats
from toolkit.measure.tolerances import ToleranceOverrides, for_outputs, output_scale, tolerance_for
from toolkit.remote.device import RemoteResult, RemoteRun, run_on_device
from toolkit.remote.ssh import SshClient, SshTarget

RUNTIME = "litert"
# The Pi bundle's models and the artifacts they are (toolkit/packaging/rpi.py).
BUNDLE_MODELS = {"float32": "tflite_float32", "int8": "tflite_int8"}  # display order
LATENCY_SOURCE = "the device's time.perf_counter around set_tensor + invoke (classify.py)"


@dataclass(frozen=True)
class RemoteBench:
    """What the --remote devices run: bench's selection, thread counts, runs and limits."""

    targets: tuple[SshTarget, ...]
    ssh_config: Path | None = None  # another ssh config file for them
    artifacts: tuple[str, ...] = ()  # bench's --artifacts (empty: all)
    threads: tuple[int, ...] = (1, 2)
    runs: int = 100
    timeout: float | None = None
    overrides: tuple[ToleranceOverrides, ...] = ()
    flops: float | None = None  # per image, from the graph: each row's GFLOP/s (no % of
    # peak: the peak bench measures is this machine's, not the device's)

    def check(self, manifest: Manifest) -> None:
        """Fail before any work: a missing --ssh-config file, or no bundle model selected."""
        clients(self)
        remote_models(manifest, self.artifacts)


def remote_models(manifest: Manifest, selected: Sequence[str]) -> tuple[str, ...]:
    """The bundle models a device runs: those whose artifact is selected (all when none is).

    UsageError when --artifacts selects none of them (nothing could run there)."""
    chosen = tuple(
        model
        for model, artifact in BUNDLE_MODELS.items()
        if artifact in manifest.artifacts and (not selected or artifact in selected)
    )
    if not chosen:
        offered = selected or manifest.artifacts
        raise UsageError(
            "--remote runs the Raspberry Pi bundle's models (tflite_int8, tflite_float32), "
            f"and none is selected or exported (artifacts: {sorted(offered)})",
            "export them (cnnx export --to tflite --quantize int8 --io uint8, and float32) "
            "or add them to --artifacts",
        )
    return chosen


def clients(config: RemoteBench) -> list[SshClient]:
    """One ssh client per --remote; a bad --ssh-config fails here, before any work."""
    return [SshClient.for_target(target, config.ssh_config) for target in config.targets]


def remote_rows(
    manifest: Manifest, evalset: EvalSet, reference: np.ndarray, config: RemoteBench
) -> list[Row]:
    """Rows of every --remote device, in the order given; failed rows carry the reason."""
    from toolkit.remote.inputs import eval_folder, pi_bundle

    ssh = clients(config)
    models = remote_models(manifest, config.artifacts)
    recorded: dict[str, Any] = {}
    try:
        with (
            pi_bundle(manifest) as (bundle, _reused),
            eval_folder(evalset, manifest.input) as images,
        ):
            recorded = _recorded_accuracy(bundle)
            results = [
                run_on_device(
                    client.target,
                    bundle,
                    images,
                    models=models,
                    threads=config.threads,
                    runs=config.runs,
                    timeout=config.timeout,
                    client=client,
                )
                for client in ssh
            ]
    except CnnxError as error:  # no bundle, or images a device cannot be given
        reason = f"cannot prepare the device bench: {error.one_line()}"
        results = [RemoteResult(client.target, reason=reason) for client in ssh]
    rows = []
    for result in results:
        for model in models:
            for threads in config.threads:
                run = _find(result, model, threads)
                row = _row(manifest, result, model, threads, run, evalset, reference, config)
                row.runtime_info["remote"]["test_images_recorded_accuracy"] = recorded.get(model)
                rows.append(row)
    return rows


def _recorded_accuracy(bundle: Path) -> dict[str, Any]:
    """Each bundle model's accuracy on its test images, as packaging measured it here."""
    try:
        record = json.loads((bundle / "bundle.json").read_text(encoding="utf-8"))
        return {name: m.get("accuracy_test_images") for name, m in record["models"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _find(result: RemoteResult, model: str, threads: int) -> RemoteRun | None:
    return next((r for r in result.runs if r.model == model and r.threads == threads), None)


def _row(
    manifest: Manifest,
    result: RemoteResult,
    model: str,
    threads: int,
    run: RemoteRun | None,
    evalset: EvalSet,
    reference: np.ndarray,
    config: RemoteBench,
) -> Row:
    entry = manifest.artifact(BUNDLE_MODELS[model])
    runtime = f"{RUNTIME}@{result.target.name}"
    base: dict[str, Any] = {
        "artifact": entry.id,
        "runtime": runtime,
        "label": f"{runtime} x{threads}",
        "precision": entry.precision,
        "format": entry.format,
        "size": entry.size,
        "tolerance": for_outputs(tolerance_for(entry, *config.overrides), manifest, reference),
        "runtime_info": _info(result, model, threads, run),
        "seconds": run.seconds if run else 0.0,
    }
    if run is None or run.status != "ok" or run.scores is None:
        reason = result.reason or (run.reason if run else "") or "the device gave no result"
        return Row(**base, status="failed", reason=reason)
    if run.scores.shape != reference.shape:
        return Row(
            **base,
            status="failed",
            reason=f"{result.target.name}: scores of shape {run.scores.shape} for "
            f"{reference.shape} expected (the images or the model differ)",
        )
    ties = output_scale(manifest, reference) if evalset.generated else None
    metrics = compare(run.scores, reference, evalset.labels, ties)
    lat = run.latency
    latency = LatencyStats(
        runs=int(lat["runs"]),
        p50=float(lat["p50_ms"]),
        p90=float(lat["p90_ms"]),
        p99=float(lat["p99_ms"]),
        mean=float(lat["mean_ms"]),
        std=float(lat["std_ms"]),
        min=float(lat["min_ms"]),
        source=LATENCY_SOURCE,
    )
    checks = tuple(check(metrics, base["tolerance"]))
    return Row(
        **base,
        status="ok" if all(c.passed for c in checks) else "drift",
        metrics=metrics,
        checks=checks,
        speed=Speed(
            load_ms=run.load_ms,
            latency=latency,
            gflops=config.flops / (latency.p50 * 1e6) if config.flops and latency.p50 > 0 else None,
        ),
    )


def _info(result: RemoteResult, model: str, threads: int, run: RemoteRun | None) -> dict[str, Any]:
    """What the row's runtime was: the device and how it was reached."""
    target: SshTarget = result.target
    device = result.device
    return {
        "runtime": RUNTIME,
        "backend": "xnnpack",
        "device": "cpu",
        "threads": threads,
        "remote": {
            "host": target.name,
            "url": target.url,
            "bundle_model": model,
            "bundle_dir": result.remote_dirs.get("bundle"),
            "copied": list(result.copied),
            "ssh_seconds": round(run.seconds, 3) if run else None,
            "test_images_accuracy": run.test_accuracy if run else None,
        },
        "details": {
            "machine": device.machine if device else None,
            "cpu": device.cpu if device else None,
            "cores": device.cores if device else None,
            "os": device.os if device else None,
            "python": device.python if device else None,
            "litert": device.litert if device else None,
            "numpy": device.numpy if device else None,
        },
    }
