"""The ONNX family: tf2onnx's float32 graph and ONNX Runtime's float16 and int8 (QDQ)
artifacts, run in real ONNX Runtime beside TensorFlow and LiteRT; the ONNX graph
policy; a damaged int8 artifact caught by parity. (A keras.applications MobileNetV2 goes
through --to all and verify's ONNX Runtime rows in test_byom_mobilenet.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.cli import cnnx
from tests.test_bench import QUICK
from tests.test_verify import TINY_MODEL_TOLERANCES, _rehash
from toolkit.errors import ModelError
from toolkit.manifest import load_manifest

ONNX_IDS = ("onnx_float32", "onnx_float16", "onnx_int8")


def _cli(*args: str) -> tuple[int, str]:
    done = cnnx(*args)
    return done.returncode, done.output


@pytest.fixture
def copy(artifacts_copy: Path) -> Path:
    (artifacts_copy.parent / "tiny.toml").write_text(TINY_MODEL_TOLERANCES)
    return artifacts_copy


@pytest.mark.slow
def test_export_all_writes_the_onnx_models_with_their_provenance(artifacts: Path) -> None:
    import onnx

    manifest = load_manifest(artifacts)
    for artifact_id in ONNX_IDS:
        entry = manifest.artifacts[artifact_id]
        precision = artifact_id.split("_")[1]
        assert entry.path == f"onnx/model_{precision}.onnx" and entry.runtime == "onnxruntime"
        assert entry.inputs[0]["name"] == "image" and entry.inputs[0]["shape"] == [-1, 32, 32, 3]
        assert entry.outputs[0]["name"] == "probabilities" and entry.inputs[0]["dtype"] == "float32"
        details = entry.details
        assert details["opset"] == 17 and details["converter"] == "tf2onnx"
        assert details["batch"] == "dynamic"
        assert set(details["versions"]) == {"tf2onnx", "onnx", "onnxruntime"}
        model = onnx.load(str(artifacts / entry.path))
        assert {node.domain for node in model.graph.node} <= {"", "ai.onnx"}
        ops = {node.op_type for node in model.graph.node}
        if precision == "int8":
            assert {"QuantizeLinear", "DequantizeLinear"} <= ops
            assert details["calibration"]["count"] == details["calibration_images"] > 0
            # The same images calibrate TFLite's int8.
            tflite = manifest.artifacts["tflite_int8"].details
            assert details["calibration"] == tflite["calibration"]
        else:
            assert "QuantizeLinear" not in ops
    floats = {
        tensor.data_type
        for tensor in onnx.load(str(artifacts / "onnx/model_float16.onnx")).graph.initializer
    }
    assert onnx.TensorProto.FLOAT16 in floats


@pytest.mark.slow
def test_verify_runs_tf_litert_and_onnxruntime(copy: Path) -> None:
    tolerances = str(copy.parent / "tiny.toml")
    code, output = _cli("verify", str(copy), "-r", "tf,litert,onnxruntime",
                        "--tolerances", tolerances, "--json")  # fmt: skip
    assert code == 0, output
    rows = json.loads(output)["rows"]
    onnx_rows = {r["artifact"]: r for r in rows if r["runtime"] == "onnxruntime"}
    assert set(onnx_rows) == set(ONNX_IDS)
    assert all(r["status"] == "ok" for r in rows), rows
    float32 = onnx_rows["onnx_float32"]["metrics"]
    assert float32["max_abs"] <= 1e-4 and float32["agreement"] == 1.0
    # The int8 model is quantized for real: further from the reference than float32.
    assert onnx_rows["onnx_int8"]["metrics"]["max_abs"] > 10 * float32["max_abs"]


@pytest.mark.slow
def test_bench_gives_onnxruntime_rows_per_thread_count(copy: Path) -> None:
    code, output = _cli("bench", str(copy), "-r", "litert,onnxruntime", "--threads", "1,2",
                        "--artifacts", "tflite_float32,onnx_float32,onnx_int8",
                        "--tolerances", str(copy.parent / "tiny.toml"), *QUICK)  # fmt: skip
    assert code == 0, output
    report = json.loads((copy / "report" / "report.json").read_text())
    rows = {(r["artifact"], r["label"]): r for r in report["rows"]}
    for key in [("onnx_float32", "onnxruntime x1"), ("onnx_int8", "onnxruntime x2")]:
        row = rows[key]
        assert row["status"] == "ok" and row["latency"]["runs"] == 5
        assert row["latency"]["p50"] > 0 and row["pre_ms"] is not None
        assert "fresh process" in row["memory"]["source"] and row["memory"]["bytes"] > 0
    assert ("tflite_float32", "litert x1") in rows  # side by side in one report
    assert "| onnx_int8 | onnxruntime x2 |" in (copy / "report" / "report.md").read_text()


def _negate_the_largest_int8_weights(path: Path) -> None:
    """Damage an int8 ONNX model in place: its largest int8 weight tensor negated."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    weights = max(
        (t for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8),
        key=lambda t: int(np.prod(t.dims)),
    )
    values = numpy_helper.to_array(weights)
    assert values.size > 64
    weights.CopyFrom(numpy_helper.from_array((-values.astype(np.int16)).clip(-127, 127)
                                             .astype(np.int8), weights.name))  # fmt: skip
    onnx.save(model, str(path))


@pytest.mark.slow
def test_a_damaged_int8_onnx_model_fails_verify(copy: Path) -> None:
    _negate_the_largest_int8_weights(copy / "onnx" / "model_int8.onnx")
    _rehash(copy, "onnx_int8")
    code, output = _cli("verify", str(copy), "-r", "onnxruntime", "--artifacts", "onnx_int8",
                        "--tolerances", str(copy.parent / "tiny.toml"))  # fmt: skip
    assert code == 9, output
    assert "onnx_int8 on onnxruntime" in output and "agreement" in output


# --- --quantize auto with ONNX Runtime as the target -------------------------------------


@pytest.fixture
def drifting_onnx_int8(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every onnx_int8 the exporter writes is damaged (a planted fault): it drifts for
    certain in ONNX Runtime, whatever the CPU's int8 kernels."""
    import exporters.onnx

    real = exporters.onnx.export_onnx_int8

    def damaged(saved_model_dir: Path, out_dir: Path, options: object) -> object:
        result = real(saved_model_dir, out_dir, options)  # type: ignore[arg-type]
        _negate_the_largest_int8_weights(Path(out_dir) / result.path)
        return result

    monkeypatch.setattr(exporters.onnx, "export_onnx_int8", damaged)


@pytest.mark.slow
def test_quantize_auto_for_onnxruntime_weighs_the_onnx_models_there(
    tiny_run: Path, tmp_path: Path, drifting_onnx_int8: None
) -> None:
    from toolkit.autoquant.search import TIE

    out = tmp_path / "auto"
    code, output = _cli("export", "--model", str(tiny_run), "--to", "onnx",
                        "--quantize", "auto", "--out", str(out))  # fmt: skip
    assert code == 0, output
    manifest = load_manifest(out)
    (winner_id,) = [k for k, e in manifest.artifacts.items() if "quantize_auto" in e.details]
    assert set(manifest.artifacts) == {"savedmodel", winner_id}
    decision = manifest.artifact(winner_id).details["quantize_auto"]
    assert (decision["target"], decision["format"]) == ("onnxruntime", "onnx")
    rows = {row["candidate"]: row for row in decision["candidates"]}
    assert [(name, row["artifact"]) for name, row in rows.items()] == [
        ("int8", "onnx_int8"), ("float16", "onnx_float16"), ("float32", "onnx_float32")
    ]  # fmt: skip
    # Measured in ONNX Runtime against the SavedModel: the damaged int8 drifts past its
    # verify tolerance, float32 is the reference's answer.
    assert rows["int8"]["status"] == "drift" and rows["int8"]["agreement"] < 0.98
    assert rows["int8"]["failed_checks"]
    assert rows["float32"]["agreement"] == 1.0 and rows["float32"]["max_abs"] < 1e-4
    assert all(row["p50_ms"] > 0 for row in rows.values())
    winner = rows[decision["winner"]]
    assert winner["passed"] and winner["artifact"] == winner_id != "onnx_int8"
    passing = [row for row in rows.values() if row["passed"]]
    fastest = min(row["p50_ms"] for row in passing)
    tied = [row for row in passing if row["p50_ms"] <= fastest * (1 + TIE)]
    assert winner in tied and winner["size"] == min(row["size"] for row in tied)
    assert manifest.artifact(winner_id).size == winner["size"]
    table = (out / "onnx" / "quantize_auto.md").read_text()
    assert "p50 ms (onnxruntime x1)" in table and "**winner**" in table
    assert (out / "onnx" / "quantize_auto.png").is_file()
    assert "trade-off: " + str(out / "onnx" / "quantize_auto.md") in " ".join(output.split())


@pytest.mark.slow
def test_quantize_auto_for_onnxruntime_exits_9_when_nothing_is_within_budget(
    tiny_run: Path,
    tmp_path: Path,
    drifting_onnx_int8: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One candidate (the damaged int8), really built and measured in ONNX Runtime."""
    from toolkit.autoquant import search

    monkeypatch.setattr(search, "ONNX_CANDIDATES", search.ONNX_CANDIDATES[:1])
    out = tmp_path / "auto"
    code, stdout, stderr = cnnx(
        "export", "--model", tiny_run, "--to", "onnx", "--quantize", "auto", "--out", out
    )  # in this process: the monkeypatched candidate list holds
    assert code == 9, stdout + stderr
    assert "onnxruntime x1" in stdout and "drift" in stdout
    assert "none of the 1 candidates stays within the budget" in stderr
    assert not out.exists()  # nothing half-written


def test_quantize_auto_pairs_each_format_with_its_runtimes() -> None:
    from toolkit.errors import UsageError
    from toolkit.export.request import ExportRequest

    assert ExportRequest(to="onnx", quantize="auto").auto_target == "onnxruntime"
    assert ExportRequest(to="tflite", quantize="auto").auto_target == "litert"
    with pytest.raises(UsageError, match="must be one of onnxruntime, got 'rpi'"):
        ExportRequest(to="onnx", quantize="auto", target="rpi")
    with pytest.raises(UsageError, match="must be one of litert, rpi") as refused:
        ExportRequest(to="tflite", quantize="auto", target="onnxruntime")
    assert refused.value.hint == "use --to onnx --target onnxruntime"
    with pytest.raises(UsageError, match="picks a TFLite precision"):
        ExportRequest(to="tfjs", quantize="auto")


# --- ONNX Runtime Web: a float16 model on WebGPU ------------------------------------------


@pytest.mark.browser
@pytest.mark.slow
def test_a_float16_model_on_a_webgpu_adapter_without_shader_f16_is_skipped_saying_why(
    artifacts: Path,
) -> None:
    """ONNX Runtime Web's float16 WebGPU kernels need the adapter's shader-f16, which
    SwiftShader's lacks: a skipped row that names it, where it used to fail the bench. An
    adapter that has it runs the model at float16's tolerance."""
    from toolkit.measure.evalset import load_eval_set
    from toolkit.runtimes import RuntimeSkipped, load

    manifest = load_manifest(artifacts)
    try:
        model = load(
            "onnxruntime-web", manifest, manifest.artifact("onnx_float16"), backend="webgpu"
        )
    except RuntimeSkipped as skipped:
        if "no WebGPU adapter" in str(skipped):
            pytest.skip(str(skipped))  # no adapter at all in this Chromium
        assert "shader-f16" in str(skipped) and "float16" in str(skipped), skipped
        return
    with model:  # an adapter with shader-f16 (a real GPU): the model runs there
        images = load_eval_set(manifest).images[:8]
        native = load("onnxruntime", manifest, manifest.artifact("onnx_float16"))
        with native:
            expected = native.predict(images)
        assert np.abs(model.predict(images) - expected).max() < 1e-2


# --- the ONNX graph policy -----------------------------------------------------------------


def _model(folder: Path, domain: str = "", external: str | None = None) -> Path:
    """A one-node ONNX model (y = x + w): `domain` for its op, its weight external or not."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((1, 4), np.float32), "w")
    if external is not None:
        weight.ClearField("raw_data")
        weight.data_location = TensorProto.EXTERNAL
        weight.external_data.add(key="location", value=external)
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"], name="add", domain=domain)],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [weight],
    )
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    path = folder / "model.onnx"
    onnx.save(helper.make_model(graph, opset_imports=opsets), str(path))
    return path


def test_the_policy_passes_standard_ops_and_refuses_custom_domains(tmp_path: Path) -> None:
    from toolkit.graph.onnx_policy import check_onnx

    check_onnx(_model(tmp_path))
    custom = _model(tmp_path, domain="com.example")
    with pytest.raises(ModelError) as refused:
        check_onnx(custom)
    assert "com.example.Add" in refused.value.one_line() and "custom-op" in str(refused.value)
    with pytest.warns(Warning, match="com.example.Add"):
        check_onnx(custom, unsafe=True)


def test_the_policy_keeps_external_data_inside_the_folder(tmp_path: Path) -> None:
    from toolkit.graph.onnx_policy import check_onnx

    (tmp_path / "weights.bin").write_bytes(np.ones(4, np.float32).tobytes())
    check_onnx(_model(tmp_path, external="weights.bin"))
    for location in ("../weights.bin", "/etc/passwd"):
        with pytest.raises(ModelError, match="outside the model's folder"):
            check_onnx(_model(tmp_path, external=location), unsafe=True)


@pytest.mark.slow
def test_verify_refuses_a_custom_op_swapped_into_an_artifact(copy: Path) -> None:
    import onnx

    path = copy / "onnx" / "model_float32.onnx"
    model = onnx.load(str(path))
    model.graph.node[0].domain = "com.example"
    model.opset_import.append(onnx.helper.make_opsetid("com.example", 1))
    onnx.save(model, str(path))
    _rehash(copy, "onnx_float32")
    code, output = _cli("verify", str(copy), "-r", "onnxruntime", "--artifacts", "onnx_float32")
    assert code == 4, output
    assert "custom-op domain" in output
