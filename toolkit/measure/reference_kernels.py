"""A second witness for TFLite artifacts: LiteRT's reference kernels beside XNNPACK.

`cnnx verify --reference-kernels` runs each TFLite artifact twice in LiteRT: on the
default kernels (XNNPACK, where it has them) and on the plain reference kernels
(toolkit/runtimes/litert.py, `kernels="reference"`). Both are compared with the
SavedModel. When they disagree about the verdict, the pair says where the error comes
from:

- XNNPACK drifts, reference passes: the optimized kernels (their rounding and
  requantization shortcuts) cause it; the converted model itself is within tolerance.
- both drift: the conversion (quantization) causes it; no kernel will fix it.
- XNNPACK passes, reference drifts: the model sits at the edge of its tolerance and the
  kernels' rounding decides.

This is the known x86 vs aarch64 int8 difference in small: the same int8 model gives
slightly different outputs on two CPUs because their optimized kernels round
differently, while the reference kernels give the same answer everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from toolkit.measure.matrix import Cell

REFERENCE_KERNELS = "reference"
RUNTIME = "litert"


class _Row(Protocol):
    @property
    def artifact(self) -> str: ...
    @property
    def runtime(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def metrics(self) -> Any: ...
    @property
    def runtime_info(self) -> dict[str, Any]: ...


def with_reference_kernels(cells: list[Cell]) -> list[Cell]:
    """Each LiteRT cell followed by the same cell on the reference kernels."""
    found = []
    for cell in cells:
        found.append(cell)
        if cell.runtime == RUNTIME:
            found.append(replace(cell, options={**cell.options, "kernels": REFERENCE_KERNELS}))
    return found


@dataclass(frozen=True)
class Witness:
    artifact: str
    xnnpack: str  # status of the default kernels' row
    reference: str  # status of the reference kernels' row
    agreement: tuple[float | None, float | None]  # with the SavedModel: default, reference
    max_abs: tuple[float | None, float | None]
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "artifact": self.artifact,
            "xnnpack": self.xnnpack,
            "reference": self.reference,
            "agreement": list(self.agreement),
            "max_abs": list(self.max_abs),
            "verdict": self.verdict,
        }

    def line(self) -> str:
        def pct(value: float | None) -> str:
            return "-" if value is None else f"{value:.1%}"

        return (
            f"{self.artifact}: agreement {pct(self.agreement[0])} on the default kernels, "
            f"{pct(self.agreement[1])} on the reference kernels: {self.verdict}"
        )


def verdict(default: str, reference: str) -> str:
    if default == "ok" and reference == "ok":
        return "both kernels within tolerance"
    if default == "drift" and reference == "ok":
        return (
            "the optimized kernels cause the drift: the converted model is within tolerance "
            "on the reference kernels"
        )
    if default == "drift" and reference == "drift":
        return "the conversion causes the drift: the reference kernels drift too"
    if default == "ok" and reference == "drift":
        return (
            "the model sits at the edge of its tolerance: the reference kernels' rounding "
            "tips it over"
        )
    return f"no verdict: the default kernels' row is {default}, the reference's {reference}"


def kernel_witnesses(rows: Iterable[_Row]) -> list[Witness]:
    """Pair each artifact's default-kernel LiteRT row with its reference-kernel row."""
    default: dict[str, _Row] = {}
    reference: dict[str, _Row] = {}
    for row in rows:
        if row.runtime != RUNTIME:
            continue
        # A row that could not load has no runtime_info, and no verdict to give.
        backend = (row.runtime_info or {}).get("backend")
        if backend is None:
            continue
        target = reference if backend == REFERENCE_KERNELS else default
        target.setdefault(row.artifact, row)
    found = []
    for artifact, ref in reference.items():
        base = default.get(artifact)
        if base is None:
            continue
        metrics = (base.metrics, ref.metrics)
        found.append(
            Witness(
                artifact,
                base.status,
                ref.status,
                tuple(m.agreement if m else None for m in metrics),  # type: ignore[arg-type]
                tuple(m.max_abs if m else None for m in metrics),  # type: ignore[arg-type]
                verdict(base.status, ref.status),
            )
        )
    return found
