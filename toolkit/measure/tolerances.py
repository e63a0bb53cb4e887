"""Tolerances: the parity limits of each artifact and where they come from.

Limits are fractions (0.995 is 99.5%, a drop of 0.01 is one percentage point), resolved
per artifact, later wins: the artifact's default (its row in exporters/registry.py, the
one place defaults are defined), the manifest entry's `tolerance`, a tolerances file (by
precision, then by artifact id), the command-line flags (for all, then `PRECISION=VALUE`
or `ID=VALUE`). docs/verify.md has the details.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from exporters import registry
from toolkit.core.limits import MAX_JSON_DEPTH, json_depth, read_json, read_text
from toolkit.errors import UsageError
from toolkit.manifest import ArtifactEntry, Manifest

REFERENCE_ID = registry.REFERENCE_ID  # flags may name the reference like any artifact id
PRECISIONS = registry.PRECISIONS  # names a flag or a file may key limits by


@dataclass(frozen=True)
class Tolerance:
    """Limits for one artifact; None leaves a metric unchecked."""

    min_agreement: float | None = None  # top-1 agreement with the reference, 0..1
    max_abs: float | None = None  # largest |artifact - reference| over all outputs
    max_mean_abs: float | None = None
    min_cosine: float | None = None  # mean over rows
    max_accuracy_drop: float | None = None  # reference accuracy - artifact accuracy, 0..1

    def merged(self, overrides: Mapping[str, Any], where: str) -> Tolerance:
        known = {f.name for f in fields(self)}
        values: dict[str, float | None] = {}
        for key, value in overrides.items():
            if key not in known:
                raise UsageError(
                    f"unknown tolerance {key!r} in {where}", f"known: {', '.join(sorted(known))}"
                )
            values[key] = None if value is None else parse_fraction(value, f"{key} in {where}", key)
        return replace(self, **values)

    def to_dict(self) -> dict[str, float | None]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def default_tolerance(artifact_id: str, runtime: str | None = None) -> Tolerance:
    """The registry's default for an artifact id (a fallback for ids it does not know);
    a GPU runtime's rows take the artifact's GPU limits."""
    return Tolerance().merged(
        registry.default_tolerance(artifact_id, runtime), f"the default of {artifact_id}"
    )


def parse_fraction(value: Any, where: str, key: str = "") -> float:
    """A number, or text like '0.995', '99.5%' or '1pp' (percent and points become fractions)."""
    if isinstance(value, bool):
        raise UsageError(f"{where} must be a number, got {value!r}")
    if isinstance(value, int | float):
        number = float(value)
    else:
        text = str(value).strip().lower()
        scale = 1.0
        for suffix in ("pp", "%"):
            if text.endswith(suffix):
                text, scale = text[: -len(suffix)].strip(), 0.01
        try:
            number = float(text) * scale
        except ValueError:
            raise UsageError(
                f"{where} must be a number, got {value!r}", "e.g. 0.995, 99.5% or 1pp"
            ) from None
    if not math.isfinite(number) or number < 0:
        raise UsageError(f"{where} must be a finite number >= 0, got {value!r}")
    if key in ("min_agreement", "min_cosine", "max_accuracy_drop") and number > 1:
        raise UsageError(
            f"{where} is a fraction of 1, got {value!r}", f"write {number / 100:g} or {number:g}%"
        )
    return number


@dataclass(frozen=True)
class ToleranceOverrides:
    """User overrides: for every artifact, by precision, by artifact id (later wins)."""

    every: dict[str, Any] = field(default_factory=dict)
    by_precision: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_artifact: dict[str, dict[str, Any]] = field(default_factory=dict)


def tolerance_for(
    entry: ArtifactEntry, *layers: ToleranceOverrides, runtime: str | None = None
) -> Tolerance:
    """The tolerance of one artifact (in `runtime`): defaults, manifest entry, then each
    override layer."""
    recorded = entry.tolerance
    if runtime in registry.GPU_RUNTIMES:
        # The manifest records the CPU limits an export applied; a GPU row keeps only
        # what someone changed there from the CPU default.
        cpu = registry.default_tolerance(entry.id)
        recorded = {k: v for k, v in recorded.items() if cpu.get(k, None) != v}
    tolerance = default_tolerance(entry.id, runtime).merged(
        recorded, f"the manifest entry {entry.id!r}"
    )
    for layer in layers:
        tolerance = tolerance.merged(layer.every, "the overrides")
        tolerance = tolerance.merged(layer.by_precision.get(entry.precision, {}), entry.precision)
        tolerance = tolerance.merged(layer.by_artifact.get(entry.id, {}), entry.id)
    return tolerance


def for_outputs(tolerance: Tolerance, manifest: Manifest, reference: np.ndarray) -> Tolerance:
    """The absolute limits of a head that gives logits, scaled to the range of its outputs.

    Default limits are set for probabilities (in [0, 1]); a logits head (recorded by the
    export in the manifest's source) spans far more, and float rounding grows with it.
    """
    factor = output_scale(manifest, reference)
    if factor == 1.0:
        return tolerance
    return replace(
        tolerance,
        max_abs=None if tolerance.max_abs is None else tolerance.max_abs * factor,
        max_mean_abs=None if tolerance.max_mean_abs is None else tolerance.max_mean_abs * factor,
    )


def output_scale(manifest: Manifest, reference: np.ndarray) -> float:
    """The span of the head's outputs: 1 for probabilities and scores (in [0, 1]), the
    range of the reference's outputs (at least 1) for a logits head."""
    kind = (manifest.source.get("output") or {}).get("kind")
    if kind != "logits" or not np.asarray(reference).size:
        return 1.0
    return max(1.0, float(np.max(reference) - np.min(reference)))


def parse_flag_values(
    key: str, values: Iterable[str], known_ids: Iterable[str] = ()
) -> ToleranceOverrides:
    """`--min-agreement 0.99 --min-agreement int8=0.97 --min-agreement tflite_int8=96%`."""
    ids = set(known_ids)
    every: dict[str, Any] = {}
    by_precision: dict[str, dict[str, Any]] = {}
    by_artifact: dict[str, dict[str, Any]] = {}
    flag = "--" + key.replace("_", "-")
    for raw in values:
        name, sep, value = str(raw).partition("=")
        if not sep:
            every[key] = parse_fraction(name, flag, key)
            continue
        name = name.strip()
        number = parse_fraction(value, f"{flag} {name}", key)
        if name in PRECISIONS:
            by_precision.setdefault(name, {})[key] = number
        elif name in ids or "_" in name or name == REFERENCE_ID:
            by_artifact.setdefault(name, {})[key] = number
        else:
            raise UsageError(
                f"{flag} {raw!r}: {name!r} is neither a precision nor an artifact id",
                f"precisions: {', '.join(PRECISIONS)}",
            )
    return ToleranceOverrides(every, by_precision, by_artifact)


def load_tolerances(path: Path) -> ToleranceOverrides:
    """A TOML or JSON file: top-level keys are tolerance names (for all), precisions or
    artifact ids, the latter two mapping to tables of tolerance names."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        data = read_json(path, "tolerances file", UsageError)
    else:
        text = read_text(path, "tolerances file", UsageError)
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise UsageError(f"tolerances file {path} is not valid TOML: {error}") from None
        except RecursionError:
            raise UsageError(f"tolerances file {path} is nested too deeply") from None
        if json_depth(data) > MAX_JSON_DEPTH:
            raise UsageError(f"tolerances file {path} is nested too deeply")
    return tolerances_from_mapping(data, f"tolerances file {path}")


def tolerances_from_mapping(data: Any, where: str) -> ToleranceOverrides:
    """The overrides of a tolerances file's table (also what toolkit.api takes as a dict):
    tolerance names for all, or precisions and artifact ids mapping to tables of them."""
    if not isinstance(data, Mapping):
        raise UsageError(f"{where} must hold a table, got {type(data).__name__}")
    known = {f.name for f in fields(Tolerance)}
    overrides = ToleranceOverrides()
    for key, value in data.items():
        place = f"{where} [{key}]"
        if key in known:
            overrides.every[key] = parse_fraction(value, place, key)
        elif isinstance(value, Mapping):
            table = Tolerance().merged(value, place).to_dict()  # validates names and values
            table = {k: v for k, v in table.items() if k in value}
            target = overrides.by_precision if key in PRECISIONS else overrides.by_artifact
            target[key] = table
        else:
            raise UsageError(
                f"{where}: {key!r} is neither a tolerance name nor a table",
                f"tolerance names: {', '.join(sorted(known))}",
            )
    return overrides
