"""LiteRT's GPU accelerator: a `.tflite` through `CompiledModel` on `HardwareAccelerator.GPU`.

The accelerator in the ai-edge-litert wheel is WebGPU (`libLiteRtWebGpuAccelerator.so`,
Dawn over Vulkan). It compiles the ops it has for the adapter Dawn selects and leaves
the rest on LiteRT's CPU kernels; the model is then "partially delegated". What it did
is its own answer, read at load time: `is_fully_accelerated()`, and from its log (the
only place it says so) the adapter it selected and each op it left on the CPU with the
reason. Nothing here guesses from an op list.

Where it runs:

- a real GPU: Dawn picks the Vulkan driver of the machine (NVIDIA, AMD, Intel...);
- no GPU: SwiftShader, the software Vulkan driver Debian's `chromium` package installs
  beside the browser. When the user named no Vulkan driver (`VK_ICD_FILENAMES`,
  `VK_DRIVER_FILES`), its ICD file is added to the loader's list
  (`VK_ADD_DRIVER_FILES`); Dawn still prefers a hardware adapter where one exists.
  Mesa's lavapipe is not enough (Dawn wants shaderUniform*ArrayDynamicIndexing).
  Rows on a software adapter carry the device `swiftshader` (label
  `litert-gpu@swiftshader`): their parity is real, their speed is not a GPU's.
- no Vulkan device at all: the load raises RuntimeSkipped with the reason.

Precision: mobile GPU delegates may compute in float16. The accelerator's option
`GpuOptions.enforce_f32` decides: off (the default, as on a phone) lets it use float16
where the adapter has it, `precision="float32"` enforces float32. The row records the
precision it was allowed. int8 and float16 artifacts: the accelerator dequantizes
their weights and computes in float (the I/O stays the artifact's own type); what it
does not take stays on the CPU and is listed.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.errors import ArtifactError, RuntimeUnavailable, UsageError, shorten
from toolkit.manifest import ArtifactEntry, Manifest
from toolkit.runtimes import LoadedModel, RuntimeInfo, RuntimeSkipped, Stages, check_batch
from toolkit.runtimes.litert import quantization_of

# Where Debian's chromium package puts SwiftShader's Vulkan driver (its ICD file).
SWIFTSHADER_ICDS = ("/usr/lib/chromium/vk_swiftshader_icd.json",)
# Environment variables that name the Vulkan drivers to use instead of the system's.
USER_DRIVER_VARIABLES = ("VK_ICD_FILENAMES", "VK_DRIVER_FILES")
PRECISIONS = ("float16", "float32")
DEFAULT_PRECISION = "float16"
NO_ADAPTER_FIX = (
    "install libvulkan1 and chromium (make setup: SwiftShader's Vulkan driver), or point "
    "VK_ICD_FILENAMES at a Vulkan driver's ICD file"
)

_ADAPTER = re.compile(
    r"Selected adapter: (?P<name>.*?), arch=(?P<architecture>[^,]*), vendor=(?P<vendor>[^,]*),"
    r" backend=(?P<backend>[^,]*), adapterType=(?P<type>[^\n]*)"
)
_UNSUPPORTED = re.compile(r"^(?P<op>[A-Z][A-Z0-9_]+): (?P<why>.+)$")
_SPLIT = re.compile(
    r"(?P<gpu>\d+) operations will run on the GPU, and the remaining (?P<cpu>\d+) operations"
)


@dataclass(frozen=True)
class Adapter:
    """The GPU Dawn selected, as the accelerator logged it."""

    name: str  # "SwiftShader Device (Subzero)", "NVIDIA H100 80GB HBM3"
    architecture: str
    vendor: str
    backend: str  # "Vulkan"
    type: str  # "CPU / Software", "Discrete GPU"...

    @property
    def software(self) -> bool:
        return "software" in self.type.lower() or self.type.lower().startswith("cpu")

    @property
    def device(self) -> str:
        """A row's device: 'gpu', or the software adapter's name ('swiftshader')."""
        if not self.software:
            return "gpu"
        swiftshader = "swiftshader" in f"{self.name} {self.architecture}".lower()
        return "swiftshader" if swiftshader else "software"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "software": self.software}


@dataclass(frozen=True)
class Acceleration:
    """What the accelerator did with one model: its own answer."""

    adapter: Adapter | None
    fully_accelerated: bool
    cpu_ops: tuple[str, ...]  # "L2_NORMALIZATION: Operation is not supported."
    gpu_op_count: int | None = None  # None: it did not say (a fully accelerated model)
    cpu_op_count: int = 0

    @property
    def cpu_op_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(line.split(":", 1)[0] for line in self.cpu_ops))

    def handling(self, precision: str) -> str:
        """How the artifact's precision was run: 'float' (float32), 'dequantized' (its
        quantized weights computed in float on the GPU), or 'partially delegated'."""
        if not self.fully_accelerated:
            return "partially delegated"
        return "float" if precision == "float32" else "dequantized"

    def to_dict(self) -> dict[str, Any]:
        return {
            "adapter": self.adapter.to_dict() if self.adapter else None,
            "fully_accelerated": self.fully_accelerated,
            "cpu_ops": list(self.cpu_ops),
            "gpu_op_count": self.gpu_op_count,
            "cpu_op_count": self.cpu_op_count,
        }


def use_swiftshader_if_needed() -> str | None:
    """Add SwiftShader's ICD to the Vulkan loader's drivers unless the user chose drivers.
    Must run before the first GPU model of the process. Returns the ICD added, if any."""
    if any(os.environ.get(name) for name in USER_DRIVER_VARIABLES):
        return None
    icd = next((p for p in SWIFTSHADER_ICDS if Path(p).is_file()), None)
    if icd is None:
        return None
    added = [p for p in os.environ.get("VK_ADD_DRIVER_FILES", "").split(os.pathsep) if p]
    if icd not in added:
        os.environ["VK_ADD_DRIVER_FILES"] = os.pathsep.join([*added, icd])
    return icd


def _flush_c_streams() -> None:
    """Flush C's stdio buffers: the accelerator prints some lines to stdout, buffered."""
    ctypes.CDLL(None).fflush(None)


@contextlib.contextmanager
def captured_output() -> Iterator[list[str]]:
    """File descriptors 1 and 2 into a temporary file (the accelerator logs from C++,
    on both); its text is appended to the yielded list when the block ends. CNNX_DEBUG
    also echoes it to stderr."""
    text: list[str] = []
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as log:
        try:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            yield text
        finally:
            _flush_c_streams()
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in zip((1, 2), saved, strict=True):
                os.dup2(copy, fd)
                os.close(copy)
            log.seek(0)
            text.append(log.read().decode("utf-8", "replace"))
            if os.environ.get("CNNX_DEBUG"):
                sys.stderr.write(text[-1])


def _quiet_exit() -> None:
    """At exit LiteRT's accelerators log their release to fd 2: send it nowhere."""
    if not os.environ.get("CNNX_DEBUG"):
        _flush_c_streams()
        sys.stderr.flush()
        os.dup2(os.open(os.devnull, os.O_WRONLY), 2)


@functools.cache
def _silence_exit() -> None:
    atexit.register(_quiet_exit)


def read_log(log: str, fully_accelerated: bool) -> Acceleration:
    """The adapter and the ops left on the CPU, from the accelerator's log."""
    found = _ADAPTER.search(log)
    adapter = Adapter(**{k: v.strip() for k, v in found.groupdict().items()}) if found else None
    cpu_ops: list[str] = []
    listing = False
    for line in log.splitlines():
        line = line.strip()
        if "operations are not supported by GPU delegate" in line:
            listing = True
            continue
        match = _UNSUPPORTED.match(line) if listing else None
        if match:
            cpu_ops.append(f"{match['op']}: {match['why'].strip()}")
        else:
            listing = False
    split = _SPLIT.search(log)
    return Acceleration(
        adapter=adapter,
        fully_accelerated=fully_accelerated,
        cpu_ops=tuple(dict.fromkeys(cpu_ops)),
        gpu_op_count=int(split["gpu"]) if split else None,
        cpu_op_count=int(split["cpu"]) if split else 0,
    )


# Log lines that speak of the accelerators' loading, not of the model.
_NOISE = ("npu_registry", "compiler_plugin", "gpu_registry", "XDG_RUNTIME_DIR")


def _complaint(log: str) -> str:
    """The accelerator's last warning or error about the model, from its log."""
    said = [
        line.split(":", 1)[1].strip()
        for line in log.splitlines()
        if line.startswith(("WARNING:", "ERROR:")) and not any(n in line for n in _NOISE)
    ]
    return said[-1] if said else ""


def no_adapter(log: str) -> bool:
    return "No adapters found" in log or "Failed to initialize WebGPU environment" in log


def compile_model(
    model: Path | bytes, precision: str = DEFAULT_PRECISION
) -> tuple[Any, Acceleration]:
    """`model` (a file or its bytes) compiled for the GPU accelerator, with CPU fallback
    for the ops it lacks, and what the accelerator did. Raises RuntimeSkipped where no
    adapter exists, ArtifactError where the accelerator refuses the model."""
    if precision not in PRECISIONS:
        raise UsageError(
            f"unknown GPU precision {precision!r}", f"choose {' or '.join(PRECISIONS)}"
        )
    try:
        from ai_edge_litert.compiled_model import (
            CompiledModel,
            GpuOptions,
            HardwareAccelerator,
            Options,
        )
    except ImportError:  # pragma: no cover - part of the pinned set
        raise RuntimeUnavailable(
            "ai-edge-litert is not installed", "pip install ai-edge-litert (make setup)"
        ) from None
    use_swiftshader_if_needed()
    _silence_exit()
    options = Options(
        hardware_accelerators=HardwareAccelerator.GPU | HardwareAccelerator.CPU,
        gpu_options=GpuOptions(enforce_f32=precision == "float32"),
    )
    name = "<bytes>" if isinstance(model, bytes) else str(model)
    compiled, fully, failure = None, False, ""
    with captured_output() as log:
        try:
            if isinstance(model, bytes):
                compiled = CompiledModel.from_buffer(model, options=options)
            else:
                compiled = CompiledModel.from_file(str(model), options=options)
            fully = compiled.is_fully_accelerated()
        except (RuntimeError, ValueError) as error:
            failure = str(error)
    text = log[0] if log else ""
    if compiled is None:
        if no_adapter(text):
            raise RuntimeSkipped(
                "LiteRT's GPU accelerator found no GPU adapter (no usable Vulkan device)",
                NO_ADAPTER_FIX,
            )
        said = _complaint(text) or failure
        raise ArtifactError(f"LiteRT's GPU accelerator rejects {name}: {shorten(said)}")
    return compiled, read_log(text, fully)


def _io(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The input and output tensors with their quantization, read by the interpreter
    (CompiledModel's details leave out scale and zero point)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(
        model_path=str(path),
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    if len(inputs) != 1 or len(outputs) != 1:
        raise ArtifactError(
            f"{path} has {len(inputs)} inputs and {len(outputs)} outputs",
            "cnnx runs image classifiers with one input and one output",
        )
    return inputs[0], outputs[0]


def _version() -> str:
    from ai_edge_litert import __version__

    return str(__version__)


class GpuProgram:
    """A model compiled for the accelerator with its input and output buffers: one row
    (float32, quantized here where the model's input is integer) in, float32 out."""

    def __init__(self, path: Path, precision: str = DEFAULT_PRECISION) -> None:
        self.compiled, self.acceleration = compile_model(path, precision)
        self.input, self.output = _io(path)
        self._in_q, self._out_q = quantization_of(self.input), quantization_of(self.output)
        self._in_dtype = np.dtype(self.input["dtype"])
        self._out_dtype = np.dtype(self.output["dtype"])
        self._size = int(np.prod(self.output["shape"]))
        # The buffers' first use starts LiteRT's tensor-buffer environment, which logs.
        with captured_output():
            self._inputs = self.compiled.create_input_buffers(0)
            self._outputs = self.compiled.create_output_buffers(0)
            self.write(np.zeros(self.input["shape"], np.float32))
            self.read()

    def write(self, row: np.ndarray) -> None:
        q = self._in_q.quantize(row) if self._in_q is not None else row.astype(self._in_dtype)
        self._inputs[0].write(np.ascontiguousarray(q))

    def run(self, _: object = None) -> None:
        self.compiled.run_by_index(0, self._inputs, self._outputs)

    def run_and_read(self, _: object = None) -> np.ndarray:
        """Run, and read the output as the model gives it. The read is part of the
        inference: the GPU's work is queued, and only reading the output waits for it."""
        self.run()
        return np.asarray(self._outputs[0].read(self._size, self._out_dtype))

    def dequantize(self, out: np.ndarray) -> np.ndarray:
        return self._out_q.dequantize(out) if self._out_q is not None else out.astype(np.float32)

    def read(self) -> np.ndarray:
        return self.dequantize(np.asarray(self._outputs[0].read(self._size, self._out_dtype)))

    def infer(self, row: np.ndarray) -> np.ndarray:
        self.write(row)
        return self.dequantize(self.run_and_read())

    def close(self) -> None:
        with captured_output():  # the accelerators log their release
            self._inputs = self._outputs = []
            self.compiled = None


class LiteRTGpuModel(LoadedModel):
    """One artifact on the accelerator; its static batch of 1 takes one row per run."""

    def __init__(
        self, manifest: Manifest, entry: ArtifactEntry, program: GpuProgram, info: RuntimeInfo
    ) -> None:
        self._manifest = manifest
        self._entry = entry
        self._program: GpuProgram | None = program
        self.info = info

    def _ready(self) -> GpuProgram:
        if self._program is None:
            raise RuntimeUnavailable(
                f"artifact {self._entry.id!r} on litert-gpu was already closed"
            )
        return self._program

    def stages(self, batch: np.ndarray) -> Stages | None:
        """Quantize and write the input buffer | run and read the output (the read waits
        for the GPU) | dequantize (batch of one)."""
        array = check_batch(batch, self._entry, self._manifest)
        program = self._ready()
        if len(array) != 1:
            return None
        return Stages(
            prepare=lambda: program.write(array),
            run=program.run_and_read,
            finish=lambda out: program.dequantize(out).reshape(1, -1),
        )

    def predict(self, batch: np.ndarray) -> np.ndarray:
        array = check_batch(batch, self._entry, self._manifest)
        program = self._ready()
        out = np.zeros((len(array), len(self._manifest.labels)), dtype=np.float32)
        for i in range(len(array)):
            out[i] = program.infer(array[i : i + 1])
        return out

    def close(self) -> None:
        if self._program is not None:
            self._program.close()
        self._program = None


def load(manifest: Manifest, entry: ArtifactEntry, **options: Any) -> LiteRTGpuModel:
    """Load a .tflite entry on the GPU accelerator; options: precision ("float16", the
    default: float16 allowed, or "float32": enforced). Other options are ignored: the
    accelerator picks its adapter and runs it on its own threads."""
    precision = options.get("precision") or DEFAULT_PRECISION
    path = manifest.artifact_path(entry, check=bool(options.get("check", True)))
    start = time.perf_counter()
    program = GpuProgram(path, precision)
    acceleration, adapter = program.acceleration, program.acceleration.adapter
    shape = [int(d) for d in program.input["shape"]]
    if adapter is None or tuple(shape[1:]) != manifest.input.shape or shape[0] != 1:
        program.close()
        if adapter is None:  # pragma: no cover - the accelerator always logs it
            raise RuntimeUnavailable("LiteRT's GPU accelerator did not say which adapter it chose")
        raise ArtifactError(
            f"{path} takes input {shape}, litert-gpu runs [1, "
            f"{', '.join(map(str, manifest.input.shape))}]",
            "re-export the artifacts folder (edge artifacts have a static batch of 1)",
        )
    info = RuntimeInfo(
        runtime="litert-gpu",
        backend="webgpu",
        device=adapter.device,
        init_ms=(time.perf_counter() - start) * 1e3,
        max_batch=1,
        details={
            "ai_edge_litert": _version(),
            "precision": precision,
            "handling": acceleration.handling(entry.precision),
            **acceleration.to_dict(),
            "gpu_name": adapter.name,
            "gpu_software": adapter.software,
            "input_dtype": np.dtype(program.input["dtype"]).name,
            "output_dtype": np.dtype(program.output["dtype"]).name,
        },
    )
    return LiteRTGpuModel(manifest, entry, program, info)


def cpu_parity(program: GpuProgram, path: Path, rows: int = 4) -> float:
    """The largest |accelerator - LiteRT's CPU interpreter| over `rows` seeded inputs
    (0..255 pixels: cnnx's models take raw pixels), in dequantized outputs."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    in_q, out_q = quantization_of(program.input), quantization_of(program.output)
    rng = np.random.default_rng(0)
    worst = 0.0
    for _ in range(rows):
        row = rng.uniform(0, 255, program.input["shape"]).astype(np.float32)
        x = in_q.quantize(row) if in_q is not None else row.astype(program.input["dtype"])
        interpreter.set_tensor(program.input["index"], x)
        interpreter.invoke()
        cpu = interpreter.get_tensor(program.output["index"])
        cpu = out_q.dequantize(cpu) if out_q is not None else cpu.astype(np.float32)
        worst = max(worst, float(np.max(np.abs(program.infer(row) - cpu.reshape(-1)))))
    return worst


def probe_model() -> bytes:
    """A one-op .tflite (RELU on float32 [1, 4]) built without TensorFlow: enough for
    the accelerator to pick its adapter (`cnnx doctor`)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    def tensor(name: str) -> Any:
        t = schema.TensorT()
        t.shape, t.type, t.buffer, t.name = [1, 4], schema.TensorType.FLOAT32, 0, name
        return t

    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.RELU
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0], [1]
    graph = schema.SubGraphT()
    graph.tensors, graph.inputs, graph.outputs = [tensor("x"), tensor("y")], [0], [1]
    graph.operators = [op]
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs = 3, [code], [graph]
    model.buffers = [schema.BufferT()]
    builder = flatbuffers.Builder(256)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def probe() -> dict[str, Any]:
    """What LiteRT's GPU accelerator sees here: the drivers offered to the Vulkan loader
    and the adapter it selects (None, with the reason, where there is none)."""
    added = use_swiftshader_if_needed()
    drivers = {
        name: os.environ[name]
        for name in (*USER_DRIVER_VARIABLES, "VK_ADD_DRIVER_FILES")
        if os.environ.get(name)
    }
    try:
        compiled, acceleration = compile_model(probe_model())
    except RuntimeUnavailable as error:
        return {"adapter": None, "reason": error.one_line(), "drivers": drivers}
    with captured_output():  # the accelerators log their release
        del compiled
    adapter = acceleration.adapter
    return {
        "adapter": adapter.to_dict() if adapter else None,
        "device": adapter.device if adapter else None,
        "swiftshader_added": added,
        "drivers": drivers,
    }


def main() -> None:
    """`python -m toolkit.runtimes.litert_gpu`: cnnx doctor's probe, one JSON line."""
    import json

    print(json.dumps(probe()))


if __name__ == "__main__":
    main()
