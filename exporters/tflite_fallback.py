"""`--float-fallback auto[:N]`: keep layers in float where it measurably helps.

The per-layer quantization debugger ranks layers by their own error (RMSE / scale), but a
layer's own error is not what the user sees: a noisy layer early in the network may be
washed out by the next ReLU, a quiet one just before the softmax may flip answers. So the
debugger only orders the candidates; the choice is made by measurement. Greedy, in rank
order: quantize with the candidate kept in float, run the whole model in LiteRT on the
selection images, compare its top-1 answers (and accuracy, when labels are known) with
the SavedModel's, and keep the candidate only when the model gets better. The search
stops as soon as the model is within the tolerance, after N layers kept, or when the
candidates run out; it returns plain int8 when nothing helped, so it never writes a
model worse than plain int8.

BatchNormalization after the activation (Conv -> ReLU -> BN) cannot be folded into the
convolution: it becomes a MUL then an ADD. Keeping only one of them in float buys
nothing (the other re-quantizes at once) and costs two boundary ops, so a MUL whose only
consumer is an ADD is one candidate with it: an island of both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from exporters.base import ExportOptions
from exporters.quiet import silenced
from exporters.tflite_inspect import BOUNDARY_OPS, interpreter_of, op_details

if TYPE_CHECKING:
    from exporters.savedmodel import Pivot
    from exporters.tflite_inspect import TfliteReport

# Candidates tried per layer of budget: enough to step over the few that do not help
# without converting the model once per layer of a deep network.
TRIALS_PER_LAYER = 3


@dataclass(frozen=True)
class Score:
    """A model's top-1 answers against the SavedModel's on the selection images."""

    agreement: float
    accuracy: float | None = None
    reference_accuracy: float | None = None

    @property
    def accuracy_drop(self) -> float | None:
        if self.accuracy is None or self.reference_accuracy is None:
            return None
        return self.reference_accuracy - self.accuracy

    def better_than(self, other: Score) -> bool:
        """Strictly better: more agreement, or as much and more accuracy."""
        mine = (self.agreement, self.accuracy or 0.0)
        theirs = (other.agreement, other.accuracy or 0.0)
        return mine > theirs

    def passes(self, tolerance: Mapping[str, float]) -> bool:
        floor = tolerance.get("min_agreement")
        if floor is not None and self.agreement < floor:
            return False
        limit, drop = tolerance.get("max_accuracy_drop"), self.accuracy_drop
        return limit is None or drop is None or drop <= limit + 1e-12

    def to_dict(self) -> dict[str, float]:
        data = {"agreement": self.agreement}
        if self.accuracy is not None:
            data["accuracy"] = self.accuracy
        return data


@dataclass(frozen=True)
class Trial:
    layers: tuple[str, ...]  # the candidate island tried (tensor names)
    result: str  # kept | no gain | costs the I/O dtype
    score: Score | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "layers": list(self.layers),
            "result": self.result,
            **({"score": self.score.to_dict()} if self.score else {}),
        }


@dataclass(frozen=True)
class Search:
    """What the search chose: `nodes` stay in float (empty: plain int8 is kept)."""

    nodes: tuple[str, ...]
    plain: Score
    final: Score
    stopped: str  # why the search ended, in words
    trials: tuple[Trial, ...] = field(default_factory=tuple)

    @property
    def kept_plain(self) -> bool:
        return not self.nodes

    def to_dict(self, images: int, on: str) -> dict[str, Any]:
        data: dict[str, Any] = {
            "images": images,
            "on": on,
            "plain_int8": self.plain.to_dict(),
            "with_fallback": self.final.to_dict(),
            "agreement_recovered": self.final.agreement - self.plain.agreement,
            "stopped": self.stopped,
            "kept_plain_int8": self.kept_plain,
            "trials": [t.to_dict() for t in self.trials],
        }
        if self.plain.reference_accuracy is not None:
            data["savedmodel_accuracy"] = self.plain.reference_accuracy
        return data


def islands(
    ranked: Iterable[dict[str, Any]], graph: Mapping[str, tuple[str, list[str]]]
) -> list[tuple[str, ...]]:
    """Candidate islands in rank order: a layer alone, or a BN's MUL with its ADD.

    `ranked`: the debugger's rows (op_name, tensor_name), worst first. `graph`: tensor
    name -> (op producing it, names of its input tensors), from the int8 model.
    """
    consumers: dict[str, list[str]] = {}
    for name, (_, inputs) in graph.items():
        for source in inputs:
            consumers.setdefault(source, []).append(name)

    def partner(name: str) -> str | None:
        op = graph.get(name, ("", []))[0]
        if op == "MUL":
            after = consumers.get(name, [])
            if len(after) == 1 and graph[after[0]][0] == "ADD":
                return after[0]
        if op == "ADD":
            for source in graph[name][1]:
                if graph.get(source, ("", []))[0] == "MUL" and consumers.get(source) == [name]:
                    return source
        return None

    found: list[tuple[str, ...]] = []
    seen: set[str] = set()
    for row in ranked:
        name = row["tensor_name"]
        if row["op_name"] in BOUNDARY_OPS or name in seen:
            continue
        other = partner(name)
        island = (name,) if other is None else tuple(sorted((name, other)))
        seen.update(island)
        found.append(island)
    return found


def search(
    candidates: list[tuple[str, ...]],
    quantize: Callable[[list[str]], bytes | None],
    measure: Callable[[bytes], Score],
    plain: bytes,
    budget: int,
    tolerance: Mapping[str, float],
) -> tuple[Search, bytes]:
    """Greedy forward selection over `candidates`, measured end to end.

    `quantize(nodes)` gives the model with those nodes in float, or None when that model
    loses the requested I/O dtype. Returns the search record and the chosen model.
    """
    best_score = plain_score = measure(plain)
    best_model, nodes = plain, list[str]()
    trials: list[Trial] = []
    if plain_score.passes(tolerance):
        return Search((), plain_score, plain_score, "plain int8 is within tolerance"), plain
    kept = 0
    stopped = f"no candidate among the {len(candidates)} ranked layers helped"
    for island in candidates[: TRIALS_PER_LAYER * budget]:
        model = quantize([*nodes, *island])
        if model is None:
            trials.append(Trial(island, "costs the I/O dtype"))
            continue
        score = measure(model)
        if not score.better_than(best_score):
            trials.append(Trial(island, "no gain", score))
            continue
        trials.append(Trial(island, "kept", score))
        nodes.extend(island)
        best_model, best_score, kept = model, score, kept + 1
        if score.passes(tolerance):
            stopped = "within tolerance"
            break
        if kept >= budget:
            stopped = f"budget of {budget} layer(s) spent"
            break
    else:
        if kept:
            stopped = f"{len(trials)} candidate(s) tried, still outside tolerance"
        elif len(candidates) > len(trials):
            stopped = f"none of the {len(trials)} best-ranked candidates helped"
    return Search(tuple(nodes), plain_score, best_score, stopped, tuple(trials)), best_model


def tensor_graph(content: bytes) -> dict[str, tuple[str, list[str]]]:
    """Tensor name -> (op producing it, its input tensor names) of a .tflite model."""
    with silenced():
        interpreter = interpreter_of(content, allocate=False)
    names = {d["index"]: str(d["name"]) for d in interpreter.get_tensor_details()}
    graph: dict[str, tuple[str, list[str]]] = {}
    for op in op_details(interpreter):
        inputs = [names[i] for i in op["inputs"] if i in names]
        for output in op["outputs"]:
            if output in names:
                graph[names[output]] = (str(op["op_name"]), inputs)
    return graph


def measurer(
    reference: np.ndarray, labels: np.ndarray | None, images: np.ndarray
) -> Callable[[bytes], Score]:
    """Score a model by running it in LiteRT on `images` (top-1 vs `reference`)."""
    from exporters.tflite_run import predict_tflite

    top1 = reference.argmax(axis=1)
    reference_accuracy = float(np.mean(top1 == labels)) if labels is not None else None

    def measure(content: bytes) -> Score:
        predicted = predict_tflite(content, images).argmax(axis=1)
        accuracy = float(np.mean(predicted == labels)) if labels is not None else None
        return Score(float(np.mean(predicted == top1)), accuracy, reference_accuracy)

    return measure


def selection(options: ExportOptions) -> tuple[int, str]:
    """How many images measure a fallback, and which sample they are."""
    if options.check_images is not None:
        return len(options.check_images), options.check_on
    return len(options.calibration) if options.calibration is not None else 0, "calibration"


def measured_fallback(
    pivot: Pivot,
    options: ExportOptions,
    stats: list[dict[str, Any]],
    quantize: Callable[[list[str]], tuple[bytes, TfliteReport]],
    io_kept: Callable[[TfliteReport], bool],
) -> tuple[bytes, Search]:
    """--float-fallback auto[:N]: layers chosen by end-to-end agreement (tflite_fallback)."""
    from exporters.registry import default_tolerance
    from exporters.savedmodel import predict

    images = options.check_images if options.check_images is not None else options.calibration
    assert images is not None  # check_calibration ran
    images = np.asarray(images, dtype=np.float32)
    labels = options.check_labels if options.check_images is not None else None
    plain, _ = quantize([])
    measure = measurer(predict(pivot, images), labels, images)

    def with_float(nodes: list[str]) -> bytes | None:
        content, report = quantize(nodes)
        return content if io_kept(report) else None

    candidates = islands(stats, tensor_graph(plain))
    tolerance = dict(options.tolerance or default_tolerance("tflite_int8"))
    found, content = search(
        candidates, with_float, measure, plain, options.float_fallback_auto, tolerance
    )
    return content, found
