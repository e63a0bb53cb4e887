"""`cnnx package`: the CLI, the dispatch, bad input, and zips that cannot escape."""

from __future__ import annotations

import json
import os
import shutil
import sys
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.test_package_support import tiny_artifacts
from toolkit.cli import app
from toolkit.data.inputspec import InputSpec
from toolkit.errors import PathError
from toolkit.manifest import load_manifest
from toolkit.packaging import package
from toolkit.packaging.bundle import spec_normalization
from toolkit.packaging.zipping import bundle_members, safe_member_name, write_zip

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture()
def tiny(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    """A private copy of the tiny artifacts folder (tests here change it)."""
    copy = tmp_path / "artifacts"
    shutil.copytree(tiny_artifacts(tmp_path_factory.getbasetemp()), copy)
    return copy


# --- zips -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["/etc/passwd", "../evil.txt", "a/../../evil", "a/./../b", "C:/x", "a\\..\\b", "", "a//b"],
)
def test_zip_member_names_that_could_escape_are_refused(name: str) -> None:
    with pytest.raises(PathError):
        safe_member_name(name)


def test_safe_names_pass_unchanged() -> None:
    assert safe_member_name("rpi/models/model_int8.tflite") == "rpi/models/model_int8.tflite"
    assert safe_member_name("a..b/c...d") == "a..b/c...d"  # dots inside names are fine


def test_write_zip_refuses_escaping_members_and_writes_nothing(tmp_path: Path) -> None:
    source = tmp_path / "file.txt"
    source.write_text("x")
    target = tmp_path / "out.zip"
    for name in ("../file.txt", "/abs/file.txt"):
        with pytest.raises(PathError, match="refusing zip member"):
            write_zip([(source, name)], target)
    with pytest.raises(PathError, match="appears twice"):
        write_zip([(source, "a.txt"), (source, "a.txt")], target)
    assert not target.exists()


def test_zip_folder_refuses_symlinks(tmp_path: Path) -> None:
    folder = tmp_path / "bundle"
    folder.mkdir()
    (folder / "ok.txt").write_text("fine")
    os.symlink("/etc/hostname", folder / "link")
    with pytest.raises(PathError, match="symlink"):
        write_zip(bundle_members(folder), tmp_path / "bundle.zip", top=folder.name)
    assert not (tmp_path / "bundle.zip").exists()
    (folder / "link").unlink()
    os.symlink(tmp_path, folder / "dirlink")  # a link to a folder: never followed
    with pytest.raises(PathError, match="symlink"):
        write_zip(bundle_members(folder), tmp_path / "bundle.zip", top=folder.name)


def test_zip_folder_is_reproducible_and_rooted(tmp_path: Path) -> None:
    folder = tmp_path / "web"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "b.txt").write_text("b")
    (folder / "a.txt").write_text("a")
    first = write_zip(bundle_members(folder), tmp_path / "one.zip", top=folder.name).read_bytes()
    os.utime(folder / "a.txt", (0, 0))
    second = write_zip(bundle_members(folder), tmp_path / "two.zip", top=folder.name).read_bytes()
    assert first == second  # fixed timestamps, sorted members
    with zipfile.ZipFile(tmp_path / "one.zip") as archive:
        assert archive.namelist() == ["web/a.txt", "web/sub/b.txt"]


# --- normalization ----------------------------------------------------------------------


def test_spec_normalization_is_the_spec_as_mean_and_std() -> None:
    import numpy as np

    pixels = np.array([[0.0, 100.0, 255.0]], dtype=np.float32)
    for spec in (
        InputSpec(8, 8, 3),
        InputSpec(8, 8, 3, scale=1 / 127.5, offset=-1.0),
        InputSpec(8, 8, 3, scale=1 / 255),
        InputSpec(8, 8, 3, mean=(123.7, 116.3, 103.5), std=(58.4, 57.1, 57.4)),
        InputSpec(8, 8, 1, color="GRAY", mean=(127.5,), std=(127.5,)),
    ):
        mean, std = spec_normalization(spec)
        assert len(mean) == len(std) == spec.channels
        x = np.repeat(pixels.T, spec.channels, axis=1)  # each pixel value on every channel
        np.testing.assert_allclose((x - mean) / std, spec.apply(x), rtol=1e-6, atol=1e-6)
    assert spec_normalization(InputSpec(8, 8, 3)) == ([0.0] * 3, [1.0] * 3)
    assert spec_normalization(InputSpec(8, 8, 3, scale=1 / 127.5, offset=-1.0)) == (
        [127.5] * 3,
        [127.5] * 3,
    )


# --- the command ---------------------------------------------------------------------


@pytest.mark.slow
def test_package_rpi_cli_writes_folder_and_zip_and_refuses_to_merge(
    tiny: Path, tmp_path: Path
) -> None:
    out = tmp_path / "bundles" / "rpi"
    code, stdout, stderr = invoke("package", "--target", "rpi", str(tiny), "--out", str(out))
    assert code == 0, stderr
    assert f"rpi bundle: {out}" in stdout and "rpi.zip" in stdout
    assert (out / "classify.py").is_file() and out.with_suffix(".zip").is_file()
    stamp = (out / "bundle.json").read_bytes()

    code, _, stderr = invoke("package", "--target", "rpi", str(tiny), "--out", str(out))
    assert code == 3
    assert stderr.startswith("cnnx: error: ") and "already exists" in stderr
    assert "--force" in stderr and len(stderr.strip().splitlines()) == 1
    assert (out / "bundle.json").read_bytes() == stamp  # untouched

    (out / "stray.txt").write_text("left by hand")
    code, _, stderr = invoke(
        "package", "--target", "rpi", str(tiny), "--out", str(out), "--force", "--no-zip"
    )
    assert code == 0, stderr
    assert not (out / "stray.txt").exists()  # replaced whole, never merged


def test_missing_int8_model_names_it_and_the_export_command(tiny: Path, tmp_path: Path) -> None:
    manifest = load_manifest(tiny)
    del manifest.artifacts["tflite_int8"]
    manifest.save()
    out = tmp_path / "rpi"
    code, _, stderr = invoke("package", "--target", "rpi", str(tiny), "--out", str(out))
    assert code == 7
    assert "'tflite_int8'" in stderr
    assert "cnnx export --to tflite --quantize int8" in stderr
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
    assert not out.exists() and not out.with_suffix(".zip").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".rpi")]  # no leftovers


def test_changed_model_file_is_refused(tiny: Path, tmp_path: Path) -> None:
    model = tiny / "tflite" / "model_float32.tflite"
    model.write_bytes(model.read_bytes() + b"\x00")
    code, _, stderr = invoke(
        "package", "--target", "android", str(tiny), "--out", str(tmp_path / "a")
    )
    assert code == 7
    assert "does not match its sha256" in stderr and "model_float32.tflite" in stderr
    assert not (tmp_path / "a").exists()


def test_int8_input_android_bundle_is_refused(tiny: Path, tmp_path: Path) -> None:
    manifest = load_manifest(tiny)
    entry = manifest.artifacts["tflite_int8"]
    entry.inputs[0]["dtype"] = "int8"  # what --io int8 would record
    manifest.save()
    code, _, stderr = invoke(
        "package", "--target", "android", str(tiny), "--out", str(tmp_path / "a")
    )
    assert code == 7
    assert "not int8" in stderr and "uint8" in stderr


def test_missing_artifacts_folder_and_bad_target(tmp_path: Path) -> None:
    code, _, stderr = invoke("package", "--target", "rpi", str(tmp_path / "none"))
    assert code == 3 and "does not exist" in stderr
    code, _, _ = invoke("package", "--target", "ios", str(tmp_path))
    assert code == 2
    code, _, stderr = invoke("package", "--target", "rpi", str(tmp_path))
    assert code == 3 and "manifest.json" in stderr


def test_missing_mediapipe_says_how_to_install_it(
    tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from toolkit.errors import RuntimeUnavailable

    monkeypatch.setitem(sys.modules, "mediapipe", None)  # import mediapipe fails
    with pytest.raises(RuntimeUnavailable) as raised:
        package("android", tiny, tmp_path / "android")
    assert "MediaPipe is not importable" in raised.value.one_line()
    assert "pip install 'cnnx[android]'" in raised.value.one_line()
    assert not (tmp_path / "android").exists()


def test_package_dispatch_default_out_and_unknown_target(
    tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from toolkit.errors import UsageError

    with pytest.raises(UsageError, match="unknown bundle target"):
        package("ios", tiny)
    monkeypatch.chdir(tmp_path)
    folder = package("rpi", tiny, make_zip=False)
    assert folder == tmp_path / "bundles" / "rpi"
    assert json.loads((folder / "bundle.json").read_text())["target"] == "rpi"
    assert not (tmp_path / "bundles" / "rpi.zip").exists()
