"""Can a .tflite run entirely on a GPU? The accelerator's own answer where it runs.

`toolkit.measure.gpu_answer.gpu_readiness` asks LiteRT's GPU accelerator: whether it
takes every op, the ops it leaves on the CPU with its reasons, and how far its outputs
are from LiteRT's CPU interpreter on a few seeded inputs; it fills the GpuReadiness
below. On a machine with no Vulkan device at all it falls back to
`check_gpu_readiness`, the static reading here, and says so.

A model runs "fully on the GPU" only if the delegate takes every op: otherwise the
graph is split and tensors go back and forth between GPU and CPU, which is often slower
than the CPU alone. The TFLite GPU delegate (and LiteRT's GPU accelerator) refuse:

- dynamic shapes: a -1 anywhere (a dynamic batch turns Flatten into
  SHAPE/STRIDED_SLICE/PACK on int32 shape tensors, which stay on the CPU);
- ops outside its set (GPU_OPS below, from the delegate's documented op list);
- integer or boolean activations (it computes in float16/float32; int8/uint8 models are
  accepted and run dequantized, so quantized tensors are fine).

The static reading reads the model with LiteRT's interpreter (docs/bundles.md).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.errors import ArtifactError, shorten

# The TFLite GPU delegate's supported builtin ops (float and dequantized int8 models).
GPU_OPS = frozenset(
    {
        "ABS", "ADD", "AVERAGE_POOL_2D", "BATCH_MATMUL", "CAST", "CONCATENATION",
        "CONV_2D", "COS", "CUMSUM", "DENSIFY", "DEPTH_TO_SPACE", "DEPTHWISE_CONV_2D",
        "DEQUANTIZE", "DIV", "ELU", "EQUAL", "EXP", "FLOOR", "FLOOR_DIV", "FLOOR_MOD",
        "FULLY_CONNECTED", "GATHER", "GREATER", "GREATER_EQUAL", "HARD_SWISH",
        "LEAKY_RELU", "LESS", "LESS_EQUAL", "LOG", "LOGICAL_AND", "LOGISTIC", "LSTM",
        "MAXIMUM", "MAX_POOL_2D", "MEAN", "MINIMUM", "MIRROR_PAD", "MUL", "NEG",
        "NOT_EQUAL", "ONE_HOT", "PACK", "PAD", "PADV2", "PRELU", "QUANTIZE", "REDUCE_MAX",
        "REDUCE_MIN", "REDUCE_PROD", "RELU", "RELU6", "RELU_N1_TO_1", "RESHAPE",
        "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "RSQRT", "SELECT_V2", "SIN", "SLICE",
        "SOFTMAX", "SPACE_TO_DEPTH", "SPLIT", "SPLIT_V", "SQRT", "SQUARE",
        "SQUARED_DIFFERENCE", "STRIDED_SLICE", "SUB", "SUM", "TANH", "TILE", "TRANSPOSE",
        "TRANSPOSE_CONV",
    }
)  # fmt: skip

STATIC = "static: ops, dtypes and shapes against the TFLite GPU delegate's op list"
ACCELERATOR = "LiteRT's GPU accelerator: its own answer, and its outputs against the CPU's"

# Activation dtypes the delegate computes with (quantized ones are dequantized).
GPU_DTYPES = frozenset({"float32", "float16", "int8", "uint8"})


@dataclass(frozen=True)
class GpuReadiness:
    path: str
    ready: bool
    problems: list[str]
    op_counts: dict[str, int]
    method: str = STATIC
    notes: list[str] = field(default_factory=list)
    adapter: dict[str, Any] | None = None  # the accelerator's adapter, when it answered
    cpu_ops: list[str] = field(default_factory=list)  # what it left on the CPU, and why
    max_abs_vs_cpu: float | None = None  # its outputs against LiteRT's CPU interpreter
    precision: str | None = None  # what it was allowed to compute in ("float16": as a phone)

    def summary(self) -> str:
        """One line for `cnnx info` and reports."""
        if self.adapter is not None:
            where = f"on {self.adapter['name']} ({self.adapter['backend']}"
            where += ", software)" if self.adapter.get("software") else ")"
            parity = (
                f"; max |GPU - CPU| {self.max_abs_vs_cpu:.1e}"
                if self.max_abs_vs_cpu is not None
                else ""
            )
            if self.ready:
                return f"fully accelerated {where}{parity}"
            return f"not fully accelerated {where}: " + "; ".join(self.problems) + parity
        if self.ready:
            ops = sum(self.op_counts.values())
            line = f"ready ({ops} ops, all GPU-delegate ops, static shapes)"
        else:
            line = "not ready: " + "; ".join(self.problems)
        # Where the accelerator did not answer, its notes say why this reading is static.
        return "; ".join([line, *self.notes])

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "ready": self.ready,
            "problems": self.problems,
            "op_counts": self.op_counts,
            "method": self.method,
            "notes": self.notes,
            "adapter": self.adapter,
            "cpu_ops": self.cpu_ops,
            "max_abs_vs_cpu": self.max_abs_vs_cpu,
            "precision": self.precision,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GpuReadiness:
        """An answer recorded by `to_dict` (a manifest's `details.gpu`, bundle.json)."""
        try:
            return cls(
                path=str(data["path"]),
                ready=bool(data["ready"]),
                problems=[str(p) for p in data["problems"]],
                op_counts={str(k): int(v) for k, v in data["op_counts"].items()},
                method=str(data["method"]),
                notes=[str(n) for n in data.get("notes", [])],
                adapter=_adapter(data.get("adapter")),
                cpu_ops=[str(o) for o in data.get("cpu_ops", [])],
                max_abs_vs_cpu=(
                    None if data.get("max_abs_vs_cpu") is None else float(data["max_abs_vs_cpu"])
                ),
                precision=None if data.get("precision") is None else str(data["precision"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ArtifactError(f"a recorded GPU answer is malformed: {error!r}") from None


def check_gpu_readiness(model: Path | bytes) -> GpuReadiness:
    """Whether `model` (a .tflite file or its bytes) can run fully on the GPU delegate."""
    from exporters.tflite_inspect import interpreter_of, op_details

    name = "<bytes>" if isinstance(model, bytes) else str(model)
    try:
        content = model if isinstance(model, bytes) else Path(model).read_bytes()
        interpreter = interpreter_of(content, allocate=False)
    except OSError as error:
        raise ArtifactError(f"cannot read {name}: {error.strerror or error}") from None
    except (ValueError, RuntimeError) as error:
        summary = shorten(str(error))
        return GpuReadiness(name, False, [f"LiteRT cannot load it: {summary}"], {})
    ops = op_details(interpreter)
    tensors = {int(t["index"]): t for t in interpreter.get_tensor_details()}
    produced = {int(i) for op in ops for i in op["outputs"]}
    graph_inputs = {int(d["index"]) for d in interpreter.get_input_details()}
    activations = produced | graph_inputs  # the rest are constants (weights, shapes)

    problems: list[str] = []
    counts = Counter(str(op["op_name"]) for op in ops)
    unsupported = sorted(op for op in counts if op not in GPU_OPS)
    if unsupported:
        problems.append(
            "ops the GPU delegate lacks: "
            + ", ".join(f"{op} x{counts[op]}" if counts[op] > 1 else op for op in unsupported)
        )
    dynamic = sorted(
        str(tensors[i]["name"]) or f"#{i}" for i in activations if _is_dynamic(tensors[i])
    )
    if dynamic:
        problems.append(
            f"dynamic shapes in {len(dynamic)} tensor(s) (e.g. {dynamic[0]!r}); "
            "export with a static batch of 1"
        )
    wrong = Counter(
        f"{op['op_name']} on {_dtype(tensors[int(i)])}"
        for op in ops
        for i in [*op["inputs"], *op["outputs"]]
        if int(i) in activations and _dtype(tensors[int(i)]) not in GPU_DTYPES
    )
    if wrong:
        problems.append("non-float activations: " + ", ".join(sorted(wrong)))
    return GpuReadiness(name, not problems, problems, dict(sorted(counts.items())))


def _adapter(value: Any) -> dict[str, Any] | None:
    """A recorded adapter: the name and backend a summary reads must be there."""
    if value is None:
        return None
    adapter = dict(value)
    adapter["name"], adapter["backend"] = str(adapter["name"]), str(adapter["backend"])
    return adapter


def _is_dynamic(tensor: dict[str, Any]) -> bool:
    signature = tensor.get("shape_signature")
    shape = signature if signature is not None and len(signature) else tensor["shape"]
    return any(int(d) < 0 for d in shape)


def _dtype(tensor: dict[str, Any]) -> str:
    return np.dtype(tensor["dtype"]).name
