"""Read a .tflite back: I/O tensors, ops, dtypes, quantization, Flex ops.

Uses LiteRT (`ai_edge_litert`) only, never TensorFlow, so it also runs on a device.
The interpreter gives the I/O tensors and each op's operand types; the flatbuffer
schema gives the op codes and which tensors are constants (weights), and still works
when a model needs the TensorFlow select-ops (Flex) runtime that LiteRT alone lacks.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from exporters.base import tensor_info
from toolkit.errors import ArtifactError, shorten

# Ops that only move data across the quantized/float boundary.
BOUNDARY_OPS = frozenset({"QUANTIZE", "DEQUANTIZE"})


@dataclass(frozen=True)
class TfliteReport:
    size: int
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    ops: list[str]  # execution order of the main subgraph
    op_counts: dict[str, int]
    weight_dtypes: dict[str, int]  # constant tensors per dtype
    activation_dtypes: dict[str, int]  # non-constant tensors per dtype
    float_ops: list[str]  # compute ops with a float32 operand or result (empty: fully integer)
    flex_ops: list[str]  # ops that need the TensorFlow select-ops runtime
    custom_ops: list[str]  # other custom ops
    signatures: dict[str, Any] = field(default_factory=dict)
    loads: bool = True  # whether LiteRT alone could load it
    load_error: str | None = None

    @property
    def fully_integer(self) -> bool:
        return self.loads and not self.float_ops and "float32" not in self.weight_dtypes

    def to_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "ops": self.ops,
            "op_counts": self.op_counts,
            "weight_dtypes": self.weight_dtypes,
            "activation_dtypes": self.activation_dtypes,
            "float_ops": self.float_ops,
            "flex_ops": self.flex_ops,
            "custom_ops": self.custom_ops,
            "fully_integer": self.fully_integer,
            "signatures": self.signatures,
            "loads_in_litert": self.loads,
            "load_error": self.load_error,
        }


def inspect_tflite(model: Path | bytes) -> TfliteReport:
    """Describe a .tflite file (or its bytes)."""
    if isinstance(model, bytes):
        content = model
    else:
        try:
            content = Path(model).read_bytes()
        except OSError as error:
            raise ArtifactError(f"cannot read {model}: {error.strerror}") from None
    try:
        ops, constants, tensor_types = _read_flatbuffer(content)
    except ArtifactError as error:
        if isinstance(model, bytes):
            raise
        raise ArtifactError(f"{model}: {error.message}", "is it truncated? re-export it") from None
    flex = _flex(ops)
    custom = sorted({op for op in ops if op.startswith("custom:")})
    weight_dtypes = Counter(tensor_types[i] for i in constants)
    activation_dtypes = Counter(t for i, t in enumerate(tensor_types) if i not in constants)

    inputs: list[dict[str, Any]] = []
    outputs: list[dict[str, Any]] = []
    signatures: dict[str, Any] = {}
    float_ops: list[str] = []
    loads, load_error = True, None
    try:
        interpreter = interpreter_of(content)
        inputs = [_io(d) for d in interpreter.get_input_details()]
        outputs = [_io(d) for d in interpreter.get_output_details()]
        signatures = interpreter.get_signature_list()
        for detail in op_details(interpreter):
            name = str(detail["op_name"])
            types = [*detail.get("operand_types", []), *detail.get("result_types", [])]
            if name not in BOUNDARY_OPS and any(np.dtype(t) == np.float32 for t in types):
                float_ops.append(name)
    except (ValueError, RuntimeError) as error:
        # LiteRT refuses models with Flex ops or unknown custom ops; say so, keep the rest.
        loads, load_error = False, shorten(str(error), 300)
    return TfliteReport(
        size=len(content),
        inputs=inputs,
        outputs=outputs,
        ops=ops,
        op_counts=dict(Counter(ops)),
        weight_dtypes=dict(weight_dtypes),
        activation_dtypes=dict(activation_dtypes),
        float_ops=list(dict.fromkeys(float_ops)),  # each op type once, in graph order
        flex_ops=flex,
        custom_ops=custom,
        signatures=signatures,
        loads=loads,
        load_error=load_error,
    )


def flex_ops(content: bytes) -> list[str]:
    """The Flex ops (TensorFlow select ops) a .tflite model's bytes name, from the
    flatbuffer alone: LiteRT without the Flex delegate would refuse to load them."""
    return _flex(_read_flatbuffer(content)[0])


def _flex(ops: list[str]) -> list[str]:
    return sorted({op for op in ops if op.startswith("Flex")})


def interpreter_of(content: bytes, *, allocate: bool = True) -> Any:
    """LiteRT's interpreter of a model, without the default delegate, so the op list
    shows the model's ops, not one DELEGATE node."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(
        model_content=content,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    if allocate:
        interpreter.allocate_tensors()
    return interpreter


def op_details(interpreter: Any) -> list[dict[str, Any]]:
    """Every op of the interpreter's graph in order (op_name, inputs, outputs, operand and
    result types). LiteRT lists them only through a private method: this is its one
    caller, so a LiteRT release that renames it breaks here alone."""
    return list(interpreter._get_ops_details())


def _io(detail: dict[str, Any]) -> dict[str, Any]:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return tensor_info(
        str(detail["name"]),
        [int(d) for d in detail.get("shape_signature", detail["shape"])],
        np.dtype(detail["dtype"]).name,
        scale=float(scale),
        zero_point=int(zero_point),
    )


def _read_flatbuffer(content: bytes) -> tuple[list[str], set[int], list[str]]:
    """Op names in order, indices of constant tensors, and every tensor's dtype."""
    from ai_edge_litert import schema_py_generated as schema

    try:
        model = schema.Model.GetRootAs(content, 0)
        builtin_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if k.isupper()}
        type_names = {v: k.lower() for k, v in vars(schema.TensorType).items() if k.isupper()}
        codes = []
        for i in range(model.OperatorCodesLength()):
            code = model.OperatorCodes(i)
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            name = builtin_names.get(builtin, f"BUILTIN_{builtin}")
            if name == "CUSTOM":
                custom = (code.CustomCode() or b"").decode("utf-8", "replace")
                name = custom if custom.startswith("Flex") else f"custom:{custom}"
            codes.append(name)
        graph = model.Subgraphs(0)
        ops = [codes[graph.Operators(i).OpcodeIndex()] for i in range(graph.OperatorsLength())]
        constants: set[int] = set()
        tensor_types: list[str] = []
        for i in range(graph.TensorsLength()):
            tensor = graph.Tensors(i)
            tensor_types.append(type_names.get(tensor.Type(), str(tensor.Type())))
            buffer = model.Buffers(tensor.Buffer())
            if buffer is not None and (buffer.DataLength() > 0 or buffer.Size() > 0):
                constants.add(i)
    except Exception as error:  # a corrupt flatbuffer raises anything from struct to index
        raise ArtifactError(f"not a readable .tflite model: {type(error).__name__}") from None
    return ops, constants, tensor_types
