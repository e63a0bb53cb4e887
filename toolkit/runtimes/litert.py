"""LiteRT (`ai_edge_litert.interpreter.Interpreter`) on a `.tflite` artifact.

Edge artifacts have a static batch of 1 (DESIGN.md), so a batch is looped row by row;
a model with a dynamic batch dimension is resized to the batch instead. int8/uint8
inputs are quantized and int8/uint8 outputs dequantized with the tensor's own scale and
zero point, read from the interpreter (not from the manifest, which could be stale).
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from toolkit.core.quiet import stderr_to_devnull
from toolkit.errors import ArtifactError, RuntimeUnavailable, UsageError, shorten
from toolkit.manifest import ArtifactEntry, Manifest
from toolkit.runtimes import LoadedModel, RuntimeInfo, Stages, check_batch

# The default resolver applies XNNPACK where it has kernels (float32, int8) and LiteRT's
# optimized builtin kernels elsewhere; BUILTIN_REF runs every op on the plain reference
# kernels, the same results as CompiledModel with CpuOptions(kernel_mode=REFERENCE)
# (checked byte for byte on an int8 model), a second witness that shares no optimized
# code with the first.
KERNELS = {"xnnpack": "AUTO", "reference": "BUILTIN_REF"}
DEFAULT_KERNELS = "xnnpack"


@dataclass(frozen=True)
class Quantization:
    scale: float
    zero_point: int
    dtype: np.dtype[Any]

    def quantize(self, x: np.ndarray) -> np.ndarray:
        info = np.iinfo(self.dtype)
        q = np.round(x / np.float32(self.scale)) + self.zero_point
        return np.clip(q, info.min, info.max).astype(self.dtype)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        return (
            (q.astype(np.float32) - np.float32(self.zero_point)) * np.float32(self.scale)
        ).astype(np.float32)


def quantization_of(detail: dict[str, Any]) -> Quantization | None:
    dtype = np.dtype(detail["dtype"])
    if dtype.kind not in "iu":
        return None
    scale, zero_point = detail.get("quantization", (0.0, 0))
    if not scale:
        raise ArtifactError(
            f"tensor {detail.get('name')!r} is {dtype.name} without a quantization scale",
            "re-export it: cnnx cannot map its values to probabilities",
        )
    return Quantization(float(scale), int(zero_point), dtype)


class LiteRTModel(LoadedModel):
    def __init__(
        self, manifest: Manifest, entry: ArtifactEntry, interpreter: Any, info: RuntimeInfo
    ) -> None:
        self._manifest = manifest
        self._entry = entry
        self._interpreter: Any = interpreter
        self.info = info
        self._input = interpreter.get_input_details()[0]
        self._output = interpreter.get_output_details()[0]
        self._in_q = quantization_of(self._input)
        self._out_q = quantization_of(self._output)
        self._in_dtype = np.dtype(self._input["dtype"])
        signature = self._input.get("shape_signature")
        self._dynamic = signature is not None and len(signature) > 0 and int(signature[0]) == -1
        self._batch = 1
        self._input_index = self._input["index"]
        self._output_index = self._output["index"]

    @property
    def interpreter(self) -> Any:
        """The underlying interpreter (for the bare invoke loop of the benchmarks)."""
        return self._interpreter

    def _quantize(self, x: np.ndarray) -> np.ndarray:
        if self._in_q is not None:
            return self._in_q.quantize(x)
        return x if x.dtype == self._in_dtype else x.astype(self._in_dtype)

    def _dequantize(self, y: np.ndarray) -> np.ndarray:
        if self._out_q is not None:
            return self._out_q.dequantize(y)
        return y.astype(np.float32, copy=False)

    def _set_input(self, x: np.ndarray) -> None:
        """Quantized rows into the input tensor (resized first for a dynamic batch)."""
        interpreter = self._interpreter
        if interpreter is None:
            raise RuntimeUnavailable(f"artifact {self._entry.id!r} on litert was already closed")
        if self._dynamic and len(x) != self._batch:
            interpreter.resize_tensor_input(self._input_index, list(x.shape), strict=False)
            interpreter.allocate_tensors()
            self._batch = len(x)
        interpreter.set_tensor(self._input_index, x)

    def _invoke(self, _: object = None) -> None:
        self._interpreter.invoke()

    def _get_output(self, _: object = None) -> np.ndarray:
        return self._interpreter.get_tensor(self._output_index)  # a copy: the buffer is reused

    def stages(self, batch: np.ndarray) -> Stages | None:
        """Quantize and set_tensor | invoke() | get_tensor and dequantize. A static
        batch-1 model takes one row per invoke, so only a batch of one splits."""
        array = check_batch(batch, self._entry, self._manifest)
        if not self._dynamic and len(array) != 1:
            return None
        return Stages(
            prepare=lambda: self._set_input(self._quantize(array)),
            run=self._invoke,
            finish=lambda _: self._dequantize(self._get_output()).reshape(len(array), -1),
        )

    def predict(self, batch: np.ndarray) -> np.ndarray:
        if self._interpreter is None:
            raise RuntimeUnavailable(f"artifact {self._entry.id!r} on litert was already closed")
        array = self._quantize(check_batch(batch, self._entry, self._manifest))
        if not len(array):
            return np.zeros((0, len(self._manifest.labels)), dtype=np.float32)
        # A static batch-1 model takes one row per invoke.
        rows = [array] if self._dynamic else [array[i : i + 1] for i in range(len(array))]
        out = []
        for part in rows:
            self._set_input(part)
            self._invoke()
            out.append(self._get_output())
        return self._dequantize(np.concatenate(out)).reshape(len(array), -1)

    def close(self) -> None:
        self._interpreter = None


def load(manifest: Manifest, entry: ArtifactEntry, **options: Any) -> LiteRTModel:
    """Load a .tflite entry; options: threads (int, default the runtime's choice),
    kernels ("xnnpack", the default, or "reference": LiteRT's reference CPU kernels)."""
    threads = options.get("threads")
    if threads is not None and int(threads) < 1:
        raise UsageError(f"--threads must be at least 1, got {threads}")
    kernels = options.get("kernels") or DEFAULT_KERNELS
    if kernels not in KERNELS:
        raise UsageError(f"unknown LiteRT kernels {kernels!r}", f"choose {' or '.join(KERNELS)}")
    path = manifest.artifact_path(entry, check=bool(options.get("check", True)))
    start = time.perf_counter()
    try:
        from ai_edge_litert import __version__ as litert_version
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:  # pragma: no cover - part of the pinned set
        raise RuntimeUnavailable(
            "ai-edge-litert is not installed", "pip install ai-edge-litert (make setup)"
        ) from None
    try:
        # LiteRT's C++ side logs its delegate choice to fd 2; keep stderr for errors.
        with contextlib.nullcontext() if os.environ.get("CNNX_DEBUG") else stderr_to_devnull():
            interpreter = Interpreter(
                model_path=str(path),
                num_threads=int(threads) if threads is not None else None,
                experimental_op_resolver_type=getattr(OpResolverType, KERNELS[kernels]),
            )
            interpreter.allocate_tensors()
    except (RuntimeError, ValueError) as error:
        summary = shorten(str(error))
        raise ArtifactError(f"LiteRT cannot load {path}: {summary}") from None
    inputs = interpreter.get_input_details()
    outputs = interpreter.get_output_details()
    if len(inputs) != 1 or len(outputs) != 1:
        raise ArtifactError(
            f"{path} has {len(inputs)} inputs and {len(outputs)} outputs",
            "cnnx runs image classifiers with one input and one output",
        )
    shape = [int(d) for d in inputs[0]["shape"]]
    if tuple(shape[1:]) != manifest.input.shape:
        raise ArtifactError(
            f"{path} takes input {shape}, the manifest says {list(manifest.input.shape)}",
            "re-export the artifacts folder",
        )
    signature = inputs[0].get("shape_signature")
    dynamic = signature is not None and len(signature) > 0 and int(signature[0]) == -1
    info = RuntimeInfo(
        runtime="litert",
        backend=kernels,
        threads=int(threads) if threads is not None else None,
        init_ms=(time.perf_counter() - start) * 1e3,
        max_batch=None if dynamic else 1,
        details={
            "ai_edge_litert": str(litert_version),
            "input_dtype": np.dtype(inputs[0]["dtype"]).name,
            "output_dtype": np.dtype(outputs[0]["dtype"]).name,
        },
    )
    return LiteRTModel(manifest, entry, interpreter, info)
