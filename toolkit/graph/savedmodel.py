"""A SavedModel's graphs read from its protobuf file, without loading anything.

The graph-op policy (toolkit/graph/policy.py) walks these before TensorFlow sees the
model, so a file that is not a SavedModel, or one nested to blow the stack, is a
ModelError (exit 4) here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from toolkit.core.limits import require_regular_file
from toolkit.errors import ModelError, first_line


def read_savedmodel_proto(path: Path) -> list[Any]:
    """The MetaGraphDefs of SavedModel folder `path` (binary or text), or ModelError.

    The binary file is read with TensorBoard's copy of the graph protos, so checking a
    model does not import TensorFlow (seconds): a refused model fails at once.
    """
    binary, text = path / "saved_model.pb", path / "saved_model.pbtxt"
    source = binary if binary.exists() else text
    require_regular_file(source, "SavedModel graph")
    raw = source.read_bytes()
    try:
        if source is binary:
            return _binary_meta_graphs(raw)
        from google.protobuf import text_format
        from tensorflow.core.protobuf import saved_model_pb2

        proto = saved_model_pb2.SavedModel()
        text_format.Parse(raw.decode("utf-8"), proto)
        return list(proto.meta_graphs)
    except RecursionError:
        raise ModelError(f"{source} is nested too deeply to be a SavedModel") from None
    except Exception as error:  # protobuf's DecodeError, ParseError and friends
        raise ModelError(f"{source} is not a SavedModel: {first_line(error)}") from None


def _binary_meta_graphs(raw: bytes) -> list[Any]:
    """saved_model.pb is `SavedModel { int64 version = 1; repeated MetaGraphDef = 2; }`:
    split the outer message by hand, parse each MetaGraphDef with its own class."""
    try:
        from tensorboard.compat.proto.meta_graph_pb2 import MetaGraphDef
    except ImportError:  # pragma: no cover - TensorBoard ships with TensorFlow
        from tensorflow.core.protobuf.meta_graph_pb2 import MetaGraphDef
    data = memoryview(raw)
    graphs, position = [], 0
    while position < len(data):
        key, position = _varint(data, position)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, position = _varint(data, position)
        elif wire == 2:
            length, position = _varint(data, position)
            if position + length > len(data):
                raise ValueError("truncated")
            if field == 2:
                graphs.append(MetaGraphDef.FromString(bytes(data[position : position + length])))
            position += length
        elif wire in (1, 5):
            position += 8 if wire == 1 else 4
        else:
            raise ValueError(f"wire type {wire} is not in a SavedModel")
    if not graphs:
        raise ValueError("no MetaGraphDef")
    return graphs


def _varint(data: memoryview, position: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if position >= len(data) or shift > 63:
            raise ValueError("truncated")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7
