"""Datasets: the shapes generator, the CIFAR-10 reader and image folders."""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.corpus.cifar10 import write_archive
from toolkit.data import DataSpec, load_dataset, parse_data_arg, split_indices
from toolkit.data.cifar10 import CLASS_NAMES as CIFAR_CLASSES
from toolkit.data.cifar10 import FOLDER
from toolkit.data.images import load_image
from toolkit.errors import DataError, PathError, UsageError

# --- shapes ---------------------------------------------------------------------------


def test_shapes_is_deterministic_balanced_and_split(tiny_data: DataSpec) -> None:
    a, b = load_dataset(tiny_data), load_dataset(tiny_data)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert a.x_train.dtype == np.uint8 and a.y_train.dtype == np.int64
    assert a.x_train.shape[1:] == (32, 32, 3)
    assert (len(a.y_train), len(a.y_val), len(a.y_test)) == (1200, 150, 150)
    assert a.num_classes == 10 and len(set(a.class_names)) == 10
    counts = np.bincount(np.concatenate([a.y_train, a.y_val, a.y_test]), minlength=10)
    assert counts.min() == counts.max() == 150  # balanced
    other = load_dataset(DataSpec(size=tiny_data.size, seed=1))
    assert not np.array_equal(a.x_train, other.x_train)  # the seed matters


def test_shapes_images_are_varied_not_trivial(tiny_data: DataSpec) -> None:
    data = load_dataset(tiny_data)
    x = data.x_train.astype(np.float32)
    # Noisy backgrounds: no image is flat; colours differ from image to image.
    assert x.std(axis=(1, 2, 3)).min() > 5
    assert x.mean(axis=(1, 2)).std(axis=0).min() > 30
    # The classes cannot be told apart by mean colour alone.
    per_class = np.stack([x[data.y_train == k].mean(axis=(0, 1, 2)) for k in range(10)])
    assert per_class.std(axis=0).max() < 12


def test_shapes_size_and_gray() -> None:
    data = load_dataset(DataSpec(size=100, image_size=24, channels=1))
    assert data.x_train.shape[1:] == (24, 24, 1)
    assert len(data.y_train) + len(data.y_val) + len(data.y_test) == 100


def test_ten_thousand_shapes_split_eight_one_one() -> None:
    # How fast they are drawn is benchmarks/train_bench.py's `shapes_10k_seconds`.
    data = load_dataset(DataSpec(size=10_000))
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (8000, 1000, 1000)


def test_spec_round_trip_and_validation() -> None:
    spec = DataSpec(kind="folder", path="/x/flowers", size=50, channels=1)
    assert DataSpec.from_dict(spec.to_dict()) == spec
    assert spec.name == "flowers"
    with pytest.raises(UsageError):
        DataSpec(kind="mnist")
    with pytest.raises(UsageError):
        DataSpec(val_fraction=0.5, test_fraction=0.5)
    with pytest.raises(DataError):
        DataSpec.from_dict(["shapes"])  # type: ignore[arg-type]


def test_split_indices_partition() -> None:
    train, val, test = split_indices(103, 0.1, 0.2, seed=3)
    together = np.concatenate([train, val, test])
    assert sorted(together.tolist()) == list(range(103))
    assert (len(val), len(test)) == (10, 21)


def test_parse_data_arg(tmp_path: Path) -> None:
    assert parse_data_arg("shapes").kind == "shapes"
    spec = parse_data_arg("cifar10", data_path=tmp_path / "c.tar.gz")
    assert spec.kind == "cifar10" and spec.path == str(tmp_path / "c.tar.gz")
    assert parse_data_arg(str(tmp_path)).kind == "folder"
    with pytest.raises(PathError, match="neither"):
        parse_data_arg(str(tmp_path / "nope"))


# --- cifar10 --------------------------------------------------------------------------


def test_cifar10_reads_the_real_format(tmp_path: Path) -> None:
    archive = tmp_path / "cifar-10-python.tar.gz"
    write_archive(archive, per_batch=20, seed=5)
    data = load_dataset(DataSpec(kind="cifar10", path=str(archive), size=None))
    assert data.class_names == CIFAR_CLASSES
    assert (len(data.y_train) + len(data.y_val), len(data.y_test)) == (100, 20)
    # Check the planar->NHWC transpose against the raw pickle of the test batch.
    with tarfile.open(archive) as tar:
        member = tar.extractfile(f"{FOLDER}/test_batch")
        assert member is not None
        raw = pickle.loads(member.read(), encoding="bytes")
    planar = raw[b"data"][3]
    np.testing.assert_array_equal(data.x_test[3][..., 0].reshape(-1), planar[:1024])
    np.testing.assert_array_equal(data.x_test[3][..., 2].reshape(-1), planar[2048:])
    np.testing.assert_array_equal(data.y_test, raw[b"labels"])

    # The same through an extracted folder, and through the Keras cache.
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "x", filter="data")
    by_folder = load_dataset(DataSpec(kind="cifar10", path=str(tmp_path / "x"), size=None))
    np.testing.assert_array_equal(by_folder.x_test, data.x_test)


def test_cifar10_from_keras_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "kh" / "datasets"
    cache.mkdir(parents=True)
    write_archive(cache / "cifar-10-python.tar.gz", per_batch=10)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    data = load_dataset(DataSpec(kind="cifar10", size=30))
    assert len(data.y_train) + len(data.y_val) == 30 and len(data.y_test) == 6


def test_cifar10_refuses_code_in_pickles(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (print, ("pwned",))

    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        blob = pickle.dumps({b"data": Evil(), b"labels": []})
        info = tarfile.TarInfo(f"{FOLDER}/data_batch_1")
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
    with pytest.raises(DataError, match=r"refusing to load builtins\.print"):
        load_dataset(DataSpec(kind="cifar10", path=str(archive), size=None))


def test_cifar10_damaged_archive(tmp_path: Path) -> None:
    archive = tmp_path / "c.tar.gz"
    write_archive(archive)
    archive.write_bytes(archive.read_bytes()[:200])
    with pytest.raises(DataError, match=r"c\.tar\.gz"):
        load_dataset(DataSpec(kind="cifar10", path=str(archive), size=None))
    with pytest.raises(PathError):
        load_dataset(DataSpec(kind="cifar10", path=str(tmp_path / "missing"), size=None))


# --- image folders --------------------------------------------------------------------


def _folder(root: Path, classes: dict[str, int], mode: str = "RGB", size: int = 40) -> Path:
    rng = np.random.default_rng(0)
    for name, count in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            shape = (size, size + 7, 3) if mode == "RGB" else (size, size + 7)
            pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
            Image.fromarray(pixels).convert(mode).save(root / name / f"{i}.png")
    return root


def test_folder_rgb_resized_with_class_names(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", {"cats": 12, "dogs": 8})
    (root / "cats" / "notes.txt").write_text("not an image, skipped")
    data = load_dataset(DataSpec(kind="folder", path=str(root), size=None, image_size=24))
    assert data.class_names == ["cats", "dogs"]
    assert data.x_train.shape[1:] == (24, 24, 3)
    total = np.bincount(np.concatenate([data.y_train, data.y_val, data.y_test]))
    assert total.tolist() == [12, 8]


def test_folder_of_grayscale_gives_one_channel(tmp_path: Path) -> None:
    root = _folder(tmp_path / "g", {"a": 5, "b": 5}, mode="L")
    data = load_dataset(DataSpec(kind="folder", path=str(root), size=None, image_size=20))
    assert data.x_train.shape[-1] == 1


def test_folder_corrupt_image_names_the_file(tmp_path: Path) -> None:
    root = _folder(tmp_path / "c", {"a": 3, "b": 3})
    (root / "b" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(DataError, match=r"broken\.jpg"):
        load_dataset(DataSpec(kind="folder", path=str(root), size=None))


def test_folder_empty_and_single_class(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class subfolders"):
        load_dataset(DataSpec(kind="folder", path=str(tmp_path / "empty")))
    root = _folder(tmp_path / "one", {"only": 4})
    with pytest.raises(DataError, match="single class"):
        load_dataset(DataSpec(kind="folder", path=str(root)))


# --- the image loader -----------------------------------------------------------------


def test_cmyk_16bit_palette_and_alpha(tmp_path: Path) -> None:
    Image.new("CMYK", (4, 4), (0, 255, 255, 0)).save(tmp_path / "red.jpg")
    red = load_image(tmp_path / "red.jpg")
    assert red.shape == (4, 4, 3) and red[..., 0].min() > 200 and red[..., 1].max() < 60

    sixteen = np.full((4, 4), 65535 // 2, dtype=np.uint16)
    Image.fromarray(sixteen).save(tmp_path / "mid16.png")
    mid = load_image(tmp_path / "mid16.png", channels=1)
    assert mid.shape == (4, 4, 1) and 125 <= int(mid[0, 0, 0]) <= 129  # scaled, not clipped

    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    assert load_image(tmp_path / "clear.png").min() == 255  # transparent -> white

    Image.new("P", (4, 4), 0).save(tmp_path / "pal.gif")
    assert load_image(tmp_path / "pal.gif", size=(8, 6)).shape == (8, 6, 3)


def test_pixel_limit_is_checked_before_decoding(tmp_path: Path) -> None:
    Image.new("L", (300, 300)).save(tmp_path / "big.png")
    with pytest.raises(DataError, match=r"big.png has 300x300 pixels"):
        load_image(tmp_path / "big.png", max_pixels=50_000)


def test_truncated_image_names_the_file(tmp_path: Path) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "cut.png")
    data = (tmp_path / "cut.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut\.png"):
        load_image(tmp_path / "cut.png")
