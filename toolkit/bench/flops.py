"""Work per inference, counted from the model's graph: MACs and FLOPs of one image.

The graph is the SavedModel's (the pivot every artifact was converted from), traced at
batch 1 and frozen, so every operation has its static shape. A multiply-accumulate
counts two FLOPs; each other arithmetic op one per output element (a pooling window one
per element it reads). Every artifact runs the same network: a quantized one does the
same operations on integers, so its "GFLOP/s" are integer operations per second.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporters.quiet import silenced
from toolkit.errors import ArtifactError, shorten

# Ops of one output element per element (activations, adds, scales, normalisations).
ELEMENTWISE = frozenset(
    {
        "Add", "AddV2", "BiasAdd", "Sub", "Mul", "RealDiv", "Maximum", "Minimum",
        "Relu", "Relu6", "Elu", "Selu", "LeakyRelu", "Sigmoid", "Tanh", "Softplus",
        "Exp", "Log", "Sqrt", "Rsqrt", "Square", "Neg", "Abs",
    }
)  # fmt: skip
SOFTMAX_FLOPS = 5  # per element: max, subtract, exp, sum, divide


@dataclass(frozen=True)
class Work:
    macs: int  # multiply-accumulates of convolutions and matrix products
    flops: int  # 2 * macs + every other arithmetic op
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"macs": self.macs, "flops": self.flops, "source": self.source}


def _elements(shape: Any) -> int:
    dims = shape.as_list() if hasattr(shape, "as_list") else list(shape)
    if any(d is None for d in dims):
        raise ArtifactError(f"a graph tensor has an unknown dimension: {dims}")
    return math.prod(int(d) for d in dims)


def _conv(op: Any) -> int:
    kh, kw, cin, _ = op.inputs[1].shape.as_list()  # HWIO filter
    return _elements(op.outputs[0].shape) * kh * kw * cin


def _depthwise(op: Any) -> int:
    kh, kw, _, _ = op.inputs[1].shape.as_list()  # H, W, in, multiplier
    return _elements(op.outputs[0].shape) * kh * kw


def _matmul(op: Any) -> int:
    a = op.inputs[0].shape.as_list()
    transposed = bool(op.get_attr("transpose_a")) if op.type == "MatMul" else False
    inner = a[-2] if transposed else a[-1]
    return _elements(op.outputs[0].shape) * int(inner)


MAC_OPS: dict[str, Callable[[Any], int]] = {
    "Conv2D": _conv,
    "DepthwiseConv2dNative": _depthwise,
    "MatMul": _matmul,
    "BatchMatMulV2": _matmul,
}


def _other_flops(op: Any) -> int:
    if op.type in ELEMENTWISE:
        return _elements(op.outputs[0].shape)
    if op.type == "Softmax":
        return SOFTMAX_FLOPS * _elements(op.outputs[0].shape)
    if op.type in ("MaxPool", "AvgPool"):
        _, kh, kw, _ = op.get_attr("ksize")
        return _elements(op.outputs[0].shape) * int(kh) * int(kw)
    if op.type in ("FusedBatchNormV3", "FusedBatchNorm"):
        return 2 * _elements(op.outputs[0].shape)
    if op.type in ("Mean", "Sum", "Max"):
        return _elements(op.inputs[0].shape)
    return 0


def count_ops(operations: Any) -> tuple[int, int]:
    """(MACs, FLOPs) of a graph's operations, which must have static shapes."""
    macs = other = 0
    for op in operations:
        counter = MAC_OPS.get(op.type)
        if counter is not None:
            macs += counter(op)
        else:
            other += _other_flops(op)
    return macs, 2 * macs + other


def graph_work(saved_model_dir: Path) -> Work:
    """MACs and FLOPs of one batch-1 inference of a pivot SavedModel."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,  # no public API freezes a concrete function
    )

    try:
        loaded = tf.saved_model.load(str(saved_model_dir))
        function = loaded.signatures["serving_default"]
        name, spec = next(iter(function.structured_input_signature[1].items()))
        one = tf.TensorSpec([1, *spec.shape[1:]], spec.dtype)
        traced = tf.function(lambda x: function(**{name: x})).get_concrete_function(one)
        with silenced():  # grappler logs its session start from C++, past TF's log level
            frozen = convert_variables_to_constants_v2(traced)
        macs, flops = count_ops(frozen.graph.get_operations())
    except (ValueError, TypeError, KeyError, StopIteration, tf.errors.OpError) as error:
        raise ArtifactError(
            f"cannot count the work of {saved_model_dir}: {shorten(str(error), 200)}"
        ) from None
    return Work(macs, flops, "SavedModel graph at batch 1, frozen (toolkit/bench/flops.py)")
