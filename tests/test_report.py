"""Report writing: report.json/report.md/plots from a hand-made bench result (no runtimes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from toolkit.bench.gates import Breach
from toolkit.bench.machine import machine_info
from toolkit.bench.report import SCHEMA, report_markdown, write_report
from toolkit.bench.run import BenchConfig, BenchReport
from toolkit.cli.tables import render_bench
from toolkit.data.inputspec import InputSpec
from toolkit.errors import PathError
from toolkit.manifest import Manifest
from toolkit.measure.parity import Check, Metrics
from toolkit.measure.rows import Row, Speed
from toolkit.measure.timing import LatencyStats


def _report(tmp_path: Path) -> BenchReport:
    latency = LatencyStats(50, 1.0, 1.5, 2.0, 1.1, 0.2, 0.9, "perf_counter_ns around predict()")
    reference = Metrics(20, 1.0, 0.0, 0.0, 1.0, 0.8, 1.0, 0.0, (0.9, 0.7))
    int8 = Metrics(20, 0.9, 0.2, 0.01, 0.99, 0.75, 1.0, 0.05, (0.8, 0.7))
    rows = (
        Row("savedmodel", "tf", "tf", "float32", "savedmodel", 100_000, "ok",
            speed=Speed(latency=latency), metrics=reference),
        Row("tflite_int8", "litert", "litert x1", "int8", "tflite", 20_000, "drift",
            speed=Speed(latency=latency), metrics=int8,
            checks=(Check("agreement", 0.9, 0.98, ">=", False),)),
        Row("tfjs_float32", "tfjs-node", "tfjs-node/wasm", "float32", "tfjs", 40_000,
            "failed", reason="node is not installed"),
    )  # fmt: skip
    manifest = Manifest(root=tmp_path, input=InputSpec(4, 4, 3), labels=["a", "b"])
    return BenchReport(
        rows=rows,
        config=BenchConfig(tmp_path),
        manifest=manifest,
        evalset_source="test split, 20 images",
        images=20,
        labelled=True,
        breaches=(Breach("size", "tflite_int8", "litert x1", "size_kb", 19.5, 10, "too big"),),
        created="2026-01-01T00:00:00+00:00",
    )


def test_write_report_writes_all_three(tmp_path: Path) -> None:
    report = _report(tmp_path)
    out, plots = write_report(report.to_dict(), tmp_path / "report")
    data = json.loads((out / "report.json").read_text())
    assert data["schema"] == SCHEMA
    assert data["status"] == {
        "ok": False,
        "drifted": ["tflite_int8"],
        "failed": ["tfjs_float32|tfjs-node/wasm"],
        "skipped": [],
        "breaches": 1,
    }
    assert data["rows"][1]["checks"][0]["passed"] is False
    assert set(plots) == {"latency.png", "size_accuracy.png", "per_class.png"}
    assert all((out / name).stat().st_size > 1000 for name in plots)
    markdown = (out / "report.md").read_text()
    assert "| tflite_int8 | litert x1 | DRIFT |" in markdown
    assert "- BREACH: too big" in markdown and "![per_class.png](per_class.png)" in markdown
    assert report_markdown(data) == markdown


def test_a_foreign_folder_is_never_replaced(tmp_path: Path) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(PathError, match=r"not empty and holds no report\.json"):
        write_report(_report(tmp_path).to_dict(), foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_terminal_table_shows_every_problem(tmp_path: Path) -> None:
    console = Console(width=80, record=True)
    console.print(render_bench(_report(tmp_path)))
    text = console.export_text()
    assert "tflite_int8 on litert x1: agreement 90.00% (limit >= 98.00%)" in text
    assert "tfjs_float32 on tfjs-node/wasm: failed: node is not installed" in text
    assert "gate: too big" in text and "tfjs_float32" in text


def test_machine_info_names_the_machine() -> None:
    info = machine_info()
    assert info["cores"] >= 1 and info["python"].startswith("3.")
    assert info["tensorflow"] and info["ai_edge_litert"] and info["date"].endswith("+00:00")
