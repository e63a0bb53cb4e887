"""`ExportRequest`: what one `cnnx export` asks for, checked before anything is read.

Every combination of flags that cannot work is refused here with a usage error, so the
export itself (toolkit/export/artifacts.py) starts only on a request that makes sense. Which
artifacts a request makes is read from the artifact table (exporters/registry.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exporters import registry
from toolkit.errors import UsageError
from toolkit.export.images import DataRequest

if TYPE_CHECKING:
    from toolkit.sources import Preprocessing

QUANTIZE = registry.QUANTIZE
TFJS_QUANTIZE = registry.TFJS_QUANTIZE
AUTO = "auto"  # --quantize auto: the fastest precision within budget (autoquant/)
# Where --quantize auto runs its candidates, per --to: LiteRT here or on the emulated Pi 4
# (the TFLite candidates), ONNX Runtime here (the ONNX ones). The first is the default.
AUTO_TARGETS = {"tflite": ("litert", "rpi"), "onnx": ("onnxruntime",)}

DEFAULT_CALIBRATION_SAMPLES = 300
DEFAULT_SAMPLES = 20  # evaluation images written as PNG for the web demo and the bundles


@dataclass(frozen=True)
class ExportRequest:
    # A run folder, .keras, .h5 or SavedModel; a Keras model object (toolkit.api); None:
    # the last run under ./runs.
    model: Path | Any = None
    to: str = "all"
    quantize: str | None = None  # None: every precision of the chosen formats
    tfjs_quantize: str | None = None
    out: Path | None = None  # None: ./artifacts
    io: str = "uint8"  # full-int8 input/output dtype: uint8 | int8 | float32
    calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES
    calibration_data: Path | None = None  # a folder of the user's own images
    data: Path | None = None  # the user's images: calibrate int8 and evaluate (split)
    eval_data: Path | None = None  # a folder of images that evaluate (verify, bench)
    output: str | None = None  # the classification head of a model with several outputs
    debug_quant: bool = False
    float_fallback: tuple[str, ...] = ()  # layer names / op types, or ("auto",) / ("auto:N",)
    force: bool = False  # replace a folder holding another model's artifacts
    samples: int = DEFAULT_SAMPLES
    preprocessing: Preprocessing | None = None
    labels_file: Path | tuple[str, ...] | None = None  # a file, or the names (toolkit.api)
    unsafe: bool = False
    seed: int = 0
    command: str = ""
    # --quantize auto: the budget (None: each artifact's verify tolerance) and the runtime
    # the candidates are verified and timed in (None: --to's, see auto_target).
    min_agreement: float | None = None
    max_accuracy_drop: float | None = None
    target: str | None = None
    calibration_check: bool = True  # measure what half the calibration images would give
    wait: bool = False  # another export holds --out: wait for it instead of failing
    # Ask LiteRT's GPU accelerator about each new .tflite and record its answer.
    gpu_answer: bool = False

    def __post_init__(self) -> None:
        if self.to not in registry.TO_CHOICES:
            choices = ", ".join(registry.TO_CHOICES)
            raise UsageError(f"--to must be one of {choices}, got {self.to!r}")
        if self.quantize == AUTO:
            self._check_auto()
            return
        if self.min_agreement is not None or self.max_accuracy_drop is not None:
            raise UsageError(
                "--min-agreement and --max-accuracy-drop are the budget of --quantize auto",
                "add --quantize auto, or check artifacts against limits with cnnx verify",
            )
        if self.quantize is not None and self.quantize not in QUANTIZE:
            raise UsageError(
                f"--quantize must be one of {', '.join(QUANTIZE)}, got {self.quantize!r}"
            )
        if self.tfjs_quantize is not None and self.tfjs_quantize not in TFJS_QUANTIZE:
            raise UsageError(
                f"--tfjs-quantize must be one of {', '.join(TFJS_QUANTIZE)}, "
                f"got {self.tfjs_quantize!r}"
            )
        if self.tfjs_quantize is not None and self.to not in ("tfjs", "all"):
            raise UsageError(f"--tfjs-quantize needs --to tfjs or all, got --to {self.to}")
        if self.quantize is not None and self.to == "savedmodel":
            raise UsageError("--quantize does not apply to --to savedmodel")
        if self.io not in ("uint8", "int8", "float32"):
            raise UsageError(f"--io must be uint8, int8 or float32, got {self.io!r}")
        if self.calibration_samples < 1:
            raise UsageError(
                f"--calibration-samples must be at least 1, got {self.calibration_samples}"
            )
        if self.samples < 0:
            raise UsageError(f"--samples must not be negative, got {self.samples}")
        wanted = select_artifacts(self.to, self.quantize, self.tfjs_quantize)
        wants_int8 = "tflite_int8" in wanted
        int8_only = {
            "--float-fallback": bool(self.float_fallback),
            "--debug-quant": self.debug_quant,
            "--calibration-data": self.calibration_data is not None and not calibrated(wanted),
            "--io": self.io != "uint8",
        }
        self.data_request()  # validates the combination of data folders
        given = [flag for flag, used in int8_only.items() if used]
        if given and not wants_int8:
            raise UsageError(
                f"{', '.join(given)} apply to full int8 only",
                "add --to tflite --quantize int8",
            )
        fallback_auto(self.float_fallback)  # validates auto:N

    def _check_auto(self) -> None:
        if self.to not in AUTO_TARGETS:
            raise UsageError(
                "--quantize auto picks a TFLite precision (--to tflite) or an ONNX one "
                f"(--to onnx), got --to {self.to}",
                "use --to tflite --quantize auto, or --to onnx --quantize auto",
            )
        if self.float_fallback or self.tfjs_quantize is not None:
            raise UsageError(
                "--quantize auto chooses the precision and the float fallback itself",
                "drop --float-fallback / --tfjs-quantize, or pick --quantize int8",
            )
        targets = AUTO_TARGETS[self.to]
        if self.target is not None and self.target not in targets:
            other = [to for to, names in AUTO_TARGETS.items() if self.target in names]
            raise UsageError(
                f"--target for --to {self.to} must be one of {', '.join(targets)}, "
                f"got {self.target!r}",
                f"use --to {other[0]} --target {self.target}" if other else None,
            )
        for name, value in (
            ("--min-agreement", self.min_agreement),
            ("--max-accuracy-drop", self.max_accuracy_drop),
        ):
            if value is not None and not 0 <= value <= 1:
                raise UsageError(f"{name} is a fraction of 1, got {value}")

    def data_request(self) -> DataRequest:
        return DataRequest(
            data=self.data,
            calibration_data=self.calibration_data,
            eval_data=self.eval_data,
            calibration_samples=self.calibration_samples,
            labels_file=self.labels_file,
            seed=self.seed,
        )

    @property
    def auto_target(self) -> str:
        """Where --quantize auto runs its candidates: --target, else --to's runtime."""
        return self.target or AUTO_TARGETS.get(self.to, ("litert",))[0]

    @property
    def int8_asked(self) -> bool:
        """Was full int8 asked for by name (--quantize int8, or a flag only it takes), not
        only as part of a set (--to all, --to tflite)?"""
        int8_flags = (self.float_fallback, self.debug_quant, self.io != "uint8")
        return self.quantize in ("int8", "int16x8", AUTO) or any(int8_flags)


def select_artifacts(to: str, quantize: str | None, tfjs_quantize: str | None) -> list[str]:
    """Artifact ids an export request makes, in display order (exporters.registry.select).
    For --quantize auto: every candidate it may make."""
    if quantize == AUTO:
        return [registry.REFERENCE_ID, *(s.id for s in registry.ARTIFACTS if s.format == to)]
    return registry.select(to, quantize, tfjs_quantize)


def calibrated(ids: list[str]) -> bool:
    """Does one of these artifacts need calibration images (full integer quantization)?"""
    return any(registry.get(artifact_id).calibrated for artifact_id in ids)


def fallback_auto(names: tuple[str, ...]) -> int:
    """How many worst layers `auto` / `auto:N` keeps in float (0 when not automatic)."""
    autos = [n for n in names if n == "auto" or n.startswith("auto:")]
    if not autos:
        return 0
    if len(names) != 1:
        raise UsageError("--float-fallback auto cannot be combined with layer names")
    from exporters.tflite import DEFAULT_AUTO_FALLBACK

    _, _, count = autos[0].partition(":")
    if not count:
        return DEFAULT_AUTO_FALLBACK
    if not count.isdigit() or int(count) < 1:
        raise UsageError(f"--float-fallback {autos[0]!r}: N must be a positive integer")
    return int(count)


def command_line(request: ExportRequest) -> str:
    """The `cnnx export` line a request stands for (recorded when the caller gave none)."""
    parts = ["cnnx", "export"]
    if request.model is not None:
        parts += ["--model", str(request.model)]
    parts += ["--to", request.to]
    if request.quantize is not None:
        parts += ["--quantize", request.quantize]
    if request.tfjs_quantize is not None:
        parts += ["--tfjs-quantize", request.tfjs_quantize]
    if request.out is not None:
        parts += ["--out", str(request.out)]
    if request.gpu_answer:
        parts += ["--gpu-answer"]
    return " ".join(parts)
