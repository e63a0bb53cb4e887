"""Which browser engine, backend and artifact to ship: the bench's recommendation.

Of the rows measured in a browser (TF.js, LiteRT.js and ONNX
Runtime Web in headless Chromium, the page a
visitor runs), the fastest per image that ran and passed every parity check of its
artifact: the engine's run (batch-1 p50) plus handing the input over and reading the
output back (`pre_ms`, `post_ms`), which a page pays on every image as well: an int8
model's quantizing in JavaScript counts against it. A row on a software GPU (a webgl
or webgpu row that SwiftShader, llvmpipe... rendered, device `swiftshader` or
`software`) never wins: its figures say nothing about a visitor's GPU. The
recommendation names the engine, backend, threads, cross-origin isolation and artifact
with its latency, agreement and size; when no browser row passed, it says why.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from toolkit.bench.report import SOFTWARE_DEVICES

if TYPE_CHECKING:
    from toolkit.measure.rows import Row

BROWSER_RUNTIMES = {
    "browser": "TF.js",
    "litertjs": "LiteRT.js",
    "onnxruntime-web": "ONNX Runtime Web",
}


@dataclass(frozen=True)
class Recommendation:
    artifact: str | None  # None: no browser row passed parity
    engine: str = ""
    runtime: str = ""
    label: str = ""
    backend: str = ""
    threads: int | None = None
    cross_origin_isolated: bool | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    per_image_ms: float | None = None  # p50 + pre_ms + post_ms: what it was ranked by
    agreement: float | None = None
    size: int | None = None
    candidates: int = 0  # browser rows that passed parity (software GPU rows left out)
    reason: str = ""  # why there is none

    @property
    def sentence(self) -> str:
        if self.artifact is None:
            return f"No browser recommendation: {self.reason}."
        isolation = "cross-origin isolated" if self.cross_origin_isolated else "not isolated"
        threads = (
            f"{self.threads} thread{'' if self.threads == 1 else 's'}, " if self.threads else ""
        )
        agreement = f", agreement {self.agreement:.1%}" if self.agreement is not None else ""
        size = f", {self.size / 1024:.1f} KB" if self.size is not None else ""
        return (
            f"Fastest in the browser that passes parity: {self.artifact} on {self.engine} "
            f"{self.backend} ({threads}{isolation}), p50 {self.p50_ms:.3f} ms"
            f"{self._handling}{agreement}{size} "
            f"(best of {self.candidates})."
        )

    @property
    def _handling(self) -> str:
        """The per-image figure where handing over and reading back add to the p50."""
        if self.per_image_ms is None or self.p50_ms is None:
            return ""
        if round(self.per_image_ms, 3) == round(self.p50_ms, 3):
            return ""
        return f" ({self.per_image_ms:.3f} ms with the input handed over and read back)"

    def to_dict(self) -> dict[str, Any]:
        """report.json's `recommendation` (docs/report.md): the fields, the sentence, and
        which runtimes count as the browser. Times rounded as the rows' latency is."""
        return {
            **asdict(self),
            "p50_ms": None if self.p50_ms is None else round(self.p50_ms, 5),
            "p90_ms": None if self.p90_ms is None else round(self.p90_ms, 5),
            "per_image_ms": None if self.per_image_ms is None else round(self.per_image_ms, 5),
            "sentence": self.sentence,
            "browser_runtimes": list(BROWSER_RUNTIMES),
        }


def per_image_ms(row: Row) -> float:
    """The engine's run (p50) and, where measured, handing over and reading back."""
    if row.latency is None:
        return float("inf")
    speed = row.speed
    extra = (speed.pre_ms or 0.0) + (speed.post_ms or 0.0) if speed is not None else 0.0
    return row.latency.p50 + extra


def recommend(rows: tuple[Row, ...] | list[Row]) -> Recommendation:
    """The fastest browser row that passed parity, or a Recommendation saying why none."""
    browser = [r for r in rows if r.runtime in BROWSER_RUNTIMES]
    if not browser:
        why = "no browser runtime was measured (add browser,litertjs,onnxruntime-web)"
        return Recommendation(None, reason=why)
    passed = [r for r in browser if r.status == "ok" and r.latency is not None and r.checks]
    hardware = [r for r in passed if r.runtime_info.get("device") not in SOFTWARE_DEVICES]
    if not hardware:
        why = "every browser row failed, was skipped or drifted past its tolerance"
        if passed:
            labels = ", ".join(sorted({r.label for r in passed}))
            why = (
                f"only rows on a software GPU passed ({labels}), and their figures are not "
                "GPU figures"
            )
        return Recommendation(None, reason=why)
    best = min(hardware, key=per_image_ms)
    assert best.latency is not None
    info = best.runtime_info
    return Recommendation(
        artifact=best.artifact,
        engine=BROWSER_RUNTIMES[best.runtime],
        runtime=best.runtime,
        label=best.label,
        backend=str(info.get("backend", "")),
        threads=info.get("threads"),
        cross_origin_isolated=info.get("details", {}).get("cross_origin_isolated"),
        p50_ms=best.latency.p50,
        p90_ms=best.latency.p90,
        per_image_ms=per_image_ms(best),
        agreement=best.metrics.agreement if best.metrics else None,
        size=best.size,
        candidates=len(hardware),
    )
