"""`cnnx package`: the CLI, the dispatch, bad input, and zips that cannot escape."""

from __future__ import annotations

import json
import os
import shutil
import sys
import zipfile
from pathlib import Path, PurePosixPath

import pytest

from tests.bundle_artifacts import SIZE, tiny_artifacts
from tests.cli import cnnx
from tests.corpus.artifacts import fake_tfjs_artifacts
from toolkit.data.inputspec import InputSpec
from toolkit.errors import PathError
from toolkit.manifest import load_manifest
from toolkit.packaging import package
from toolkit.packaging.bundle import spec_normalization
from toolkit.packaging.zipping import bundle_members, safe_member_name, write_zip


@pytest.fixture()
def tiny(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    """A private copy of the tiny artifacts folder (tests here change it)."""
    copy = tmp_path / "artifacts"
    shutil.copytree(tiny_artifacts(tmp_path_factory), copy)
    return copy


@pytest.mark.slow
def test_tiny_artifacts_are_what_the_bundles_expect(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    manifest = load_manifest(tiny_artifacts(tmp_path_factory))
    int8 = manifest.artifact("tflite_int8")
    manifest.check_files(int8)
    assert int8.inputs[0]["dtype"] == "uint8"
    assert int8.inputs[0]["shape"] == [1, SIZE, SIZE, 3]
    # Raw bytes go straight in: the calibration noise spans 0..255.
    assert int8.inputs[0]["quantization"] == {"scale": 1.0, "zero_point": 0}
    assert manifest.artifact("tflite_float32").outputs[0]["dtype"] == "float32"


# --- zips -----------------------------------------------------------------------------


ESCAPING = ["/etc/passwd", "../evil.txt", "a/../../evil", "a/./../b", "C:/x", "C:evil"]
ESCAPING += ["a\\..\\b", "", "a//b"]


@pytest.mark.parametrize("name", ESCAPING)
def test_zip_member_names_that_could_escape_are_refused(name: str, tmp_path: Path) -> None:
    with pytest.raises(PathError):
        safe_member_name(name)
    source = tmp_path / "file.txt"
    source.write_text("x")
    for top in (None, "bundle"):
        with pytest.raises(PathError, match="refusing zip member"):
            write_zip([(source, name)], tmp_path / "out.zip", top=top)
    assert not (tmp_path / "out.zip").exists()


def test_safe_names_pass_unchanged() -> None:
    assert safe_member_name("rpi/models/model_int8.tflite") == "rpi/models/model_int8.tflite"
    assert safe_member_name("a..b/c...d") == "a..b/c...d"  # dots inside names are fine


def test_write_zip_refuses_a_member_twice_and_writes_nothing(tmp_path: Path) -> None:
    source = tmp_path / "file.txt"
    source.write_text("x")
    target = tmp_path / "out.zip"
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


def _check_zip(path: Path) -> None:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        assert names, "empty zip"
        top = {PurePosixPath(n).parts[0] for n in names}
        assert top == {path.stem}, f"members outside one top folder: {sorted(top)}"
        for info in archive.infolist():
            name = info.filename
            assert not name.startswith("/") and "\\" not in name and ":" not in name, name
            assert ".." not in PurePosixPath(name).parts, name
            mode = info.external_attr >> 16
            assert (mode & 0o170000) in (0, 0o100000, 0o040000), f"{name} is not a regular file"


@pytest.mark.slow
def test_web_bundle_zip_cannot_escape_and_symlinks_are_refused(tmp_path: Path) -> None:
    artifacts = fake_tfjs_artifacts(tmp_path / "artifacts")
    done = cnnx("package", "--target", "web", str(artifacts), "--out", str(tmp_path / "web"))
    assert done.returncode == 0, done.stderr
    _check_zip(tmp_path / "web.zip")
    # A symlink planted in the artifacts must not smuggle a file from outside into a bundle.
    (tmp_path / "outside.txt").write_text("not to be served\n")
    (artifacts / "tfjs" / "float32" / "extra.bin").symlink_to(tmp_path / "outside.txt")
    again = cnnx("package", "--target", "web", str(artifacts), "--out", str(tmp_path / "web2"))
    if again.returncode == 0:
        _check_zip(tmp_path / "web2.zip")
        with zipfile.ZipFile(tmp_path / "web2.zip") as archive:
            for name in archive.namelist():
                assert b"not to be served" not in archive.read(name), name
    else:
        assert again.returncode in (3, 7), again.stderr
        assert len(again.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "web2").exists() and not (tmp_path / "web2.zip").exists()


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
    code, stdout, stderr = cnnx("package", "--target", "rpi", str(tiny), "--out", str(out))
    assert code == 0, stderr
    assert f"rpi bundle: {out}" in stdout and "rpi.zip" in stdout
    assert (out / "classify.py").is_file() and out.with_suffix(".zip").is_file()
    stamp = (out / "bundle.json").read_bytes()

    code, _, stderr = cnnx("package", "--target", "rpi", str(tiny), "--out", str(out))
    assert code == 3
    assert stderr.startswith("cnnx: error: ") and "already exists" in stderr
    assert "--force" in stderr and len(stderr.strip().splitlines()) == 1
    assert (out / "bundle.json").read_bytes() == stamp  # untouched

    (out / "stray.txt").write_text("left by hand")
    code, _, stderr = cnnx(
        "package", "--target", "rpi", str(tiny), "--out", str(out), "--force", "--no-zip"
    )
    assert code == 0, stderr
    assert not (out / "stray.txt").exists()  # replaced whole, never merged


def test_missing_int8_model_names_it_and_the_export_command(tiny: Path, tmp_path: Path) -> None:
    manifest = load_manifest(tiny)
    del manifest.artifacts["tflite_int8"]
    manifest.save()
    out = tmp_path / "rpi"
    code, _, stderr = cnnx("package", "--target", "rpi", str(tiny), "--out", str(out))
    assert code == 7
    assert "'tflite_int8'" in stderr
    assert "cnnx export --to tflite --quantize int8" in stderr
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
    assert not out.exists() and not out.with_suffix(".zip").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".rpi")]  # no leftovers


def test_changed_model_file_is_refused(tiny: Path, tmp_path: Path) -> None:
    model = tiny / "tflite" / "model_float32.tflite"
    model.write_bytes(model.read_bytes() + b"\x00")
    code, _, stderr = cnnx(
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
    code, _, stderr = cnnx(
        "package", "--target", "android", str(tiny), "--out", str(tmp_path / "a")
    )
    assert code == 7
    assert "not int8" in stderr and "uint8" in stderr


def test_missing_artifacts_folder_and_bad_target(tmp_path: Path) -> None:
    code, _, stderr = cnnx("package", "--target", "rpi", str(tmp_path / "none"))
    assert code == 3 and "does not exist" in stderr
    code, _, _ = cnnx("package", "--target", "ios", str(tmp_path))
    assert code == 2
    code, _, stderr = cnnx("package", "--target", "rpi", str(tmp_path))
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
