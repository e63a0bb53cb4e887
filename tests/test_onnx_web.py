"""The `onnxruntime-web` runtime: ONNX Runtime Web in the demo page in headless Chromium,
on the session's real .onnx exports, against native ONNX Runtime and the SavedModel; the
three engines side by side in bench's browser recommendation; the web bundle's
`--engine onnx|all` running from a plain static host."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from test_web_package import plain_static_host
from test_web_support import PageLog, launch_chromium, per_image_ms, sample_pixels
from typer.testing import CliRunner

from toolkit.cli import app
from toolkit.manifest import Manifest, load_manifest
from toolkit.packaging.web import package_web
from toolkit.runtimes import RUNTIMES, RuntimeSkipped, load, ort_web
from toolkit.runtimes import browser as browser_runtime
from toolkit.web.page import ENGINE_VENDOR

runner = CliRunner()


@pytest.fixture(scope="module", autouse=True)
def close_chromium_after_module() -> Iterator[None]:
    yield
    browser_runtime.shutdown()


@pytest.fixture(scope="module")
def manifest(artifacts: Path) -> Manifest:
    return load_manifest(artifacts)


@pytest.fixture(scope="module")
def batch(manifest: Manifest) -> np.ndarray:
    return manifest.input.apply(sample_pixels(manifest.root)[1])


@pytest.fixture(scope="module")
def expected(manifest: Manifest, batch: np.ndarray) -> dict[str, np.ndarray]:
    out = {}
    with load("tf", manifest, manifest.artifact("savedmodel")) as model:
        out["savedmodel"] = model.predict(batch)
    with load("onnxruntime", manifest, manifest.artifact("onnx_int8")) as model:
        out["onnx_int8"] = model.predict(batch)
    return out


def test_the_registry_names_the_runtime() -> None:
    assert RUNTIMES["onnxruntime-web"].supported_variants == ort_web.BACKENDS
    assert RUNTIMES["onnxruntime-web"].formats == RUNTIMES["onnxruntime"].formats == ("onnx",)


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["wasm", "wasm-threaded", "webgpu"])
@pytest.mark.parametrize("artifact", ["onnx_float32", "onnx_int8"])
def test_each_backend_gives_the_native_answers_in_chromium(
    manifest: Manifest,
    batch: np.ndarray,
    expected: dict[str, np.ndarray],
    artifact: str,
    backend: str,
) -> None:
    try:
        model = load("onnxruntime-web", manifest, manifest.artifact(artifact), backend=backend)
    except RuntimeSkipped as skipped:
        pytest.skip(str(skipped))  # no WebGPU adapter in this Chromium: said, never faked
    with model:
        probs = model.predict(batch)
        info = model.info
    assert (info.runtime, info.backend) == ("onnxruntime-web", backend)
    assert info.details["engine"] == "ONNX Runtime Web" and info.details["engine_version"]
    assert info.details["cross_origin_isolated"] is True
    if backend == "wasm-threaded":
        assert info.threads is not None and info.threads >= 2
    assert probs.dtype == np.float32 and probs.shape == expected["savedmodel"].shape
    if artifact == "onnx_float32":
        assert np.abs(probs - expected["savedmodel"]).max() < 1e-4
    else:
        # The same QDQ graph as native ONNX Runtime, on other int8 kernels.
        assert (probs.argmax(1) == expected["onnx_int8"].argmax(1)).mean() >= 0.95
        assert np.abs(probs - expected["onnx_int8"]).max() < 0.05


@pytest.mark.browser
@pytest.mark.slow
def test_bench_puts_the_three_engines_side_by_side(artifacts: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, [
        "bench", str(artifacts), "--runtimes", "onnxruntime,browser,litertjs,onnxruntime-web",
        "--artifacts", "tfjs_float32,tflite_float32,onnx_float32", "--backends", "wasm",
        "--threads", "1", "--limit", "8", "--runs", "20", "--warmup", "2", "--no-plots",
        "--out", str(tmp_path / "r"),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    rows = {row["label"].split(" ")[0]: row for row in report["rows"]}
    assert {"onnxruntime", "browser/wasm", "litertjs/wasm", "onnxruntime-web/wasm"} <= set(rows)
    web = rows["onnxruntime-web/wasm"]
    assert web["status"] == "ok" and web["latency"]["p50"] > 0
    assert web["metrics"]["max_abs"] <= 1e-4 and web["runtime_info"]["threads"] == 1
    browser_rows = [rows[k] for k in ("browser/wasm", "litertjs/wasm", "onnxruntime-web/wasm")]
    fastest = min(browser_rows, key=per_image_ms)  # ranked as the recommendation ranks
    chosen = report["recommendation"]
    assert (chosen["label"], chosen["candidates"]) == (fastest["label"], 3)
    assert "onnxruntime-web" in chosen["browser_runtimes"]


@pytest.mark.slow
def test_verify_runs_onnxruntime_web(artifacts: Path) -> None:
    args = ["--runtimes", "onnxruntime-web", "--artifacts", "onnx_float32", "--backends", "wasm"]
    result = runner.invoke(app, ["verify", str(artifacts), *args, "--json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)["rows"]
    assert row["label"] == "onnxruntime-web/wasm x1" and row["status"] == "ok"


@pytest.mark.browser
@pytest.mark.slow
def test_the_onnx_and_all_bundles_run_from_a_plain_static_host(
    artifacts: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    onnx = package_web(artifacts, tmp_path / "onnx", engine="onnx", make_zip=False)
    vendor = sorted(p.relative_to(onnx / "vendor").as_posix() for p in onnx.rglob("vendor/**/*"))
    assert [v for v in vendor if "." in v] == sorted(ENGINE_VENDOR["onnx"])  # no TF.js, LiteRT.js
    assert sorted(load_manifest(onnx / "artifacts").artifacts) == [
        "onnx_float16",
        "onnx_float32",
        "onnx_int8",
    ]
    everything = package_web(artifacts, tmp_path / "all", engine="all", make_zip=False)
    formats = {e.format for e in load_manifest(everything / "artifacts").artifacts.values()}
    assert formats == {"tfjs", "tflite", "onnx"}
    with plain_static_host(everything) as url, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page()
            log = PageLog(page)
            page.goto(url + "?model=onnx_float32&backend=wasm")
            info = page.evaluate("window.cnnx.ready")
            assert (info["engine"], info["backend"]) == ("onnx", "wasm")
            assert set(info["engines"]) == {"tfjs", "litertjs", "onnx"}
            top = page.evaluate("window.cnnx.classifySample(0)")["top"][0]
            assert top["probability"] > 0
            badge = page.locator("#backend-status").inner_text()
            assert badge.startswith("ONNX Runtime Web · wasm") and "not isolated" in badge
            assert log.errors == []
        finally:
            browser.close()
