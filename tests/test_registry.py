"""The artifact table (exporters/registry.py) walked row by row: every row is reachable
from the CLI, names a real exporter and runtimes, carries a valid default tolerance, and
everything that lists artifacts follows its order. A new row passes here or says what
it lacks; tests/test_export.py then exports every row for real."""

from __future__ import annotations

import inspect
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from exporters import registry
from exporters.registry import ALL, ARTIFACTS, FORMATS, ArtifactSpec
from tests.cli import cnnx
from toolkit.cli import export as export_cli
from toolkit.export.artifacts import ExportRequest, select_artifacts
from toolkit.manifest import ArtifactEntry
from toolkit.measure.parity import check, compare
from toolkit.measure.tolerances import PRECISIONS, Tolerance, parse_flag_values, tolerance_for
from toolkit.runtimes import RUNTIMES, get_runtime, runtimes_for

ROWS = [pytest.param(spec, id=spec.id) for spec in ARTIFACTS]


def _entry(spec: ArtifactSpec) -> ArtifactEntry:
    return ArtifactEntry(
        spec.id, spec.format, spec.precision, spec.runtime, spec.path, [], [], [], {}
    )


@pytest.mark.parametrize("spec", ROWS)
def test_the_cli_makes_every_row(spec: ArtifactSpec) -> None:
    made_by = []
    if spec.reference:
        made_by.append(("savedmodel-only", select_artifacts(spec.format, None, None)))
    for quantize in spec.quantize:
        made_by.append((quantize, select_artifacts(spec.format, quantize, None)))
        assert spec.id in select_artifacts(ALL, quantize, None)
    if spec.by_default:
        made_by.append(("default", select_artifacts(spec.format, None, None)))
        assert spec.id in select_artifacts(ALL, None, None)
    if spec.tfjs_quantize is not None:
        made_by.append(("tfjs", select_artifacts(spec.format, None, spec.tfjs_quantize)))
    assert made_by, f"{spec.id}: no --to/--quantize choice makes it"
    for choice, ids in made_by:
        assert spec.id in ids, (choice, ids)
        assert ids[0] == registry.REFERENCE_ID  # the reference comes with every export
        # One choice makes one artifact of each format: --quantize means "one precision".
        if choice != "default":
            formats = [registry.get(i).format for i in ids[1:]]
            assert len(formats) == len(set(formats)), ids
    for quantize in spec.quantize:
        ExportRequest(to=spec.format, quantize=quantize)  # the request accepts it too


@pytest.mark.parametrize("spec", ROWS)
def test_every_row_names_an_exporter_runtimes_and_a_valid_tolerance(spec: ArtifactSpec) -> None:
    function = registry.exporter(spec)
    assert list(inspect.signature(function).parameters) == ["saved_model_dir", "out_dir", "options"]
    assert spec.format in FORMATS and spec.precision in PRECISIONS
    assert not Path(spec.path).is_absolute() and ".." not in Path(spec.path).parts
    assert spec.runtimes and all(name in RUNTIMES for name in spec.runtimes)
    assert runtimes_for(_entry(spec)) == list(spec.runtimes)
    names = {f.name for f in fields(Tolerance)}
    assert spec.tolerance and set(spec.tolerance) <= names, spec.tolerance
    assert all(0 <= value <= 1 for value in spec.tolerance.values())
    # The default a run applies is the row's, defined nowhere else.
    assert tolerance_for(_entry(spec)) == Tolerance(**spec.tolerance)
    # Flags may key limits by this row's precision and by its id.
    by_precision = parse_flag_values("min_agreement", [f"{spec.precision}=0.5"], [spec.id])
    assert tolerance_for(_entry(spec), by_precision).min_agreement == 0.5
    by_id = parse_flag_values("min_agreement", [f"{spec.id}=0.25"], [spec.id])
    assert tolerance_for(_entry(spec), by_id).min_agreement == 0.25


def test_the_table_is_consistent() -> None:
    assert len(registry.IDS) == len(set(registry.IDS))
    assert len({spec.path for spec in ARTIFACTS}) == len(ARTIFACTS)
    assert [spec.id for spec in ARTIFACTS if spec.reference] == [registry.REFERENCE_ID]
    named = {name for fmt in FORMATS.values() for name in fmt.runtimes}
    assert named == set(RUNTIMES), "every runtime runs some format, every format a runtime"
    for name in RUNTIMES:
        assert get_runtime(name).formats
    assert set(registry.TO_CHOICES) == {*FORMATS, ALL}


def test_cli_choices_are_the_tables() -> None:
    assert [m.value for m in export_cli.To] == list(registry.TO_CHOICES)
    # --quantize auto chooses among the table's TFLite rows (toolkit/autoquant/search.py).
    assert [m.value for m in export_cli.Quantize] == [*registry.QUANTIZE, "auto"]
    assert [m.value for m in export_cli.TfjsQuantize] == list(registry.TFJS_QUANTIZE)
    result = cnnx("export", "--help", env={"COLUMNS": "200"})
    assert result.returncode == 0
    for choices in (registry.TO_CHOICES, registry.QUANTIZE, registry.TFJS_QUANTIZE):
        assert "|".join(choices) in result.output
    result = cnnx("export", "--quantize", "int4")
    assert result.returncode == 2 and "'int4' is not one of" in result.output


def test_listings_follow_the_table_order(tmp_path: Path) -> None:
    from toolkit.data.inputspec import InputSpec
    from toolkit.manifest import Manifest
    from toolkit.measure.matrix import selected_entries

    shuffled = list(reversed(ARTIFACTS))
    entries = {spec.id: _entry(spec) for spec in shuffled}
    entries["zz_newer"] = ArtifactEntry("zz_newer", "coreml", "float32", "x", "x", [], [], [], {})
    manifest = Manifest(root=tmp_path, input=InputSpec(4, 4, 3), labels=["a"], artifacts=entries)
    assert [e.id for e in selected_entries(manifest, ())] == [*registry.IDS, "zz_newer"]
    # An unknown id keeps a sane default tolerance and no runtime claims it.
    assert tolerance_for(entries["zz_newer"]).min_agreement is not None
    assert runtimes_for(entries["zz_newer"]) == []


def test_the_reference_tolerance_passes_gpu_rounding_and_catches_drift() -> None:
    """A GPU runs the reference in float32 with other kernels, which sum in another
    order: each logit moves by up to n * 2**-24 of its size (n a few hundred terms). Its
    probabilities must pass against the CPU run; a real change of the model must not."""
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 4, size=(1000, 10))

    def softmax(z: np.ndarray) -> np.ndarray:
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)

    cpu = softmax(logits)
    noise = rng.uniform(-1, 1, size=logits.shape) * 300 * 2.0**-24 * (np.abs(logits) + 1)
    gpu = softmax(logits + noise)
    tolerance = Tolerance(**registry.REFERENCE.tolerance)
    checks = check(compare(gpu, cpu, None), tolerance)
    assert checks and all(c.passed for c in checks), [c.describe() for c in checks]
    # The old limit (max abs 0.0) failed exactly this run.
    assert not all(c.passed for c in check(compare(gpu, cpu, None), Tolerance(max_abs=0.0)))
    drifted = softmax(logits * 0.9)  # e.g. a wrong input scale on one device
    assert not all(c.passed for c in check(compare(drifted, cpu, None), tolerance))
