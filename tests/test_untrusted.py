"""Untrusted files: embedded code never runs without --unsafe and images cannot exhaust
memory (the server's traversals: test_serve.py; bundle zips: test_package.py).

The unsafe models (tests/corpus/models.py) each create a marker file when their code
runs, so "was the code executed" is a fact on disk, not a guess.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli import Done, cnnx
from tests.corpus import images
from tests.corpus.models import marker
from toolkit.data.images import load_image
from toolkit.errors import DataError


def run_cli(*args: str, cwd: Path | None = None) -> Done:
    # A refusal is proven in a fresh process: no earlier load in this one can have run or
    # allowed code.
    return cnnx(*args, cwd=cwd, process=True)


# --- embedded code -----------------------------------------------------------------------

UNSAFE = [
    "lambda.keras",
    "lambda.h5",
    "lambda_keras2.h5",
    "lambda_savedmodel",
    "writefile_savedmodel",
]


@pytest.mark.slow
@pytest.mark.parametrize("name", UNSAFE)
def test_a_model_holding_code_is_refused_without_running_it(
    name: str, corpus_models: Path, tmp_path: Path
) -> None:
    marker(corpus_models).unlink(missing_ok=True)
    for args in (
        (
            "export",
            "--model",
            str(corpus_models / name),
            "--to",
            "savedmodel",
            "--out",
            str(tmp_path / "out"),
        ),
        ("info", str(corpus_models / name)),
    ):
        done = run_cli(*args, cwd=tmp_path)
        assert done.returncode == 4, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "--unsafe" in lines[0], done.stderr
        assert not marker(corpus_models).exists(), f"{name}'s code ran during cnnx {args[0]}"
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lambda.keras", "lambda_keras2.h5", "lambda_savedmodel"])
def test_with_unsafe_the_same_model_loads(name: str, corpus_models: Path, tmp_path: Path) -> None:
    marker(corpus_models).unlink(missing_ok=True)
    # In this process: --unsafe is the loader's safe_mode for this one call
    # (toolkit/sources/keras_files.py), nothing that outlives it.
    done = cnnx(
        "export",
        "--model",
        str(corpus_models / name),
        "--to",
        "savedmodel",
        "--unsafe",
        "--samples",
        "0",
        "--out",
        str(tmp_path / "out"),
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "manifest.json").is_file()
    if name.endswith("savedmodel"):
        # Loaded through its traced graph: the Keras Lambda's Python is not needed.
        return
    # The Lambda ran: proof that the refusal above was what kept it from running.
    assert marker(corpus_models).exists()
    marker(corpus_models).unlink()


# --- images ---------------------------------------------------------------------------------


def test_a_decompression_bomb_is_refused_before_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import Image

    bomb = images.decompression_bomb(tmp_path / "bomb.png")
    assert bomb.stat().st_size < 1_000_000  # small on disk, 400 megapixels once decoded

    def decode(image: Image.Image) -> None:
        raise AssertionError("the pixels were decoded before the check")

    monkeypatch.setattr(Image.Image, "load", decode)
    with pytest.raises(DataError) as caught:
        load_image(bomb, size=(16, 16))
    assert str(bomb) in caught.value.message


def test_a_bomb_below_pillows_own_limit_still_hits_ours(tmp_path: Path) -> None:
    # 8000 x 8000 = 64 MP: Pillow only warns (its error is at 179 MP); the loader refuses.
    bomb = images.decompression_bomb(tmp_path / "big.png", side=8000)
    with pytest.raises(DataError) as caught:
        load_image(bomb, size=(16, 16))
    assert str(bomb) in caught.value.message


@pytest.mark.parametrize(
    "make, channels",
    [(images.cmyk_jpeg, 3), (images.sixteen_bit_png, 3), (images.sixteen_bit_png, 1)],
)
def test_cmyk_and_16_bit_images_become_8_bit_arrays(
    make: Callable[[Path], Path], channels: int, tmp_path: Path
) -> None:
    path = make(tmp_path / ("img.jpg" if make is images.cmyk_jpeg else "img.png"))
    pixels = load_image(path, size=(8, 8), channels=channels)
    assert pixels.shape == (8, 8, channels) and pixels.dtype.name == "uint8"
    assert pixels.max() > 0  # scaled, not clipped to black or white
    assert pixels.min() < 255
