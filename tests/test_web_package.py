"""`package_web`: a self-contained static folder that runs from a plain static host.

The bundle is served by Python's own http.server (no COOP/COEP, no cnnx code) and the
page must still load its model from relative URLs and classify the samples, whichever
engines it ships (TF.js, LiteRT.js, ONNX Runtime Web). The build is atomic and never
merges into an existing folder. Most tests package the tiny folder of tests/web_support.py;
the ONNX bundles package the session's artifacts, which hold .onnx files.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.web_support import open_page, plain_static_host, tiny_artifacts_dir
from toolkit.errors import ArtifactError, PathError, UsageError
from toolkit.manifest import load_manifest, sha256_file
from toolkit.packaging import web as web_packaging
from toolkit.packaging.web import package_web
from toolkit.web.page import ENGINE_VENDOR

pytest_plugins = ["tests.web_support"]
pytestmark = pytest.mark.slow  # builds Keras models


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_artifacts_dir(tmp_path_factory)


@pytest.fixture(scope="module")
def bundle(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return package_web(source, tmp_path_factory.mktemp("bundles") / "web", make_zip=False)


def test_bundle_holds_the_page_tfjs_and_samples_only(bundle: Path, source: Path) -> None:
    for name in ("index.html", "app.js", "style.css", "README.md", "_headers", "bundle.json"):
        assert (bundle / name).is_file(), name
    vendor = sorted(p.name for p in (bundle / "vendor").iterdir())
    assert vendor == sorted(ENGINE_VENDOR["tfjs"])  # TF.js alone by default: no LiteRT.js
    manifest = load_manifest(bundle / "artifacts")
    assert sorted(manifest.artifacts) == ["tfjs_float32"]  # no SavedModel, no TFLite
    for entry in manifest.artifacts.values():
        manifest.check_files(entry)  # copied byte for byte
    assert not (bundle / "artifacts" / "saved_model").exists()
    assert not (bundle / "artifacts" / "tflite").exists()
    source_samples = sorted(p.name for p in (source / "samples").iterdir())
    assert sorted(p.name for p in (bundle / "artifacts" / "samples").iterdir()) == source_samples
    assert "Cross-Origin-Embedder-Policy: require-corp" in (bundle / "_headers").read_text()
    # Only relative URLs: the page works under any path prefix.
    html = (bundle / "index.html").read_text()
    assert 'src="/' not in html and 'href="/' not in html and "http" not in html


def test_bundle_json_records_every_file(bundle: Path, source: Path) -> None:
    record = json.loads((bundle / "bundle.json").read_text())
    assert (record["schema"], record["target"]) == ("cnnx.bundle/2", "web")
    assert record["source"]["manifest_sha256"] == sha256_file(source / "manifest.json")
    model = record["models"]["tfjs_float32"]
    assert sha256_file(bundle / model["file"]) == model["sha256"] and model["size"] > 0
    listed = {f["path"]: f["sha256"] for f in record["files"]}
    on_disk = {
        p.relative_to(bundle).as_posix()
        for p in bundle.rglob("*")
        if p.is_file() and p.name != "bundle.json"
    }
    assert set(listed) == on_disk
    assert all(sha256_file(bundle / path) == digest for path, digest in listed.items())


def test_an_existing_bundle_is_never_merged(bundle: Path, source: Path) -> None:
    before = sorted(p.name for p in bundle.iterdir())
    with pytest.raises(PathError, match="already exists"):
        package_web(source, bundle)
    assert sorted(p.name for p in bundle.iterdir()) == before


def test_force_replaces_it_whole(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "web"
    out.mkdir()
    (out / "stale.txt").write_text("from an older bundle")
    package_web(source, out, force=True, make_zip=False)
    assert not (out / "stale.txt").exists() and (out / "index.html").is_file()


def test_an_interrupted_build_leaves_nothing(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copies = 0
    real_copy = web_packaging._copy

    def failing_copy(a: Path, b: Path) -> None:
        nonlocal copies
        copies += 1
        if copies == 6:
            raise KeyboardInterrupt
        real_copy(a, b)

    monkeypatch.setattr(web_packaging, "_copy", failing_copy)
    with pytest.raises(KeyboardInterrupt):
        package_web(source, tmp_path / "web")
    assert list(tmp_path.iterdir()) == []


def test_the_zip_is_made_before_the_swap(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The zip is built from the staged folder before it takes OUT's place (the shared
    writer, toolkit/packaging/bundle.py): a failure while zipping leaves neither."""
    from toolkit.packaging import bundle as bundle_writer

    def no_zip(*args: object, **kwargs: object) -> bytes:
        raise KeyboardInterrupt

    monkeypatch.setattr(bundle_writer, "zip_bytes", no_zip)
    with pytest.raises(KeyboardInterrupt):
        package_web(source, tmp_path / "web")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    out = package_web(source, tmp_path / "web")
    with zipfile.ZipFile(out.with_suffix(".zip")) as archive:
        zipped = {n.removeprefix("web/") for n in archive.namelist()}
    assert zipped == {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}


def test_a_model_changed_after_export_is_refused(source: Path, tmp_path: Path) -> None:
    copy = tmp_path / "artifacts"
    shutil.copytree(source, copy)
    shard = next((copy / "tfjs" / "float32").glob("*.bin"))
    shard.write_bytes(shard.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(ArtifactError, match="sha256"):
        package_web(copy, tmp_path / "web")
    assert not (tmp_path / "web").exists()


def test_a_folder_without_tfjs_is_refused(source: Path, tmp_path: Path) -> None:
    copy = tmp_path / "artifacts"
    shutil.copytree(source, copy)
    manifest = load_manifest(copy)
    del manifest.artifacts["tfjs_float32"]
    manifest.save()
    with pytest.raises(ArtifactError, match=r"has no TF\.js artifact") as error:
        package_web(copy, tmp_path / "web")
    assert "cnnx export --to tfjs" in error.value.one_line()


@pytest.mark.browser
def test_the_bundle_runs_from_a_plain_static_host(
    chromium: Any, bundle: Path, source: Path
) -> None:
    with plain_static_host(bundle) as url:
        page, log = open_page(chromium, url)
        info = page.evaluate("window.cnnx.info()")
        assert info["backend"] == "wasm" and info["crossOriginIsolated"] is False
        records = json.loads((source / "samples" / "samples.json").read_text())["samples"]
        for i, record in enumerate(records):
            result = page.evaluate("(i) => window.cnnx.classifySample(i)", i)
            assert result["truth"] == record["label"]
            assert result["top"][0]["probability"] > 0.5
        assert log.errors == []
        page.close()


def test_the_engine_picks_what_ships(source: Path, tmp_path: Path) -> None:
    lite = package_web(source, tmp_path / "lite", engine="litertjs", make_zip=False)
    vendor = sorted(p.relative_to(lite / "vendor").as_posix() for p in lite.rglob("vendor/**/*"))
    assert [v for v in vendor if "." in v] == sorted(ENGINE_VENDOR["litertjs"])  # no TF.js
    manifest = load_manifest(lite / "artifacts")
    assert sorted(manifest.artifacts) == ["tflite_float32"]
    manifest.check_files(manifest.artifact("tflite_float32"))
    assert not (lite / "artifacts" / "tfjs").exists()
    models = json.loads((lite / "bundle.json").read_text())["models"]
    assert {k: (m["engine"], m["file"]) for k, m in models.items()} == {
        "tflite_float32": ("litertjs", "artifacts/" + manifest.artifact("tflite_float32").path)
    }
    assert "with LiteRT.js (tflite_float32)" in (lite / "README.md").read_text()

    both = package_web(source, tmp_path / "both", engine="both", make_zip=False)
    assert sorted(load_manifest(both / "artifacts").artifacts) == ["tfjs_float32", "tflite_float32"]
    models = json.loads((both / "bundle.json").read_text())["models"]
    assert {k: m["engine"] for k, m in models.items()} == {
        "tfjs_float32": "tfjs",
        "tflite_float32": "litertjs",
    }

    with pytest.raises(UsageError, match="unknown web engine 'coreml'"):
        package_web(source, tmp_path / "x", engine="coreml")
    copy = tmp_path / "artifacts"
    shutil.copytree(source, copy)
    manifest = load_manifest(copy)
    del manifest.artifacts["tflite_float32"]
    manifest.save()
    with pytest.raises(ArtifactError, match=r"no TFLite artifact for LiteRT\.js") as error:
        package_web(copy, tmp_path / "y", engine="both")
    assert "cnnx export --to tflite" in error.value.one_line()
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


@pytest.mark.browser
def test_both_engines_run_from_a_plain_static_host(
    chromium: Any, source: Path, tmp_path: Path
) -> None:
    bundle = package_web(source, tmp_path / "web", engine="both", make_zip=False)
    with plain_static_host(bundle) as url:
        # No COOP/COEP here: the threaded build cannot start, and the page says so.
        page, log = open_page(chromium, url + "?model=tflite_float32&backend=wasm-threaded")
        info = page.evaluate("window.cnnx.info()")
        assert (info["engine"], info["backend"]) == ("litertjs", "wasm")
        assert info["crossOriginIsolated"] is False
        assert info["backendNote"].startswith(
            "wasm-threaded unavailable (the page is not cross-origin isolated"
        )
        assert page.evaluate("window.cnnx.classifySample(0)")["top"][0]["probability"] > 0.5
        info = page.evaluate("window.cnnx.setEngine('tfjs')")
        assert (info["artifact"], info["backend"]) == ("tfjs_float32", "wasm")
        info = page.evaluate("window.cnnx.setEngine('litertjs')")  # its default here
        assert (info["backend"], info["backendNote"]) == ("wasm", "")
        badge = page.locator("#backend-status").inner_text()
        assert badge == "LiteRT.js · wasm · relaxed SIMD · 1 thread · not isolated"
        assert log.errors == []
        page.close()


@pytest.mark.browser
def test_the_onnx_and_all_bundles_run_from_a_plain_static_host(
    chromium: Any, artifacts: Path, tmp_path: Path
) -> None:
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
    with plain_static_host(everything) as url:
        page, log = open_page(chromium, url + "?model=onnx_float32&backend=wasm")
        info = page.evaluate("window.cnnx.info()")
        assert (info["engine"], info["backend"]) == ("onnx", "wasm")
        assert set(info["engines"]) == {"tfjs", "litertjs", "onnx"}
        top = page.evaluate("window.cnnx.classifySample(0)")["top"][0]
        assert top["probability"] > 0
        badge = page.locator("#backend-status").inner_text()
        assert badge.startswith("ONNX Runtime Web · wasm") and "not isolated" in badge
        assert log.errors == []
        page.close()


def test_engine_is_for_the_web_bundle_only(source: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from toolkit.cli import app

    args = ["package", "--target", "rpi", str(source), "--out", str(tmp_path / "rpi")]
    result = CliRunner().invoke(app, [*args, "--engine", "litertjs"])
    assert result.exit_code == 2
    assert "--engine applies to --target web, not rpi" in result.stderr
    assert not (tmp_path / "rpi").exists()
