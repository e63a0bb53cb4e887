"""`cnnx demo` as a user runs it: the default model, every export, every runtime.

This is the one test that trains the full-size seed CNN (about a minute on 2 cores), so
the DESIGN.md default tolerances are asserted on a model trained as users train it, not
only on the tiny session model whose near-flat outputs need looser int8 floors.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli import cnnx

pytestmark = [pytest.mark.slow, pytest.mark.node, pytest.mark.browser, pytest.mark.android]


def test_demo_with_defaults_passes_every_default_tolerance(tmp_path: Path) -> None:
    done = cnnx("demo", "--out", "work", cwd=tmp_path, process=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stdout + done.stderr
    work = tmp_path / "work"
    report = json.loads((work / "artifacts" / "report" / "report.json").read_text())

    # Every artifact ran in every runtime it belongs to and passed its default checks.
    runtimes = {row["runtime"] for row in report["rows"]}
    assert runtimes == {
        "tf", "litert", "onnxruntime", "tfjs-node", "browser", "litertjs", "onnxruntime-web"
    }  # fmt: skip
    for row in report["rows"]:
        assert row["status"] == "ok" and not row["drifted"], row
        assert row["checks"] and all(check["passed"] for check in row["checks"]), row

    rows = {(row["artifact"], row["label"]): row for row in report["rows"]}
    reference = rows[("savedmodel", "tf")]["metrics"]
    assert reference["accuracy"] >= 0.90  # the default training reaches 90% on shapes
    int8 = rows[("tflite_int8", "litert x1")]
    assert int8["metrics"]["agreement"] >= 0.98
    assert reference["accuracy"] - int8["metrics"]["accuracy"] <= 0.01
    assert int8["size"] <= 0.3 * rows[("tflite_float32", "litert x1")]["size"]
    assert rows[("tflite_float32", "litert x1")]["metrics"]["max_abs"] <= 1e-4

    # demo.json lists the steps in order; the run is under work/runs; every format made.
    from toolkit.demo import STEPS

    steps = json.loads((work / "demo.json").read_text())["steps"]
    assert [step["name"] for step in steps] == [step.name for step in STEPS]
    run = tmp_path / next(step for step in steps if step["name"] == "train")["run"]
    assert run.parent == work / "runs" and (run / "run.json").is_file()
    assert len(json.loads((work / "artifacts" / "manifest.json").read_text())["artifacts"]) == 12

    # The end of the output says where everything is.
    assert "bundle rpi" in done.stdout and "cnnx serve work/artifacts" in done.stdout
    for target in ("web", "rpi", "android"):
        assert (work / "bundles" / target).is_dir()
