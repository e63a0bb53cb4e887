"""TFLite metadata for image classifiers, with MediaPipe's maintained writers, in process.

MediaPipe (the `android` extra) carries the metadata writers that succeeded
tflite-support's: `mediapipe.tasks.python.metadata.metadata_writers`. MediaPipe 1.x
no longer uses Python protobuf and accepts NumPy 2, so it installs beside TensorFlow
and cnnx calls it directly: no second environment, no worker process.

One gap in MediaPipe's wheels (0.10.30 to 1.2.3 at least): the writers' populator
imports `mediapipe.tasks.cc.metadata.python._pywrap_metadata_version`, a native helper
the wheels no longer ship, for one value: the minimum metadata parser version to record.
When that import fails, cnnx supplies the same function in Python
(`minimum_parser_version`, MediaPipe's `metadata_version.cc` table); a wheel that ships
the helper again is used as it is.

MediaPipe Tasks' `ImageClassifier` (the task code Android runs) reads these models back:
`classify` is the proof the tests use.
"""

from __future__ import annotations

import json
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporters.quiet import silenced
from toolkit.errors import ExportError, RuntimeUnavailable, shorten

INSTALL_HINT = "install MediaPipe: pip install 'cnnx[android]'"
_VERSION_HELPER = "mediapipe.tasks.cc.metadata.python._pywrap_metadata_version"
LABELS_FILE = "labels.txt"


@dataclass(frozen=True)
class ClassifierMetadata:
    """What the metadata of one image classifier says."""

    name: str
    version: str
    description: str
    author: str
    input_description: str
    output_description: str
    mean: tuple[float, ...]  # per channel, on 0..255 pixels: (x - mean) / std
    std: tuple[float, ...]
    color: str  # "RGB" or "GRAY"
    labels: tuple[str, ...]


def write_classifier_metadata(model: Path, out: Path, info: ClassifierMetadata) -> dict[str, Any]:
    """Write `model` with `info` packed in as TFLite metadata to `out`; return what
    `read_metadata(out)` reads back."""
    writers = _writers()
    try:
        content = _populate(writers, bytearray(Path(model).read_bytes()), info)
    except Exception as error:  # MediaPipe raises ValueError, RuntimeError, ...
        problem = shorten(f"{type(error).__name__}: {error}")
        raise ExportError(
            f"writing the TFLite metadata of {Path(model).name} failed: {problem}"
        ) from None
    Path(out).write_bytes(content)
    return read_metadata(Path(out))


def require_writers() -> None:
    """RuntimeUnavailable, saying how to install MediaPipe, if its writers are absent."""
    _writers()


def _populate(writers: _Writers, model: bytearray, info: ClassifierMetadata) -> bytes:
    metadata_fb = writers.metadata_fb
    writer = writers.Writer.create(model)
    writer.with_general_info(
        writers.metadata_info.GeneralMd(
            name=info.name,
            version=info.version,
            description=info.description,
            author=info.author,
        )
    )
    writer.add_image_input(
        norm_mean=[float(v) for v in info.mean],
        norm_std=[float(v) for v in info.std],
        color_space_type=(
            metadata_fb.ColorSpaceType.GRAYSCALE
            if info.color == "GRAY"
            else metadata_fb.ColorSpaceType.RGB
        ),
        name="image",
        description=info.input_description,
    )
    writer.add_classification_output(
        writers.Labels().add(list(info.labels), exported_filename=LABELS_FILE),
        name="probabilities",
        description=info.output_description,
    )
    try:
        content, _ = writer.populate()
    finally:
        writer.cleanup()
    return bytes(content)


def read_metadata(model: Path) -> dict[str, Any]:
    """The TFLite metadata of `model` as JSON, the files packed into it, and the lines
    of each (they are text: labels)."""
    metadata = _writers().metadata
    displayer = metadata.MetadataDisplayer.with_model_file(str(model))
    files = list(displayer.get_packed_associated_file_list())
    return {
        "metadata": json.loads(displayer.get_metadata_json()),
        "associated_files": files,
        "associated_text": {
            name: displayer.get_associated_file_buffer(name).decode("utf-8").splitlines()
            for name in files
        },
    }


def classify(model: Path, images: list[Path], max_results: int = 3) -> list[list[dict[str, Any]]]:
    """MediaPipe Tasks' ImageClassifier on image files: per image, the top categories
    with the names it read from the model's metadata."""
    mp = _import_mediapipe()
    from mediapipe.tasks import python as mp_tasks
    from mediapipe.tasks.python import vision

    options = vision.ImageClassifierOptions(
        base_options=mp_tasks.BaseOptions(model_asset_path=str(model)),
        max_results=max_results,
    )
    results = []
    # MediaPipe's native code logs to the descriptors ("Created TensorFlow Lite XNNPACK
    # delegate"); the library never prints.
    with silenced(), vision.ImageClassifier.create_from_options(options) as classifier:
        for path in images:
            categories = classifier.classify(mp.Image.create_from_file(str(path)))
            results.append(
                [
                    {
                        "index": int(c.index),
                        "score": float(c.score),
                        "category_name": c.category_name,
                        "display_name": c.display_name,
                    }
                    for c in categories.classifications[0].categories
                ]
            )
    return results


def minimum_parser_version(metadata_buffer: bytes) -> str:
    """The oldest metadata parser that reads this metadata: the newest schema member it
    uses (MediaPipe's `GetMinimumMetadataParserVersion`, same table, same walk)."""
    from mediapipe.tasks.metadata import metadata_schema_py_generated as fb

    root = fb.ModelMetadata.GetRootAsModelMetadata(bytearray(metadata_buffer), 0)
    metadata = fb.ModelMetadataT.InitFromObj(root)
    found = [(1, 0, 0)]

    def files(items: list[Any] | None) -> None:
        for item in items or []:
            if item.type == fb.AssociatedFileType.VOCABULARY:
                found.append((1, 0, 1))
            if item.type == fb.AssociatedFileType.SCANN_INDEX_FILE:
                found.append((1, 4, 0))
            if item.version is not None:
                found.append((1, 4, 1))

    def units(items: list[Any] | None) -> None:
        tokenizers = {
            fb.ProcessUnitOptions.BertTokenizerOptions: (1, 1, 0),
            fb.ProcessUnitOptions.SentencePieceTokenizerOptions: (1, 1, 0),
            fb.ProcessUnitOptions.RegexTokenizerOptions: (1, 2, 1),
        }
        for item in items or []:
            if item.optionsType in tokenizers:
                found.append(tokenizers[item.optionsType])

    for graph in metadata.subgraphMetadata or []:
        for tensor in (graph.inputTensorMetadata or []) + (graph.outputTensorMetadata or []):
            files(tensor.associatedFiles)
            units(tensor.processUnits)
            content = tensor.content
            if content and content.contentPropertiesType == fb.ContentProperties.AudioProperties:
                found.append((1, 3, 0))
        files(graph.associatedFiles)
        # A present list counts even when empty, as in the C++ walk.
        for present, version in (
            (graph.inputProcessUnits, (1, 1, 0)),
            (graph.outputProcessUnits, (1, 1, 0)),
            (graph.inputTensorGroups, (1, 2, 0)),
            (graph.outputTensorGroups, (1, 2, 0)),
            (graph.customMetadata, (1, 5, 0)),
        ):
            if present is not None:
                found.append(version)
        units(graph.inputProcessUnits)
        units(graph.outputProcessUnits)
    files(metadata.associatedFiles)
    return ".".join(str(part) for part in max(found))


def _import_mediapipe() -> Any:
    try:
        import mediapipe
    except ImportError as error:
        raise RuntimeUnavailable(
            f"MediaPipe is not importable ({error}); it writes and reads the Android "
            "models' metadata",
            INSTALL_HINT,
        ) from None
    return mediapipe


@dataclass(frozen=True)
class _Writers:
    metadata: Any
    metadata_fb: Any
    metadata_info: Any
    Labels: Any
    Writer: Any


def _writers() -> _Writers:
    _import_mediapipe()
    _supply_version_helper()
    from mediapipe.tasks.metadata import metadata_schema_py_generated as metadata_fb
    from mediapipe.tasks.python.metadata import metadata
    from mediapipe.tasks.python.metadata.metadata_writers import metadata_info, metadata_writer

    class Writer(metadata_writer.MetadataWriter):  # type: ignore[misc]
        """MediaPipe's generic writer, plus the model version and author (its
        add_general_info takes a name and a description only)."""

        def with_general_info(self, general: Any) -> Writer:
            self._general_md = general
            return self

        def cleanup(self) -> None:
            # Its temporary folder (the exported labels) goes now, not in __del__ at
            # interpreter exit, where the cleanup fails noisily.
            self._temp_folder.cleanup()

    return _Writers(metadata, metadata_fb, metadata_info, metadata_writer.Labels, Writer)


def _supply_version_helper() -> None:
    try:
        __import__(_VERSION_HELPER)
        return
    except ImportError:
        pass
    helper = types.ModuleType(_VERSION_HELPER)
    helper.GetMinimumMetadataParserVersion = minimum_parser_version  # type: ignore[attr-defined]
    parent_name = _VERSION_HELPER.rpartition(".")[0]
    names = parent_name.split(".")
    for depth in range(3, len(names) + 1):  # mediapipe.tasks.cc ... .python
        name = ".".join(names[:depth])
        if name not in sys.modules:
            sys.modules[name] = types.ModuleType(name)
    sys.modules[_VERSION_HELPER] = helper
    sys.modules[parent_name]._pywrap_metadata_version = helper  # type: ignore[attr-defined]
