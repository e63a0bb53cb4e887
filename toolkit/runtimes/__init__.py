"""Runtime adapters: one per runtime, the same `predict(x)` for all.

Verify and bench never know which runtime they talk to. Each adapter is a module of
this package with one function

    load(manifest: Manifest, entry: ArtifactEntry, **options) -> LoadedModel

and is listed in `RUNTIMES` below (imported lazily, so `cnnx --help` stays fast).

The LoadedModel contract (subclass `LoadedModel`):

- `predict(batch)`: `batch` is float32 NHWC, already preprocessed by the manifest's
  InputSpec (the same array for every runtime). Returns float32 `[N, K]`
  probabilities. An adapter whose artifact takes int8/uint8 input quantizes it with
  the input tensor's own scale and zero point, and dequantizes int8/uint8 outputs with
  the output tensor's; a static batch-1 model is looped over the rows.
- `predict_reporting(batch, pictures)`: `predict` that reports the pictures done as it
  goes (the default reports once, at the end).
- `close()`: release the interpreter / child process. Idempotent. A LoadedModel is
  also a context manager that closes on exit.
- `info`: a frozen `RuntimeInfo` (runtime name, backend, device, threads, init time,
  the largest batch one call runs natively, free-form details such as versions).
- `self_timed(batch, runs)`: optional. Runtimes that time inference with their own
  clock next to the call (performance.now in Node or a page) return a `SelfTimed`: the
  engine's run alone on a ready input, and apart from it the time to hand the input over
  and read the output back (web_demo/timed_loop.js), so bench reports latency without
  IPC, `pre_ms`/`post_ms` as native rows do, and the pipe's cost separately. The default
  returns None (bench then times `predict`).
- `stages(batch)`: optional. One inference split in three (`Stages`): hand the input
  to the runtime (quantize, copy in), the runtime's inference call alone, read the
  output back (copy out, dequantize). Bench times the middle one as the latency and
  reports the other two as `pre_ms` / `post_ms`. The default None makes bench time
  `predict` whole.
- `memory()`: optional. A runtime in a process of its own per model reports that
  process's memory (`MemoryReading(bytes, source)`). How bench reads each runtime's
  memory is its RuntimeSpec's `memory` (toolkit/bench/memory.py).

Options every adapter accepts (and ignores when they do not apply, so bench can pass
the same options to every runtime): `device` ("cpu" | "gpu"), `threads` (int),
`backend` (str, for TF.js), `kernels` (LiteRT: "xnnpack" or "reference"), `precision`
(litert-gpu: "float16" allowed or "float32" enforced), `timeout`
(seconds for one call to an outside process), `check` (bool, verify the artifact's
sha256 before loading; default True).

Errors: a runtime that is not installed, crashes or times out raises
`RuntimeUnavailable` (exit 8) with the fix; one that cannot run here by design (a GPU
asked for where there is none) raises `RuntimeSkipped`, a subclass, which bench turns
into a skipped row with the reason instead of a failed one.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from exporters import registry
from toolkit.core.closing import Closing
from toolkit.errors import ArtifactError, RuntimeUnavailable, UsageError
from toolkit.manifest import ArtifactEntry, Manifest

DEVICES = ("cpu", "gpu")


class RuntimeSkipped(RuntimeUnavailable):
    """The runtime cannot run here by design (no GPU): a skipped row, not a failure."""


@dataclass(frozen=True)
class RuntimeInfo:
    runtime: str  # registry name: "tf", "litert", "tfjs-node", "browser", "litertjs", ...
    backend: str  # what executes the graph: "tensorflow", "xnnpack", "wasm", "webgl", "webgpu"
    device: str = "cpu"
    threads: int | None = None  # None: the runtime's own choice
    init_ms: float = 0.0  # load + first compilation, measured inside the adapter
    max_batch: int | None = None  # 1 for a static batch-1 model (rows are looped); None: any
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """Short name of this runtime configuration for tables: 'litert x2', 'tfjs-node/wasm'."""
        spec = RUNTIMES.get(self.runtime)
        # A backend is worth naming where the runtime has several (TF.js, LiteRT.js), or
        # where it is not the runtime's usual one (LiteRT's reference kernels).
        several = spec is not None and (
            spec.variant_option == "backend"
            or (spec.usual_backend is not None and self.backend != spec.usual_backend)
        )
        text = f"{self.runtime}/{self.backend}" if several else self.runtime
        if self.device != "cpu":
            text += f"@{self.device}"
        if self.threads is not None:
            text += f" x{self.threads}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "runtime": self.runtime,
            "backend": self.backend,
            "device": self.device,
            "threads": self.threads,
            "init_ms": self.init_ms,
            "max_batch": self.max_batch,
            "details": self.details,
        }


@dataclass(frozen=True)
class MemoryReading:
    bytes: int
    source: str  # how it was read, e.g. "node process.memoryUsage().rss"


@dataclass(frozen=True)
class SelfTimed:
    """Runs timed by a runtime's own clock: `samples` ns per run (one per block of
    `block` runs back to back, so a coarse clock's step is a small share of each), and
    the time to hand the input over (`pre`) and read the output back (`post`), ns."""

    samples: list[int]
    runs: int  # runs timed: len(samples) * block
    block: int
    clock_step_ns: int  # the smallest step the runtime's clock takes
    pre: list[int]
    post: list[int]  # empty where the run ends with the read (TF.js on a GPU)

    @classmethod
    def from_answer(cls, answer: dict[str, Any]) -> SelfTimed:
        """From the dict web_demo/timed_loop.js returns (ms)."""

        def ns(values: list[Any]) -> list[int]:
            return [round(float(ms) * 1e6) for ms in values]

        samples = ns(answer["samples_ms"])
        block = int(answer.get("block") or 1)
        return cls(
            samples=samples,
            runs=int(answer.get("runs") or len(samples) * block),
            block=block,
            clock_step_ns=round(float(answer.get("timer_step_ms") or 0) * 1e6),
            pre=ns(answer.get("pre_ms") or []),
            post=ns(answer.get("post_ms") or []),
        )


@dataclass(frozen=True)
class Stages:
    """One inference in three steps, so a timer can hold the runtime's call alone."""

    prepare: Callable[[], Any]  # the input made ready and handed to the runtime
    run: Callable[[Any], Any]  # the runtime's inference call on what prepare returned
    finish: Callable[[Any], np.ndarray]  # run's result -> float32 [N, K] probabilities


PicturesFn = Callable[[int, int], None]  # (pictures done, pictures in all)


class LoadedModel(Closing):
    """An artifact loaded in one runtime. See the package docstring for the contract."""

    info: RuntimeInfo

    @abc.abstractmethod
    def predict(self, batch: np.ndarray) -> np.ndarray:
        """float32 NHWC preprocessed batch -> float32 [N, K] probabilities."""

    def predict_reporting(self, batch: np.ndarray, pictures: PicturesFn) -> np.ndarray:
        """`predict`, telling `pictures(done, total)` how far it got: after each chunk
        where an adapter feeds another process in chunks, else once at the end."""
        outputs = self.predict(batch)
        pictures(len(batch), len(batch))
        return outputs

    @abc.abstractmethod
    def close(self) -> None:
        """Release the runtime. Calling it twice is harmless."""

    def self_timed(self, batch: np.ndarray, runs: int) -> SelfTimed | None:
        """Runs timed by the runtime itself (see SelfTimed), or None if it cannot."""
        return None

    def stages(self, batch: np.ndarray) -> Stages | None:
        """`batch`'s inference split in three (see Stages), or None if it cannot be."""
        return None

    def memory(self) -> MemoryReading | None:
        """Memory of the runtime's own process for this model, or None."""
        return None


class _AdapterModule(Protocol):
    def load(self, manifest: Manifest, entry: ArtifactEntry, **options: Any) -> LoadedModel: ...


@dataclass(frozen=True)
class RuntimeSpec:
    """How to load one runtime. Which artifacts it runs is the artifact table's say
    (exporters/registry.py, FORMATS[...].runtimes), not this entry's."""

    name: str
    module: str  # imported on first use
    description: str
    # The option bench sweeps for this runtime ("threads" for LiteRT, "backend" for
    # TF.js) and the values it sweeps by default.
    variant_option: str | None = None
    default_variants: tuple[Any, ...] = ()
    supported_variants: tuple[Any, ...] = ()
    # How bench reads a model's memory (toolkit/bench/memory.py): "worker" loads it again in
    # a fresh Python process that has imported `imports`; "adapter" asks the model's
    # own process (`memory()`); "none" reports no figure.
    memory: str = "none"
    imports: tuple[str, ...] = ()
    usual_backend: str | None = None  # a label names any other backend (see RuntimeInfo)

    @property
    def formats(self) -> tuple[str, ...]:
        """The artifact formats it runs, read from the artifact table."""
        return tuple(f.name for f in registry.FORMATS.values() if self.name in f.runtimes)

    def runs(self, entry: ArtifactEntry) -> bool:
        return self.name in registry.runtimes_for(entry.id, entry.format)


RUNTIMES: dict[str, RuntimeSpec] = {
    spec.name: spec
    for spec in (
        RuntimeSpec(
            "tf",
            "toolkit.runtimes.tf",
            "TensorFlow on the SavedModel (CPU, or GPU with --device gpu)",
            memory="worker",
            imports=("tensorflow",),
        ),
        RuntimeSpec(
            "litert",
            "toolkit.runtimes.litert",
            "LiteRT (ai-edge-litert) interpreter with XNNPACK",
            variant_option="threads",
            default_variants=(1, 2),
            memory="worker",
            imports=("ai_edge_litert.interpreter",),
            usual_backend="xnnpack",
        ),
        RuntimeSpec(
            "litert-gpu",
            "toolkit.runtimes.litert_gpu",
            "LiteRT's GPU accelerator (WebGPU over Vulkan; SwiftShader where there is no GPU)",
            usual_backend="webgpu",
        ),
        RuntimeSpec(
            "tfjs-node",
            "toolkit.runtimes.tfjs_node",
            "TF.js (@tensorflow/tfjs) in Node, wasm and cpu backends",
            variant_option="backend",
            default_variants=("wasm", "cpu"),
            supported_variants=("wasm", "cpu"),
            memory="adapter",  # one Node process per model
        ),
        RuntimeSpec(
            "browser",
            "toolkit.runtimes.browser",
            "TF.js in headless Chromium, wasm, webgl, cpu and webgpu backends",
            variant_option="backend",
            default_variants=("wasm", "webgl", "cpu", "webgpu"),
            supported_variants=("wasm", "webgl", "cpu", "webgpu"),
            # One Chromium serves every page: its memory depends on the pages before.
            memory="none",
        ),
        RuntimeSpec(
            "litertjs",
            "toolkit.runtimes.litertjs",
            "LiteRT.js (@litertjs/core) in headless Chromium, wasm, threaded wasm and webgpu",
            variant_option="backend",
            default_variants=("wasm", "wasm-threaded", "webgpu"),
            supported_variants=("wasm", "wasm-threaded", "webgpu"),
            memory="none",  # the same shared Chromium as the browser runtime
        ),
        RuntimeSpec(
            "litertjs-node",
            "toolkit.runtimes.litertjs_node",
            "LiteRT.js's wasm builds in Node, single-threaded and threaded",
            variant_option="backend",
            default_variants=("wasm", "wasm-threaded"),
            supported_variants=("wasm", "wasm-threaded"),
            memory="adapter",  # one Node process per model
        ),
        RuntimeSpec(
            "onnxruntime",
            "toolkit.runtimes.ort",
            "ONNX Runtime (onnxruntime) on the CPU execution provider",
            variant_option="threads",
            default_variants=(1, 2),
            memory="worker",
            imports=("onnxruntime",),
            usual_backend="cpu",
        ),
        RuntimeSpec(
            "onnxruntime-web",
            "toolkit.runtimes.ort_web",
            "ONNX Runtime Web (onnxruntime-web) in headless Chromium, wasm, threaded wasm "
            "and webgpu",
            variant_option="backend",
            default_variants=("wasm", "wasm-threaded", "webgpu"),
            supported_variants=("wasm", "wasm-threaded", "webgpu"),
            memory="none",  # the same shared Chromium as the browser runtime
        ),
    )
}


def get_runtime(name: str) -> RuntimeSpec:
    if name not in RUNTIMES:
        raise UsageError(f"unknown runtime {name!r}", f"choose from {', '.join(RUNTIMES)}")
    return RUNTIMES[name]


def parse_runtimes(text: str) -> tuple[str, ...]:
    """'tf, litert' -> ('tf', 'litert'), each checked against the registry."""
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if not names:
        raise UsageError("--runtimes is empty", f"choose from {', '.join(RUNTIMES)}")
    for name in names:
        get_runtime(name)
    return tuple(dict.fromkeys(names))  # keep order, drop repeats


def runtimes_for(entry: ArtifactEntry, names: tuple[str, ...] | None = None) -> list[str]:
    """The runtimes (of `names`, default all) that can run this artifact."""
    return [n for n in (names or tuple(RUNTIMES)) if get_runtime(n).runs(entry)]


def adapter(name: str) -> _AdapterModule:
    spec = get_runtime(name)
    try:
        module = importlib.import_module(spec.module)
    except ModuleNotFoundError as error:
        if error.name and spec.module.startswith(error.name):
            raise RuntimeUnavailable(
                f"runtime {name!r} is not part of this installation ({spec.module} missing)"
            ) from None
        raise RuntimeUnavailable(
            f"runtime {name!r} cannot start: Python module {error.name!r} is missing",
            "reinstall with make setup",
        ) from None
    return module  # type: ignore[return-value]


def load(name: str, manifest: Manifest, entry: ArtifactEntry, **options: Any) -> LoadedModel:
    """Load `entry` of `manifest` in runtime `name` (see the package docstring)."""
    spec = get_runtime(name)
    if not spec.runs(entry):
        raise ArtifactError(
            f"runtime {name!r} cannot run artifact {entry.id!r} (format {entry.format!r})",
            f"it runs {', '.join(spec.formats)}",
        )
    device = options.get("device", "cpu")
    if device not in DEVICES:
        raise UsageError(f"unknown device {device!r}", "choose cpu or gpu")
    return adapter(name).load(manifest, entry, **options)


def check_batch(batch: np.ndarray, entry: ArtifactEntry, manifest: Manifest) -> np.ndarray:
    """The batch as contiguous float32 NHWC of the manifest's input shape, or a UsageError."""
    array = np.ascontiguousarray(batch, dtype=np.float32)
    expected = manifest.input.shape
    if array.ndim != 4 or tuple(array.shape[1:]) != expected:
        raise UsageError(
            f"artifact {entry.id!r} takes float32 [N, {', '.join(map(str, expected))}], "
            f"got shape {list(array.shape)}",
            "preprocess with the manifest's input spec",
        )
    return array
