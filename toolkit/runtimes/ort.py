"""ONNX Runtime (`onnxruntime.InferenceSession`, CPU execution provider) on a `.onnx`
artifact.

Every ONNX artifact takes and gives float32 (the int8 one quantizes inside its graph,
QDQ), with a dynamic batch, so a batch runs in one call. `threads` sets the intra-op
pool like LiteRT's `num_threads`; the inter-op pool stays at one thread (sequential
execution: a classifier is one chain of ops). The graph passes the ONNX graph policy
before a session is made (toolkit/graph/onnx_policy.py).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from toolkit.errors import ArtifactError, RuntimeUnavailable, UsageError, shorten
from toolkit.manifest import ArtifactEntry, Manifest
from toolkit.runtimes import LoadedModel, RuntimeInfo, Stages, check_batch

PROVIDER = "CPUExecutionProvider"
INSTALL_HINT = "install it: pip install 'cnnx[onnx]' (make setup)"
# Rows per call: bounds the session's activation memory on a large evaluation set.
CHUNK = 256


class OrtModel(LoadedModel):
    def __init__(
        self, manifest: Manifest, entry: ArtifactEntry, session: Any, info: RuntimeInfo
    ) -> None:
        self._manifest = manifest
        self._entry = entry
        self._session: Any = session
        self._input = session.get_inputs()[0].name
        self._output = session.get_outputs()[0].name
        self.info = info

    def _run(self, array: np.ndarray) -> np.ndarray:
        if self._session is None:
            raise RuntimeUnavailable(
                f"artifact {self._entry.id!r} on onnxruntime was already closed"
            )
        result: np.ndarray = self._session.run([self._output], {self._input: array})[0]
        return result

    def predict(self, batch: np.ndarray) -> np.ndarray:
        array = check_batch(batch, self._entry, self._manifest)
        parts = [self._run(array[start : start + CHUNK]) for start in range(0, len(array), CHUNK)]
        if not parts:
            return np.zeros((0, len(self._manifest.labels)), dtype=np.float32)
        return np.concatenate(parts).astype(np.float32, copy=False).reshape(len(array), -1)

    def stages(self, batch: np.ndarray) -> Stages | None:
        """The contiguous float32 batch | session.run | the float32 probabilities."""
        array = check_batch(batch, self._entry, self._manifest)
        if len(array) > CHUNK:
            return None
        return Stages(
            prepare=lambda: array,
            run=self._run,
            finish=lambda y: y.astype(np.float32, copy=False).reshape(len(array), -1),
        )

    def close(self) -> None:
        self._session = None


def load(manifest: Manifest, entry: ArtifactEntry, **options: Any) -> OrtModel:
    """Load an .onnx entry; options: threads (int, default ONNX Runtime's choice)."""
    threads = options.get("threads")
    if threads is not None and int(threads) < 1:
        raise UsageError(f"--threads must be at least 1, got {threads}")
    path = manifest.artifact_path(entry, check=bool(options.get("check", True)))
    start = time.perf_counter()
    from toolkit.graph.onnx_policy import check_onnx

    check_onnx(path, unsafe=bool(options.get("unsafe", False)))
    try:
        import onnxruntime
    except ImportError:
        raise RuntimeUnavailable("onnxruntime is not installed", INSTALL_HINT) from None
    settings = onnxruntime.SessionOptions()
    settings.log_severity_level = 3  # errors only: its warnings go to fd 2
    settings.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    settings.inter_op_num_threads = 1
    if threads is not None:
        settings.intra_op_num_threads = int(threads)
    try:
        session = onnxruntime.InferenceSession(str(path), settings, providers=[PROVIDER])
    except Exception as error:  # onnxruntime raises its own Fail/InvalidGraph/... kinds
        raise ArtifactError(f"ONNX Runtime cannot load {path}: {shorten(str(error))}") from None
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(outputs) != 1:
        raise ArtifactError(
            f"{path} has {len(inputs)} inputs and {len(outputs)} outputs",
            "cnnx runs image classifiers with one input and one output",
        )
    shape = [d if isinstance(d, int) else -1 for d in inputs[0].shape]
    if tuple(shape[1:]) != manifest.input.shape or inputs[0].type != "tensor(float)":
        raise ArtifactError(
            f"{path} takes {inputs[0].type} {shape}, the manifest says float32 "
            f"{list(manifest.input.shape)}",
            "re-export the artifacts folder",
        )
    info = RuntimeInfo(
        runtime="onnxruntime",
        backend="cpu",
        threads=int(threads) if threads is not None else None,
        init_ms=(time.perf_counter() - start) * 1e3,
        max_batch=None if shape[0] == -1 else shape[0],
        details={"onnxruntime": onnxruntime.__version__, "provider": PROVIDER},
    )
    return OrtModel(manifest, entry, session, info)
