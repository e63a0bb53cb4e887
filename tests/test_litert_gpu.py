"""litert-gpu: LiteRT's GPU accelerator, really run on SwiftShader's Vulkan driver.

No test here skips for a missing adapter: `make setup` installs libvulkan1 and
Chromium (whose SwiftShader is the adapter), so in CI a missing one is a failure.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from exporters import registry
from tests.cli import cnnx
from toolkit.errors import UsageError
from toolkit.graph.gpu_readiness import ACCELERATOR, STATIC
from toolkit.manifest import load_manifest
from toolkit.measure.gpu_answer import ask_in_child, manifest_details
from toolkit.measure.rows import Row
from toolkit.measure.tolerances import parse_flag_values
from toolkit.measure.verify import VerifyConfig, verify
from toolkit.runtimes import load
from toolkit.runtimes.litert_gpu import read_log

pytestmark = pytest.mark.slow

TFLITE = ("tflite_float32", "tflite_float16", "tflite_dynamic", "tflite_int8")
PROJECT = Path(__file__).resolve().parents[1]


# The suite's tiny model loses agreement in int8 on any runtime (LiteRT's CPU too).
TINY_INT8 = parse_flag_values("min_agreement", ["int8=0.9"])


@pytest.fixture(scope="module")
def report(artifacts: Path) -> list[Row]:
    """Every TFLite artifact of the suite's shared export in litert and litert-gpu, verified."""
    config = VerifyConfig(
        artifacts, artifacts=TFLITE, runtimes=("litert", "litert-gpu"), overrides=(TINY_INT8,)
    )
    return list(verify(config).rows)


@pytest.fixture(scope="module")
def rows(report: list[Row]) -> dict[str, Row]:
    return {row.artifact: row for row in report if row.runtime == "litert-gpu"}


def test_every_tflite_precision_runs_on_swiftshader_with_parity(
    report: list[Row], rows: dict[str, Row]
) -> None:
    assert set(rows) == set(TFLITE)
    cpu = {row.artifact: row for row in report if row.runtime == "litert"}
    for artifact, row in rows.items():
        assert row.status == "ok", (artifact, row.reason, row.checks)
        assert row.label == "litert-gpu@swiftshader"
        assert row.checks and all(check.passed for check in row.checks)
        assert row.runtime_info["device"] == "swiftshader"
        # The accelerator's answers are LiteRT's CPU answers, image for image.
        gpu_metrics, cpu_metrics = row.metrics, cpu[artifact].metrics
        assert gpu_metrics is not None and cpu_metrics is not None
        assert abs(gpu_metrics.agreement - cpu_metrics.agreement) <= 0.01, artifact
    # SwiftShader computes in float32: the float32 file holds even the CPU's float32 limit.
    float32 = rows["tflite_float32"].metrics
    assert float32 is not None and float32.max_abs <= 1e-4 and float32.agreement == 1.0


def test_gpu_rows_take_the_gpu_tolerance_of_the_format_table(rows: dict[str, Row]) -> None:
    gpu = registry.GPU_FLOAT_TOLERANCE
    for artifact in ("tflite_float32", "tflite_float16"):
        tolerance = rows[artifact].tolerance
        assert tolerance.max_abs == gpu["max_abs"]
        assert tolerance.min_agreement == gpu["min_agreement"]
    # A quantized artifact keeps its own limits: the accelerator dequantizes it.
    dynamic = rows["tflite_dynamic"].tolerance
    assert dynamic.min_agreement == registry.DYNAMIC_TOLERANCE["min_agreement"]
    assert dynamic.max_abs is None


def test_the_row_names_the_adapter_and_what_the_accelerator_did(rows: dict[str, Row]) -> None:
    for artifact, row in rows.items():
        details = row.runtime_info["details"]
        assert details["adapter"] == {
            "name": "SwiftShader Device (Subzero)",
            "architecture": "swiftshader",
            "vendor": "google",
            "backend": "Vulkan",
            "type": "CPU / Software",
            "software": True,
        }
        assert details["fully_accelerated"] is True, (artifact, details["cpu_ops"])
        assert details["cpu_ops"] == []
        assert details["precision"] == "float16"  # the accelerator's default: float16 allowed
        expected = "float" if artifact == "tflite_float32" else "dequantized"
        assert details["handling"] == expected
    # The int8 file keeps its uint8 I/O on the GPU: quantized and dequantized around it.
    int8 = rows["tflite_int8"].runtime_info["details"]
    assert (int8["input_dtype"], int8["output_dtype"]) == ("uint8", "uint8")


def test_float32_enforced_gives_the_cpus_answers(artifacts: Path) -> None:
    manifest = load_manifest(artifacts)
    entry = manifest.artifact("tflite_float32")
    batch = np.random.default_rng(3).uniform(0, 255, (3, *manifest.input.shape))
    batch = batch.astype(np.float32)
    with load("litert", manifest, entry) as cpu:
        expected = cpu.predict(batch)
    with load("litert-gpu", manifest, entry, precision="float32") as gpu:
        assert gpu.info.details["precision"] == "float32"
        np.testing.assert_allclose(gpu.predict(batch), expected, atol=1e-5)
    with pytest.raises(UsageError, match="unknown GPU precision 'float64'"):
        load("litert-gpu", manifest, entry, precision="float64")


def test_no_vulkan_device_is_a_skipped_row_with_the_reason(artifacts: Path) -> None:
    """The loader pointed at no driver (a machine without Vulkan): skipped, with why."""
    env = {"VK_ICD_FILENAMES": str(PROJECT / "no-such-icd.json")}  # read when LiteRT loads
    verify = ("verify", artifacts, "-r", "litert-gpu", "-a", "tflite_float32", "--json")
    done = cnnx(*verify, env=env, process=True, timeout=300)
    assert done.returncode == 0, done.stderr
    (row,) = json.loads(done.stdout)["rows"]
    assert row["status"] == "skipped"
    assert "found no GPU adapter" in row["reason"] and "VK_ICD_FILENAMES" in row["reason"]


def test_the_log_reader_takes_the_adapter_and_the_ops_left_on_the_cpu() -> None:
    """The accelerator's log lines, as LiteRT 2.3 writes them (seen on an ARG_MAX model)."""
    log = (
        "I0000 environment.cc:532] Selected adapter: NVIDIA H100 80GB HBM3, arch=hopper, "
        "vendor=nvidia, backend=Vulkan, adapterType=Discrete GPU\n"
        "ERROR: Following operations are not supported by GPU delegate:\n"
        "ARG_MAX: Tensor type(INT64) is not supported. ArgMax\n"
        "CAST: Tensor type(INT64) is not supported. ExpandDims\n"
        "2 operations will run on the GPU, and the remaining 5 operations will run on the CPU.\n"
    )
    found = read_log(log, fully_accelerated=False)
    assert found.adapter is not None and found.adapter.device == "gpu"
    assert found.adapter.to_dict()["software"] is False
    assert found.cpu_op_names == ("ARG_MAX", "CAST")
    assert (found.gpu_op_count, found.cpu_op_count) == (2, 5)
    assert found.handling("int8") == "partially delegated"


def test_export_records_the_accelerators_answer_and_info_reads_it(
    tiny_run: Path, tmp_path: Path
) -> None:
    """cnnx export --gpu-answer: the new .tflite's entry holds the accelerator's own
    answer (adapter, fully accelerated, ops on the CPU, parity), and cnnx info reads it."""
    out = tmp_path / "artifacts"
    argv = ["export", "-m", str(tiny_run), "--to", "tflite", "-q", "none", "-o", str(out)]
    done = cnnx(*argv, "--samples", "0", "--gpu-answer")
    assert done.returncode == 0, done.stderr
    assert "tflite_float32 on the GPU: fully accelerated on SwiftShader" in done.stdout
    manifest = load_manifest(out)
    assert "gpu" not in manifest.artifact("savedmodel").details
    entry = manifest.artifact("tflite_float32")
    gpu = entry.details["gpu"]
    assert gpu["method"] == ACCELERATOR and gpu["path"] == entry.path
    assert gpu["adapter"]["name"] == "SwiftShader Device (Subzero)" and gpu["adapter"]["software"]
    assert (gpu["ready"], gpu["cpu_ops"], gpu["precision"]) == (True, [], "float16")
    assert 0.0 <= gpu["max_abs_vs_cpu"] <= 1e-5  # SwiftShader computes in float32
    assert manifest.command.endswith("--gpu-answer")
    # cnnx info shows the recorded answer: a changed record shows, the file is not re-run.
    data = json.loads(manifest.path.read_text())
    data["artifacts"]["tflite_float32"]["details"]["gpu"]["max_abs_vs_cpu"] = 0.25
    manifest.path.write_text(json.dumps(data))
    info = cnnx("info", out / entry.path, "--json")
    assert info.returncode == 0, info.stderr
    line = json.loads(info.stdout)["details"]["GPU delegate"]
    assert line.startswith("fully accelerated on SwiftShader Device (Subzero)"), line
    assert line.endswith(f"max |GPU - CPU| 2.5e-01 (recorded at {entry.details['exported']})")


def test_without_an_answer_the_manifest_records_the_static_reading_and_why(
    artifacts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No Vulkan device (the loader pointed at no driver), or no answer in time: the
    static op-list reading, labelled so, with the reason."""
    manifest = load_manifest(artifacts)
    entries = {key: manifest.artifact(key) for key in ("savedmodel", "tflite_int8")}
    monkeypatch.setenv("VK_ICD_FILENAMES", str(PROJECT / "no-such-icd.json"))
    details = manifest_details(entries, artifacts)
    assert set(details) == {"tflite_int8"}
    gpu = details["tflite_int8"]["gpu"]
    assert (gpu["method"], gpu["adapter"]) == (STATIC, None)
    assert gpu["path"] == entries["tflite_int8"].path
    assert gpu["ready"] is True and gpu["op_counts"]  # every op on the delegate's list
    (note,) = gpu["notes"]
    assert note.startswith("static only: LiteRT's GPU accelerator found no GPU adapter"), note
    (late,) = ask_in_child([artifacts / entries["tflite_int8"].path], seconds_per_file=0.001)
    why = "static only: LiteRT's GPU accelerator did not answer within 0.001 s"
    assert late.method == STATIC and late.notes == [why]
    assert late.summary().endswith(f"; {why}")
