"""--quantize auto's bookkeeping around its measurements (toolkit/autoquant/search.py), on
made-up measurements: which candidates are built and measured, and what a candidate that
cannot run is recorded as. The real search, built and measured in LiteRT and on the
emulated Pi, is proven in tests/test_quantize.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from toolkit.autoquant import pi_measure, search, tradeoff
from toolkit.autoquant.search import CANDIDATES, CandidateSpec, Measured
from toolkit.data.inputspec import InputSpec
from toolkit.errors import RuntimeUnavailable
from toolkit.export import artifacts
from toolkit.export.artifacts import BuildContext, ExportRequest
from toolkit.manifest import ArtifactEntry, Manifest, describe_files
from toolkit.measure import matrix
from toolkit.measure.evalset import EvalSet

INT8, FALLBACK, _, _, FLOAT16, FLOAT32 = CANDIDATES
REFERENCE = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], np.float32)
EVALSET = EvalSet(np.zeros((3, 4, 4, 3), np.float32), None, ["a", "b"], "validation split")


def manifest_of(root: Path, ids: list[str]) -> Manifest:
    """A manifest listing `ids`, each a small file of its own size (bytes of its id)."""
    root.mkdir(parents=True, exist_ok=True)
    entries = {}
    for artifact_id in ids:
        relative = f"{artifact_id}.bin"
        (root / relative).write_bytes(artifact_id.encode() * 10)
        fmt, _, precision = artifact_id.partition("_")
        files = describe_files(root, relative)
        entries[artifact_id] = ArtifactEntry(
            artifact_id, fmt, precision or "float32", "litert", relative, files, [], []
        )
    return Manifest(root, InputSpec(4, 4, 3), ["a", "b"], entries)


# --- measure_on_pi: one emulated run for all, or one each when that run fails ----------


def test_a_candidate_the_emulated_pi_cannot_run_fails_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[list[str]] = []

    def emulated_pi(
        models: dict[str, Path], images: np.ndarray, repeats: int, warmup: int
    ) -> dict[str, tuple[np.ndarray, float]]:
        runs.append(sorted(models))
        if "float16" in models:
            raise RuntimeUnavailable("the emulated Pi could not run the candidates: Illegal op")
        return {name: (REFERENCE, 2.5) for name in models}

    monkeypatch.setattr(pi_measure, "run_on_emulated_pi", emulated_pi)
    manifest = manifest_of(tmp_path, ["tflite_int8", "tflite_float16", "tflite_float32"])
    specs = (INT8, FLOAT16, FLOAT32)
    measured = search.measure_on_pi(manifest, specs, EVALSET, REFERENCE, {})
    # One run for all three; when it fails, one run each.
    assert runs == [["float16", "float32", "int8"], ["int8"], ["float16"], ["float32"]]
    by_name = {m.spec.name: m for m in measured}
    assert list(by_name) == ["int8", "float16", "float32"]
    for name in ("int8", "float32"):  # measured as if float16 had not been there
        assert by_name[name].status == "ok" and by_name[name].passed
        assert (by_name[name].agreement, by_name[name].p50_ms) == (1.0, 2.5)
    bad = by_name["float16"]
    assert bad.status == "failed" and not bad.passed and bad.p50_ms is None
    assert bad.failed == ("the emulated Pi could not run the candidates: Illegal op",)
    assert bad.size == manifest.artifact("tflite_float16").size > 0


# --- auto_build: the fallback search only when plain int8 is outside the budget --------


@pytest.mark.parametrize("int8_passes", [True, False])
def test_the_fallback_is_searched_only_when_plain_int8_is_outside_the_budget(
    int8_passes: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[tuple[str, tuple[str, ...], list[str]]] = []
    measured: list[str] = []
    decisions: list[dict[str, Any]] = []

    def build(context: BuildContext, wanted: list[str], annotate: Any = None) -> Manifest:
        built.append((context.out.name, context.request.float_fallback, wanted))
        return manifest_of(context.out, wanted)

    def measure(manifest: Manifest, spec: CandidateSpec, *_: Any) -> Measured:
        measured.append(spec.name)
        size = manifest.artifact(spec.artifact_id).size
        status = "ok" if int8_passes or spec is not INT8 else "drift"
        p50 = {"int8": 1.0, "int8+fallback": 1.1}.get(spec.name, 3.0)
        return Measured(spec, status, size, p50, 1.0 if status == "ok" else 0.9)

    class Reference:
        def close(self) -> None:
            pass

    monkeypatch.setattr(search, "CANDIDATES", (INT8, FALLBACK, FLOAT32))
    monkeypatch.setattr(artifacts, "build", build)
    monkeypatch.setattr(search, "measure", measure)
    monkeypatch.setattr(search, "selection_set", lambda manifest, source: EVALSET)
    monkeypatch.setattr(matrix, "reference_outputs", lambda m, e: (REFERENCE, Reference()))
    monkeypatch.setattr(tradeoff, "write_tradeoff", lambda root, d: decisions.append(d))
    request = ExportRequest(to="tflite", quantize="auto")
    out, scratch = tmp_path / "out", tmp_path / "scratch"
    source: Any = None  # read only by selection_set, replaced above
    context = BuildContext(out, request, source, "", previous=None, scratch=scratch)
    search.auto_build(context)

    (decision,) = decisions
    rows = {row["candidate"]: row for row in decision["candidates"]}
    assert list(rows) == ["int8", "int8+fallback", "float32"]
    folders = [folder for folder, _, _ in built]
    if int8_passes:  # the search would keep plain int8: no build, no measurement
        assert rows["int8+fallback"]["status"] == "same as int8"
        assert rows["int8+fallback"]["size"] == rows["int8"]["size"]
        assert measured == ["int8", "float32"] and folders == ["candidates", "out"]
        assert decision["winner"] == "int8"
        assert "outside budget" not in decision["reason"]  # "same as int8" is no failure
    else:
        assert rows["int8+fallback"]["status"] == "ok"
        assert measured == ["int8", "int8+fallback", "float32"]
        assert folders == ["candidates", "fallback", "out"]
        assert built[1][1:] == (("auto",), ["savedmodel", "tflite_int8"])
        assert decision["winner"] == "int8+fallback"
