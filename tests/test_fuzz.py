"""Property-based tests: the readers of untrusted input raise only cnnx's typed errors.

Whatever bytes a manifest, an input spec or an image holds, the reader either returns a
valid value or raises the documented error; any other exception would reach the user as
an internal error (exit 1) instead of a one-line message.
"""

from __future__ import annotations

import io
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from toolkit.data.images import load_image
from toolkit.data.inputspec import InputSpec
from toolkit.errors import ArtifactError, DataError, PathError, UsageError
from toolkit.manifest import SCHEMA, load_manifest

FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def valid_manifest() -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "created": "2025-01-01T00:00:00+00:00",
        "command": "cnnx export --to tflite",
        "source": {"path": "runs/a", "format": "run", "sha256": None},
        "input": InputSpec(16, 16, 3).to_dict(),
        "labels": ["a", "b"],
        "eval_data": None,
        "versions": {"tensorflow": "2.19.0"},
        "artifacts": {
            "tflite_float32": {
                "format": "tflite",
                "precision": "float32",
                "runtime": "litert",
                "path": "tflite/model_float32.tflite",
                "files": [{"path": "tflite/model_float32.tflite", "sha256": "0" * 64, "size": 3}],
                "inputs": [{"name": "image", "shape": [1, 16, 16, 3], "dtype": "float32"}],
                "outputs": [],
                "tolerance": {"max_abs": 1e-4},
                "details": {},
            }
        },
    }


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a nested dict/list, to pick one to mutate."""
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replace(value[head], rest, new)}
    copy = list(value)
    copy[head] = _replace(copy[head], rest, new)
    return copy


def _load_text(text: str | bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "manifest.json"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        try:
            manifest = load_manifest(Path(folder))
        except (ArtifactError, PathError):
            return
        # What loaded must be usable: sizes summed, the manifest written back.
        for entry in manifest.artifacts.values():
            assert entry.size >= 0
        json.dumps(manifest.to_dict())


@FUZZ
@given(st.binary(max_size=300))
def test_manifest_reader_on_random_bytes(data: bytes) -> None:
    _load_text(data)


@FUZZ
@given(json_values)
def test_manifest_reader_on_random_json(value: Any) -> None:
    _load_text(json.dumps(value))


@FUZZ
@given(st.data())
def test_manifest_reader_on_a_valid_manifest_with_one_field_mutated(data: st.DataObject) -> None:
    manifest = valid_manifest()
    where = data.draw(st.sampled_from(_paths(manifest)))
    mutated = _replace(manifest, where, data.draw(json_values))
    _load_text(json.dumps(mutated))


def test_the_unmutated_manifest_loads() -> None:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "manifest.json").write_text(json.dumps(valid_manifest()))
        manifest = load_manifest(Path(folder))
    assert manifest.labels == ["a", "b"]
    assert manifest.artifacts["tflite_float32"].precision == "float32"


@pytest.mark.parametrize(
    "path", ["../outside.tflite", "/etc/passwd", "tflite/../../x", "a/\u0000b"]
)
def test_manifest_paths_that_escape_the_folder_are_refused(path: str) -> None:
    manifest = valid_manifest()
    manifest["artifacts"]["tflite_float32"]["path"] = path
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(ArtifactError):
            load_manifest(Path(folder))


sizes = st.integers(min_value=1, max_value=4096)
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).filter(lambda v: v != 0)


@st.composite
def input_specs(draw: st.DrawFn) -> InputSpec:
    channels = draw(st.sampled_from([1, 3]))
    normalise = draw(st.booleans())
    mean = std = None
    if normalise:
        mean = tuple(draw(st.lists(finite, min_size=channels, max_size=channels)))
        std = tuple(draw(st.lists(finite, min_size=channels, max_size=channels)))
    return InputSpec(
        height=draw(sizes),
        width=draw(sizes),
        channels=channels,
        color="GRAY" if channels == 1 else "RGB",
        scale=draw(finite),
        offset=draw(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)),
        mean=mean,
        std=std,
    )


@FUZZ
@given(input_specs())
def test_input_spec_round_trips_through_json(spec: InputSpec) -> None:
    again = InputSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec
    assert again.shape == spec.shape


tricky = (
    json_values
    | st.sampled_from([0, -1, 1, 3, 2**40, 1e308, -0.0])
    | st.sampled_from([math.nan, math.inf, -math.inf]).map(float)
    | st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=5)
)


@FUZZ
@given(input_specs(), st.data())
def test_input_spec_with_mutated_fields_is_valid_or_a_usage_error(
    spec: InputSpec, data: st.DataObject
) -> None:
    raw = spec.to_dict()
    keys = ["height", "width", "channels", "dtype", "scale", "offset", "mean", "std", "color"]
    for key in data.draw(st.lists(st.sampled_from(keys), min_size=1, max_size=3, unique=True)):
        raw[key] = data.draw(tricky)
    _assert_valid_or_usage_error(raw)


@FUZZ
@given(json_values)
def test_input_spec_from_any_json_is_valid_or_a_usage_error(value: Any) -> None:
    _assert_valid_or_usage_error(value)


def _assert_valid_or_usage_error(raw: Any) -> None:
    """`InputSpec.from_dict(raw)` refuses with a UsageError (nothing else) or gives a spec
    every reader can use: positive sizes, finite non-zero scale and std, per-channel
    lengths, and the same spec back from its own JSON."""
    try:
        again = InputSpec.from_dict(raw)
    except UsageError:
        return
    assert again.height > 0 and again.width > 0 and again.channels in (1, 3)
    assert again.scale != 0
    numbers = [again.scale, again.offset, *(again.mean or ()), *(again.std or ())]
    assert all(math.isfinite(n) for n in numbers), again
    for values in (again.mean, again.std):
        assert values is None or len(values) in (1, again.channels), again
    assert again.std is None or all(s != 0 for s in again.std)
    assert InputSpec.from_dict(json.loads(json.dumps(again.to_dict()))) == again


# --- the image loader -------------------------------------------------------------------

MODES = ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F", "YCbCr"]
FORMATS = {"PNG": ".png", "JPEG": ".jpg", "TIFF": ".tif", "BMP": ".bmp", "WEBP": ".webp"}


@st.composite
def saved_images(draw: st.DrawFn) -> tuple[bytes, str]:
    """A real image file (bytes and suffix) of a random mode, size and format."""
    mode = draw(st.sampled_from(MODES))
    width, height = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    base = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")
    if mode in ("I;16", "I"):
        dtype = np.uint16 if mode == "I;16" else np.int32
        image = Image.fromarray(rng.integers(0, 65536, (height, width)).astype(dtype))
    elif mode == "F":
        image = Image.fromarray(rng.random((height, width)).astype(np.float32))
    else:
        image = base.convert(mode)
    fmt = draw(st.sampled_from(sorted(FORMATS)))
    buffer = io.BytesIO()
    try:
        image.save(buffer, format=fmt)
    except (OSError, ValueError, KeyError):
        # This format cannot hold this mode; PNG holds them all.
        buffer = io.BytesIO()
        image.convert("RGBA" if mode in ("LA", "P") else "RGB").save(buffer, format="PNG")
        fmt = "PNG"
    return buffer.getvalue(), FORMATS[fmt]


def _load(data: bytes, suffix: str, channels: int) -> np.ndarray | None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"img{suffix}"
        path.write_bytes(data)
        try:
            return load_image(path, size=(8, 8), channels=channels)
        except DataError as error:
            assert str(path) in error.message  # the message names the file
            return None


@FUZZ
@given(saved_images(), st.sampled_from([1, 3]))
def test_image_loader_turns_any_mode_and_format_into_uint8_of_the_right_shape(
    image: tuple[bytes, str], channels: int
) -> None:
    pixels = _load(*image, channels)
    assert pixels is not None, "a valid image was refused"
    assert pixels.shape == (8, 8, channels) and pixels.dtype == np.uint8


@FUZZ
@given(st.binary(max_size=400), st.sampled_from(list(FORMATS.values())), st.sampled_from([1, 3]))
def test_image_loader_on_random_bytes_returns_pixels_or_a_data_error(
    data: bytes, suffix: str, channels: int
) -> None:
    pixels = _load(data, suffix, channels)
    assert pixels is None or (pixels.shape == (8, 8, channels) and pixels.dtype == np.uint8)


@FUZZ
@given(saved_images(), st.data())
def test_image_loader_on_damaged_images_returns_pixels_or_a_data_error(
    image: tuple[bytes, str], data: st.DataObject
) -> None:
    raw, suffix = image
    cut = data.draw(st.integers(0, len(raw)))
    flips = data.draw(st.lists(st.integers(0, max(0, len(raw) - 1)), max_size=4))
    damaged = bytearray(raw[:cut])
    for index in flips:
        if index < len(damaged):
            damaged[index] ^= 0xA5
    pixels = _load(bytes(damaged), suffix, 3)
    assert pixels is None or (pixels.shape == (8, 8, 3) and pixels.dtype == np.uint8)
