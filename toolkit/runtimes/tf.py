"""TensorFlow on the SavedModel pivot: the reference every artifact is compared with."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from toolkit.errors import ArtifactError, RuntimeUnavailable, shorten
from toolkit.manifest import ArtifactEntry, Manifest
from toolkit.runtimes import LoadedModel, RuntimeInfo, RuntimeSkipped, Stages, check_batch

# Rows per call: bounds TensorFlow's memory on a 10,000-image evaluation.
CHUNK = 256


def gpu_names() -> list[str]:
    import tensorflow as tf

    return [device.name for device in tf.config.list_physical_devices("GPU")]


class TFModel(LoadedModel):
    def __init__(
        self,
        manifest: Manifest,
        entry: ArtifactEntry,
        function: Any,
        input_key: str,
        output_key: str,
        device: str,
        info: RuntimeInfo,
        owner: Any = None,
    ) -> None:
        self._owner = owner  # the loaded SavedModel: its variables must outlive the function
        self._manifest = manifest
        self._entry = entry
        self._function = function
        self._input_key = input_key
        self._output_key = output_key
        self._device = "/GPU:0" if device == "gpu" else "/CPU:0"
        self.info = info

    def predict(self, batch: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        if self._function is None:
            raise RuntimeUnavailable(f"artifact {self._entry.id!r} on tf was already closed")
        array = check_batch(batch, self._entry, self._manifest)
        parts = []
        with tf.device(self._device):
            for start in range(0, len(array), CHUNK):
                x = tf.constant(array[start : start + CHUNK])
                out = self._function(**{self._input_key: x})[self._output_key]
                parts.append(np.asarray(out.numpy(), dtype=np.float32))
        if not parts:
            return np.zeros((0, len(self._manifest.labels)), dtype=np.float32)
        return np.concatenate(parts).reshape(len(array), -1)

    def stages(self, batch: np.ndarray) -> Stages | None:
        """The tensor placed on the device | the signature call, waited for (numpy()) |
        the float32 probabilities. Batches up to CHUNK rows split."""
        import tensorflow as tf

        if self._function is None:
            raise RuntimeUnavailable(f"artifact {self._entry.id!r} on tf was already closed")
        array = check_batch(batch, self._entry, self._manifest)
        if len(array) > CHUNK:
            return None
        function, key, output = self._function, self._input_key, self._output_key

        def prepare() -> Any:
            with tf.device(self._device):
                return tf.identity(array)

        def run(x: Any) -> np.ndarray:
            with tf.device(self._device):
                # numpy() waits for the result: on a GPU the call only queues the work.
                return np.asarray(function(**{key: x})[output].numpy())

        return Stages(prepare, run, lambda y: y.astype(np.float32).reshape(len(array), -1))

    def close(self) -> None:
        self._function = None
        self._owner = None


def load(manifest: Manifest, entry: ArtifactEntry, **options: Any) -> TFModel:
    """Load the SavedModel of `entry` with its `serving_default` signature."""
    device = str(options.get("device") or "cpu")
    path = manifest.artifact_path(entry, check=bool(options.get("check", True)))
    start = time.perf_counter()
    from toolkit.graph.policy import check_savedmodel

    # A hash proves the file is the one exported, not that the graph is safe to run.
    check_savedmodel(path, unsafe=bool(options.get("unsafe", False)))
    import tensorflow as tf

    if device == "gpu" and not gpu_names():
        raise RuntimeSkipped(
            "no GPU visible to TensorFlow on this machine",
            "install the CUDA build (pip install 'cnnx[gpu]') on a machine with an NVIDIA GPU",
        )
    if device == "gpu":
        # TF32 (on by default from Ampere on) rounds matmul inputs to 10 bits: that is
        # another model numerically. The reference stays float32 on every device.
        tf.config.experimental.enable_tensor_float_32_execution(False)
    try:
        with tf.device("/GPU:0" if device == "gpu" else "/CPU:0"):
            loaded = tf.saved_model.load(str(path))
    except (OSError, ValueError, tf.errors.OpError) as error:
        summary = shorten(str(error))
        raise ArtifactError(f"cannot load SavedModel {path}: {summary}") from None
    signatures = getattr(loaded, "signatures", {})
    if "serving_default" not in signatures:
        raise ArtifactError(
            f"SavedModel {path} has no serving_default signature",
            "export it with cnnx export, which writes the fixed signature",
        )
    function = signatures["serving_default"]
    inputs = list(function.structured_input_signature[1])
    outputs = list(function.structured_outputs)
    if len(inputs) != 1 or not outputs:
        raise ArtifactError(
            f"SavedModel {path} signature takes {inputs} and returns {outputs}",
            "expected one input 'image' and an output 'probabilities'",
        )
    output_key = "probabilities" if "probabilities" in outputs else outputs[0]
    info = RuntimeInfo(
        runtime="tf",
        backend="tensorflow",
        device=device,
        init_ms=(time.perf_counter() - start) * 1e3,
        details={
            "tensorflow": tf.__version__,
            "gpus": gpu_names() if device == "gpu" else [],
            "tf32": tf.config.experimental.tensor_float_32_execution_enabled(),
        },
    )
    return TFModel(manifest, entry, function, inputs[0], output_key, device, info, loaded)
