"""The metadata parser version cnnx computes for MediaPipe's populator, and bad input.

The expected versions were checked against the native GetMinimumMetadataParserVersion
(tflite-support 0.4.4's build of the same C++) on these very buffers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from toolkit.errors import ExportError
from toolkit.packaging.android_metadata import (
    ClassifierMetadata,
    minimum_parser_version,
    write_classifier_metadata,
)

pytestmark = pytest.mark.android


def _file(kind: str, version: str | None = None) -> Any:
    # MediaPipe's schema module imports TensorFlow: loaded by the tests, not at collection.
    from mediapipe.tasks.metadata import metadata_schema_py_generated as fb

    item = fb.AssociatedFileT()
    item.name = f"{kind.lower()}.txt"
    item.type = getattr(fb.AssociatedFileType, kind)
    item.version = version
    return item


def _unit(kind: str, options: Any) -> Any:
    from mediapipe.tasks.metadata import metadata_schema_py_generated as fb

    unit = fb.ProcessUnitT()
    unit.optionsType = getattr(fb.ProcessUnitOptions, kind)
    unit.options = options
    return unit


def _metadata(features: set[str]) -> bytes:
    import flatbuffers
    from mediapipe.tasks.metadata import metadata_schema_py_generated as fb

    model, graph = fb.ModelMetadataT(), fb.SubGraphMetadataT()
    image, scores = fb.TensorMetadataT(), fb.TensorMetadataT()
    image.name, scores.name = "image", "probabilities"
    if "classifier" in features:  # what cnnx writes: normalization and a labels file
        norm = fb.NormalizationOptionsT()
        norm.mean, norm.std = [0.0], [1.0]
        image.processUnits = [_unit("NormalizationOptions", norm)]
        scores.associatedFiles = [_file("TENSOR_AXIS_LABELS")]
    if "vocabulary" in features:
        image.associatedFiles = [_file("VOCABULARY")]
    if "file version" in features:
        model.associatedFiles = [_file("DESCRIPTIONS", version="2")]
    if "scann" in features:
        graph.associatedFiles = [_file("SCANN_INDEX_FILE")]
    if "bert" in features:
        image.processUnits = [_unit("BertTokenizerOptions", fb.BertTokenizerOptionsT())]
    if "regex" in features:
        graph.inputProcessUnits = [_unit("RegexTokenizerOptions", fb.RegexTokenizerOptionsT())]
    if "empty input units" in features:
        graph.inputProcessUnits = []
    if "audio" in features:
        image.content = fb.ContentT()
        image.content.contentPropertiesType = fb.ContentProperties.AudioProperties
        image.content.contentProperties = fb.AudioPropertiesT()
    if "groups" in features:
        group = fb.TensorGroupT()
        group.name = "group"
        graph.outputTensorGroups = [group]
    if "custom" in features:
        custom = fb.CustomMetadataT()
        custom.name = "custom"
        graph.customMetadata = [custom]
    graph.inputTensorMetadata, graph.outputTensorMetadata = [image], [scores]
    model.subgraphMetadata = [graph]
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), b"M001")
    return bytes(builder.Output())


@pytest.mark.parametrize(
    ("features", "version"),
    [
        (set(), "1.0.0"),
        ({"classifier"}, "1.0.0"),
        ({"vocabulary"}, "1.0.1"),
        ({"bert"}, "1.1.0"),
        ({"empty input units"}, "1.1.0"),  # a present list counts, even empty
        ({"groups"}, "1.2.0"),
        ({"regex"}, "1.2.1"),
        ({"audio", "classifier", "regex"}, "1.3.0"),
        ({"scann"}, "1.4.0"),
        ({"file version", "scann"}, "1.4.1"),
        ({"custom"}, "1.5.0"),
    ],
)
def test_minimum_parser_version_is_the_newest_member_used(features: set[str], version: str) -> None:
    assert minimum_parser_version(_metadata(features)) == version


def test_a_file_that_is_not_a_tflite_model_is_one_clear_export_error(tmp_path: Path) -> None:
    model = tmp_path / "model.tflite"
    model.write_bytes(b"not a flatbuffer at all")
    info = ClassifierMetadata(
        name="m",
        version="1",
        description="d",
        author="a",
        input_description="i",
        output_description="o",
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        color="RGB",
        labels=("a", "b"),
    )
    with pytest.raises(ExportError) as raised:
        write_classifier_metadata(model, tmp_path / "out.tflite", info)
    assert "model.tflite" in raised.value.one_line()
    assert not (tmp_path / "out.tflite").exists()
