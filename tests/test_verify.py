"""cnnx verify: metrics and tolerances (unit), and corrupted artifacts caught end to end.

Every corruption keeps the manifest's hashes right (they are recomputed after the
damage), so it is the parity check that has to catch it, not the hash check.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.cli import cnnx
from toolkit.errors import UsageError
from toolkit.manifest import ArtifactEntry, describe_files, load_manifest
from toolkit.measure.parity import Metrics, check, compare, reference_checks
from toolkit.measure.tolerances import (
    Tolerance,
    default_tolerance,
    for_outputs,
    load_tolerances,
    parse_flag_values,
    parse_fraction,
    tolerance_for,
)

# The session's tiny model trains for seconds, so its class margins are thin and
# quantization flips more of its 150 test answers than on a real model. Quantized
# artifacts get looser floors here; float32 ones keep the defaults (1e-4, 100%).
TINY_MODEL_TOLERANCES = """
[int8]
min_agreement = 0.85
max_accuracy_drop = 0.05
[dynamic]
min_agreement = 0.95
[float16]
min_agreement = 0.97
[uint8]
min_agreement = 0.95
[uint16]
min_agreement = 0.97
"""


# --- unit: tolerances -----------------------------------------------------------------


def test_fractions_accept_percent_and_points() -> None:
    assert parse_fraction("0.995", "x", "min_agreement") == pytest.approx(0.995)
    assert parse_fraction("99.5%", "x", "min_agreement") == pytest.approx(0.995)
    assert parse_fraction("1pp", "x", "max_accuracy_drop") == pytest.approx(0.01)
    assert parse_fraction(1e-4, "x", "max_abs") == pytest.approx(1e-4)
    with pytest.raises(UsageError, match=r"fraction of 1, got .99."):
        parse_fraction("99", "--min-agreement", "min_agreement")
    with pytest.raises(UsageError, match="must be a number"):
        parse_fraction("lots", "--max-abs", "max_abs")
    with pytest.raises(UsageError, match=">= 0"):
        parse_fraction("-1", "--max-abs", "max_abs")


def _entry(
    artifact_id: str, precision: str, tolerance: dict[str, float] | None = None
) -> ArtifactEntry:
    fmt = "tflite" if artifact_id.startswith("tflite") else "tfjs"
    return ArtifactEntry(artifact_id, fmt, precision, "litert", "x", [], [], [], tolerance or {})


def test_tolerance_layers_later_wins(tmp_path: Path) -> None:
    int8 = _entry("tflite_int8", "int8")
    assert tolerance_for(int8) == default_tolerance("tflite_int8")
    assert tolerance_for(_entry("tflite_int8", "int8", {"min_agreement": 0.9})).min_agreement == 0.9
    toml = tmp_path / "tol.toml"
    toml.write_text(
        'min_cosine = 0.99\n[int8]\nmin_agreement = "97%"\n[tflite_int8]\nmax_abs = 0.2\n'
    )
    layer = load_tolerances(toml)
    flags = parse_flag_values("min_agreement", ["int8=0.95"], ["tflite_int8"])
    resolved = tolerance_for(int8, layer, flags)
    assert resolved.min_agreement == pytest.approx(0.95)  # the flag beats the file
    assert resolved.max_abs == pytest.approx(0.2)
    assert resolved.min_cosine == pytest.approx(0.99)
    assert resolved.max_accuracy_drop == pytest.approx(0.01)  # the default survives
    assert tolerance_for(_entry("tflite_float32", "float32"), layer).min_agreement == 1.0
    every = parse_flag_values("min_agreement", ["0.9"])
    assert tolerance_for(_entry("tflite_float32", "float32"), every).min_agreement == 0.9


def test_logits_heads_scale_absolute_limits_to_the_output_range() -> None:
    """A head without softmax (recorded by export) spans more than [0, 1]: its max_abs and
    max_mean_abs limits grow with the range of the reference's outputs; agreement does not."""
    from toolkit.data.inputspec import InputSpec
    from toolkit.manifest import Manifest

    float32 = Tolerance(min_agreement=1.0, max_abs=1e-4, max_mean_abs=1e-5)

    def manifest(kind: str) -> Manifest:
        return Manifest(
            Path("."), InputSpec(4, 4, 3), ["a", "b"], source={"output": {"kind": kind}}
        )

    logits = np.array([[-6.0, 14.0], [3.0, -1.0]], np.float32)  # a range of 20
    scaled = for_outputs(float32, manifest("logits"), logits)
    assert scaled.max_abs == pytest.approx(20 * float32.max_abs)
    assert scaled.max_mean_abs == pytest.approx(20 * float32.max_mean_abs)
    assert scaled.min_agreement == float32.min_agreement
    assert for_outputs(float32, manifest("probabilities"), logits) == float32
    assert for_outputs(float32, manifest("logits"), np.array([[0.2, 0.7]])) == float32


def test_tolerance_file_errors_name_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"int8": {"min_agrement": 0.9}}))
    with pytest.raises(UsageError, match="unknown tolerance 'min_agrement'"):
        load_tolerances(bad)
    bad.write_text("{not json")
    with pytest.raises(UsageError, match="not valid JSON"):
        load_tolerances(bad)
    with pytest.raises(UsageError, match="neither a precision nor an artifact id"):
        parse_flag_values("min_agreement", ["bogus=0.9"])


# --- unit: metrics --------------------------------------------------------------------


def test_compare_measures_what_it_says() -> None:
    ref = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]], np.float32)
    out = np.array([[0.8, 0.2], [0.2, 0.8], [0.4, 0.6], [0.3, 0.7]], np.float32)
    labels = np.array([0, 1, 0, 0])
    m = compare(out, ref, labels)
    assert m.agreement == pytest.approx(0.75)
    assert m.max_abs == pytest.approx(0.2, abs=1e-6)
    assert m.mean_abs == pytest.approx((0.1 * 2 + 0.2 * 2) / 8, abs=1e-6)
    assert m.accuracy == pytest.approx(0.5) and m.accuracy_drop == pytest.approx(0.25)
    assert m.per_class_accuracy == (pytest.approx(1 / 3), 1.0)
    assert 0.9 < m.cosine < 1.0
    nan = compare(np.full_like(ref, np.nan), ref, labels)
    assert nan.agreement == 0.0 and nan.max_abs == float("inf")


def test_checks_pass_at_the_limit_and_fail_past_it() -> None:
    m = Metrics(images=100, agreement=0.98, max_abs=1e-4, mean_abs=1e-5, cosine=0.999, accuracy=0.5,
                top5=0.9, accuracy_drop=0.01)  # fmt: skip
    assert all(c.passed for c in check(m, default_tolerance("tflite_int8")))
    failed = [c for c in check(m, Tolerance(min_agreement=0.99, max_abs=1e-5)) if not c.passed]
    assert [c.metric for c in failed] == ["agreement", "max_abs"]
    assert "agreement 98.00% (limit >= 99.00%)" in failed[0].describe()


def test_reference_checks_catch_chance_level_and_swapped_labels() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 25)
    probs = np.eye(4, dtype=np.float32)[labels] * 0.9 + 0.025
    ok = reference_checks(probs, labels, ["a", "b", "c", "d"])
    assert all(c.passed for c in ok)
    swapped = labels.copy()
    swapped[labels == 0], swapped[labels == 1] = 1, 0
    found = [c for c in reference_checks(probs, swapped, ["a", "b", "c", "d"]) if not c.passed]
    assert [c.metric for c in found] == ["label_swap"] and "'a' and 'b' look swapped" in found[
        0
    ].note
    noise = rng.random((100, 4)).astype(np.float32)
    chance = [c for c in reference_checks(noise, labels, ["a", "b", "c", "d"]) if not c.passed]
    assert chance and chance[0].metric == "reference_accuracy"
    recorded = reference_checks(probs, labels, ["a", "b", "c", "d"], recorded_accuracy=1.0)
    assert all(c.passed for c in recorded)


# --- end to end on the session's artifacts ---------------------------------------------


@pytest.fixture
def tolerances(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_MODEL_TOLERANCES)
    return path


def _copy(artifacts: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "artifacts"
    shutil.copytree(artifacts, copy, ignore=shutil.ignore_patterns("report"))
    return copy


def _rehash(root: Path, artifact_id: str) -> None:
    """Record the damaged files' new hashes, so only parity can catch the damage."""
    manifest = load_manifest(root)
    entry = manifest.artifacts[artifact_id]
    files = [r for record in entry.files for r in describe_files(root, record["path"])]
    from dataclasses import replace

    manifest.artifacts[artifact_id] = replace(entry, files=files)
    manifest.save()


def _verify(*args: str) -> tuple[int, str]:
    done = cnnx("verify", *args)
    return done.returncode, done.output


@pytest.mark.slow
@pytest.mark.node
def test_unmodified_artifacts_pass(artifacts: Path, tolerances: Path) -> None:
    code, output = _verify(str(artifacts), "--tolerances", str(tolerances))
    assert code == 0, output
    # Float32 artifacts keep the default limits (max_abs 1e-4, 100% agreement with the
    # SavedModel); TF.js runs in Node on both of its backends.
    assert "all artifacts within tolerance" in output
    for artifact_id in ("tflite_float32", "tflite_int8", "tfjs_float32", "tfjs_uint8"):
        assert artifact_id in output
    assert "tfjs-node/wasm" in output and "tfjs-node/cpu" in output


def _largest_float_tensor(model: Path) -> bytes:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model))
    best = b""
    for detail in interpreter.get_tensor_details():
        try:
            data = interpreter.get_tensor(detail["index"])
        except ValueError:  # activations have no data before invoke
            continue
        if data.dtype == np.float32 and data.nbytes > len(best):
            best = data.tobytes()
    return best


@pytest.mark.slow
def test_perturbed_tflite_weights_fail_verify(artifacts: Path, tmp_path: Path) -> None:
    root = _copy(artifacts, tmp_path)
    model = root / "tflite" / "model_float32.tflite"
    blob = model.read_bytes()
    weights = _largest_float_tensor(model)
    at = blob.find(weights)
    assert len(weights) > 256 and at > 0
    damaged = (np.frombuffer(weights, np.float32) * -1.5).astype(np.float32).tobytes()
    model.write_bytes(blob[:at] + damaged + blob[at + len(weights) :])
    _rehash(root, "tflite_float32")
    code, output = _verify(str(root), "-r", "tf,litert", "--artifacts", "tflite_float32")
    assert code == 9, output
    assert "tflite_float32 on litert" in output and "agreement" in output and "max_abs" in output


@pytest.mark.slow
@pytest.mark.node
def test_perturbed_tfjs_shard_fails_verify(artifacts: Path, tmp_path: Path) -> None:
    root = _copy(artifacts, tmp_path)
    folder = root / "tfjs" / "float32"
    spec = json.loads((folder / "model.json").read_text())
    group = spec["weightsManifest"][0]
    shard = folder / group["paths"][0]
    data = bytearray(shard.read_bytes())
    # The largest weight of the first shard: scale its float32 values in place.
    offset, best = 0, (0, 0)
    for weight in group["weights"]:
        size = int(np.prod(weight["shape"])) * 4
        if weight["dtype"] == "float32" and size > best[1]:
            best = (offset, size)
        offset += size
    start, size = best
    values = np.frombuffer(bytes(data[start : start + size]), np.float32) * 3.0 + 0.5
    data[start : start + size] = values.astype(np.float32).tobytes()
    shard.write_bytes(bytes(data))
    _rehash(root, "tfjs_float32")
    code, output = _verify(
        str(root), "-r", "tfjs-node", "--artifacts", "tfjs_float32", "--backends", "wasm"
    )
    assert code == 9, output
    assert "tfjs_float32 on tfjs-node/wasm" in output and "max_abs" in output


@pytest.mark.slow
def test_swapped_labels_in_eval_data_fail_verify(artifacts: Path, tmp_path: Path) -> None:
    from PIL import Image

    from toolkit.data import DataSpec, load_dataset

    manifest = load_manifest(artifacts)
    dataset = load_dataset(DataSpec.from_dict(manifest.eval_data or {}))
    names = list(manifest.labels)
    # Class 0's images go in class 1's folder and the other way round.
    folder_of = {0: names[1], 1: names[0]}
    data = tmp_path / "labelled"
    for i, (pixels, label) in enumerate(zip(dataset.x_test, dataset.y_test, strict=True)):
        target = data / folder_of.get(int(label), names[int(label)])
        target.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(target / f"{i}.png")
    code, output = _verify(
        str(artifacts), "-r", "tf", "--artifacts", "savedmodel", "--data", str(data)
    )
    assert code == 9, output
    assert "savedmodel on tf" in output and "label_swap" in output
    assert f"{names[0]!r} and {names[1]!r} look swapped" in output


@pytest.mark.slow
def test_wrong_preprocessing_on_record_fails_verify(artifacts: Path, tmp_path: Path) -> None:
    root = _copy(artifacts, tmp_path)
    path = root / "manifest.json"
    data = json.loads(path.read_text())
    # The classic double rescale: the model embeds Rescaling(1/255) already.
    data["input"]["scale"] = 1 / 255
    path.write_text(json.dumps(data))
    code, output = _verify(str(root), "-r", "tf,litert", "--artifacts", "savedmodel,tflite_float32")
    assert code == 9, output
    assert "savedmodel on tf" in output and "reference_accuracy" in output
    assert "input spec on record" in output


@pytest.mark.slow
def test_verify_json_and_bad_flags(artifacts: Path) -> None:
    code, output = _verify(
        str(artifacts), "-r", "tf", "--artifacts", "savedmodel", "--json", "--limit", "40"
    )
    assert code == 0, output
    report = json.loads(output)
    assert report["images"] == 40 and report["rows"][0]["metrics"]["agreement"] == 1.0
    code, output = _verify(str(artifacts), "--min-agreement", "99")
    assert code == 2 and "fraction of 1" in output
    code, output = _verify(str(artifacts), "--artifacts", "nope")
    assert code == 7 and "no artifact 'nope'" in output
    code, output = _verify(str(artifacts), "-r", "tf,onnx")
    assert code == 2 and "unknown runtime 'onnx'" in output
