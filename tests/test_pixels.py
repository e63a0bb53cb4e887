"""One pixel rule: Python, the Raspberry Pi bundle's classify.py and the web page (in
headless Chromium) turn the same odd-sized, non-square picture into the same pixels and
the same float32 model input, byte for byte, for every resize method, crop and colour
order; and the rule itself resizes the way a bilinear filter should."""

from __future__ import annotations

import base64
import importlib.util
import io
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.web_support import open_page, tiny_artifacts_dir
from toolkit.data import pixels as pixel_rule
from toolkit.data.images import load_image
from toolkit.data.inputspec import PRESETS, InputSpec

pytest_plugins = ["tests.web_support"]

TEMPLATES = Path(__file__).resolve().parents[1] / "toolkit" / "packaging" / "templates" / "rpi"

# (height, width, channels, resize, crop, preset): shrink, enlarge, mixed, both crops, all
# three colour orders and every kind of normalisation.
SPECS = [
    (20, 24, 3, "bilinear", "none", "unit"),
    (40, 16, 3, "bilinear", "centre", "caffe"),
    (13, 64, 1, "nearest", "centre", "symmetric"),
    (96, 96, 3, "bilinear", "none", "imagenet"),
    (7, 9, 3, "nearest", "none", "none"),
    (31, 45, 1, "bilinear", "centre", "unit"),
]


def picture(width: int = 45, height: int = 31) -> Image.Image:
    """An odd-sized, non-square picture with gradients, hard edges and noise."""
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:height, 0:width]
    red = x * 255 // (width - 1)
    green = y * 255 // (height - 1)
    blue = np.where((x // 5 + y // 4) % 2 == 0, 230, 20)
    noise = rng.integers(-25, 26, size=(height, width, 3))
    pixels = np.clip(np.stack([red, green, blue], -1) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def spec_of(
    height: int, width: int, channels: int, resize: str, crop: str, preset: str
) -> InputSpec:
    chosen = PRESETS[preset]
    mean, std, color = chosen.mean, chosen.std, chosen.color
    if channels == 1:
        color = "GRAY"
        mean = None if mean is None else (sum(mean) / 3,)
        std = None if std is None else (sum(std) / 3,)
    return InputSpec(
        height,
        width,
        channels,
        color=color,
        scale=chosen.scale,
        offset=chosen.offset,
        mean=mean,
        std=std,
        resize=resize,
        crop=crop,
    )


@pytest.fixture(scope="module")
def png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pixels") / "odd.png"
    picture().save(path)
    return path


def python_side(path: Path, spec: InputSpec) -> tuple[np.ndarray, np.ndarray]:
    pixels = load_image(
        path, (spec.height, spec.width), spec.channels, resize=spec.resize, crop=spec.crop
    )
    return pixels, spec.apply(pixels[None])[0]


@pytest.fixture(scope="module")
def bundle_module(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The bundle's classify.py with pixels.py beside it, as `cnnx package` lays them out."""
    folder = tmp_path_factory.mktemp("rpi-code")
    shutil.copyfile(TEMPLATES / "classify.py", folder / "classify.py")
    shutil.copyfile(pixel_rule.__file__, folder / "pixels.py")
    spec = importlib.util.spec_from_file_location("pixels_test_classify", folder / "classify.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bundle_side(module: Any, path: Path, spec: InputSpec) -> tuple[np.ndarray, np.ndarray]:
    """classify.py's own Classifier.pixels and .tensor (a float model), no model needed."""
    classifier = object.__new__(module.Classifier)
    classifier.height, classifier.width, classifier.channels = spec.shape
    classifier.spec = spec.to_dict()
    classifier.input = {"dtype": np.float32}
    with Image.open(path) as image:
        pixels = classifier.pixels(image)
    return pixels, classifier.tensor(pixels)[0]


@pytest.mark.parametrize("case", SPECS, ids=lambda c: "-".join(map(str, c)))
def test_python_and_the_bundle_give_the_same_pixels(
    png: Path, bundle_module: Any, case: tuple
) -> None:
    spec = spec_of(*case)
    pixels, tensor = python_side(png, spec)
    bundle_pixels, bundle_tensor = bundle_side(bundle_module, png, spec)
    assert pixels.shape == (spec.height, spec.width, spec.channels)
    assert np.array_equal(pixels, bundle_pixels)
    assert tensor.dtype == np.float32 and np.array_equal(tensor, bundle_tensor)


def test_bilinear_shrinks_with_antialiasing_and_enlarges_smoothly() -> None:
    # A one-pixel checkerboard shrunk 4x is flat grey (antialiased), not aliased stripes.
    board = (np.indices((64, 64)).sum(0) % 2 * 255).astype(np.uint8)[..., None]
    small = pixel_rule.resize(board, 16, 16, "bilinear")
    assert np.all(np.abs(small.astype(int) - 128) <= 1)
    # Enlarging a two-level step keeps both levels at the far ends and ramps in between.
    step = np.array([[[0], [255]]], np.uint8)
    wide = pixel_rule.resize(step, 1, 8, "bilinear")[0, :, 0]
    assert wide[0] == 0 and wide[-1] == 255 and np.all(np.diff(wide.astype(int)) >= 0)
    # Nearest never makes a new value; identity when the size is already right.
    assert set(np.unique(pixel_rule.resize(board, 21, 13, "nearest"))) <= {0, 255}
    assert np.array_equal(pixel_rule.resize(board, 64, 64), board)
    # Within one level of Pillow's own BILINEAR (which rounds after each pass).
    photo = np.asarray(picture(), np.uint8)
    ours = pixel_rule.resize(photo, 20, 24, "bilinear").astype(int)
    pillows = np.asarray(picture().resize((24, 20), Image.Resampling.BILINEAR)).astype(int)
    assert np.abs(ours - pillows).max() <= 1


def test_centre_crop_keeps_the_model_aspect() -> None:
    assert pixel_rule.crop_box(45, 31, 20, 20, "centre") == (7, 0, 38, 31)
    assert pixel_rule.crop_box(45, 31, 40, 16, "centre") == (16, 0, 28, 31)
    assert pixel_rule.crop_box(45, 31, 10, 40, "centre") == (0, 10, 45, 21)
    assert pixel_rule.crop_box(45, 31, 20, 20, "none") == (0, 0, 45, 31)


# --- the web page ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def page(chromium: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The demo page on the tiny artifacts folder: preprocess() needs a page, not a model."""
    from toolkit.web.server import make_server

    with make_server(tiny_artifacts_dir(tmp_path_factory), port=0) as running:
        page, log = open_page(chromium, running.start().url)
        yield page
        assert not log.errors, log.errors
        page.close()


def data_url(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


@pytest.mark.browser
@pytest.mark.slow
def test_the_page_gives_the_same_pixels_and_input_as_python(page: Any, png: Path) -> None:
    url = data_url(png)
    for case in SPECS:
        spec = spec_of(*case)
        fields = {k: v for k, v in spec.to_dict().items() if k not in ("notes", "shape")}
        result = page.evaluate("([url, spec]) => window.cnnx.preprocess(url, spec)", [url, fields])
        pixels, tensor = python_side(png, spec)
        page_pixels = np.frombuffer(base64.b64decode(result["pixels"]), np.uint8)
        page_input = np.frombuffer(base64.b64decode(result["input"]), np.float32)
        assert np.array_equal(page_pixels, pixels.ravel()), case
        assert np.array_equal(page_input, tensor.ravel()), case


@pytest.mark.browser
@pytest.mark.slow
def test_the_page_decodes_a_jpeg_like_pillow(page: Any, tmp_path: Path) -> None:
    """Chromium and Pillow decode a baseline JPEG to the same bytes (both libjpeg-turbo)."""
    path = tmp_path / "odd.jpg"
    buffer = io.BytesIO()
    picture().save(buffer, format="JPEG", quality=92)
    path.write_bytes(buffer.getvalue())
    spec = spec_of(20, 24, 3, "bilinear", "none", "none")
    fields = {k: v for k, v in spec.to_dict().items() if k not in ("notes", "shape")}
    url = "data:image/jpeg;base64," + base64.b64encode(path.read_bytes()).decode()
    result = page.evaluate("([url, spec]) => window.cnnx.preprocess(url, spec)", [url, fields])
    page_pixels = np.frombuffer(base64.b64decode(result["pixels"]), np.uint8)
    pixels, _ = python_side(path, spec)
    assert np.array_equal(page_pixels, pixels.ravel())
