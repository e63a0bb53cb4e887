"""Which output is the classifier, and what it gives: probabilities or logits.

cnnx exports a model with one image input and one class output. A model with several
inputs or outputs is refused with their names, unless `--output NAME` picks the
classification head (an output or any layer): the model is then cut to what that head
needs, which must be one image input.

Whether a head gives probabilities or logits is measured, not guessed from names: on
generated pictures, rows of probabilities are non-negative and sum to one. A logits head
(no softmax) is exported as it is; verify then scales its absolute tolerances to the
range of the outputs (a logit of 12.0 off by 1e-4 is as close as a probability of 0.3
off by 3e-6) and keeps top-1 agreement as the decisive check. Several sigmoid units
(multi-label, or rows that do not sum to one) are independent scores: compared score by
score like probabilities, the highest taken as top-1.

A binary classifier with one output unit, `Dense(1, activation="sigmoid")` or `Dense(1)`
giving a logit, becomes two classes in the pivot: scores [1 - p, p], a logit z through
sigmoid([-z, z]). Every artifact, runtime, bundle and page then sees [batch, 2] and needs
nothing of its own. Which of the two a unit gives is read from the model's last
activation where Keras records it, else from the graph and the values on generated
pictures: outside [0, 1] it is a logit; inside, a sigmoid only when the graph has one.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.errors import ModelError

PROBABILITIES = "probabilities"  # softmax: non-negative rows summing to one
SCORES = "scores"  # each in [0, 1] but rows not summing to one (sigmoid heads)
LOGITS = "logits"  # anything else: no softmax at the end

# One output unit: the probability of the second class, or its logit.
SIGMOID_UNIT = "sigmoid"
LOGIT_UNIT = "logit"
# What the manifest records as `source.output.head` for each kind of head.
HEADS = {
    PROBABILITIES: "softmax",
    SCORES: "sigmoid",
    LOGITS: "logits",
    SIGMOID_UNIT: "binary-sigmoid",
    LOGIT_UNIT: "binary-logit",
}


def tensor_names(model: Any, which: str) -> list[str]:
    """Names of a Keras model's inputs or outputs (Keras 3 or tf_keras)."""
    if which == "outputs":
        names = getattr(model, "output_names", None)
        if names:
            return [str(n) for n in names]
        return [t._keras_history[0].name for t in model.outputs]
    names = getattr(model, "input_names", None)
    return [str(n) for n in names] if names else [str(t.name) for t in model.inputs]


def pick_head(model: Any, output: str | None, path: Path) -> Any:
    """The model itself when it has one input and one output and `output` is None, or the
    part of it that computes `output` from its one image input."""
    inputs, outputs = tensor_names(model, "inputs"), tensor_names(model, "outputs")
    if output is None:
        if len(inputs) == 1 and len(outputs) == 1:
            return model
        raise ModelError(
            f"{path} has {_count(inputs, 'input')} and {_count(outputs, 'output')}",
            f"pick the classification head with --output NAME (one of: {', '.join(outputs)}); "
            "cnnx exports one image input and one output",
        )
    if output in outputs:
        tensor = model.outputs[outputs.index(output)]
    else:
        try:
            tensor = model.get_layer(output).output
        except (ValueError, AttributeError):
            raise ModelError(
                f"--output {output!r}: {path} has no output or layer of that name",
                f"its outputs: {', '.join(outputs)}",
            ) from None
    if len(inputs) == 1 and len(outputs) == 1 and output == outputs[0]:
        return model
    keras_module = importlib.import_module(type(model).__module__.split(".")[0])
    for tensor_in in model.inputs:
        try:
            return keras_module.Model(tensor_in, tensor, name=f"{model.name}_{output}")
        except Exception:  # Keras says "not connected" in several ways: try the next input
            continue
    raise ModelError(
        f"--output {output!r} of {path} needs more than one of its inputs ({', '.join(inputs)})",
        "cnnx exports classifiers of one image input",
    )


def _count(names: list[str], what: str) -> str:
    plural = "" if len(names) == 1 else "s"
    return f"{len(names)} {what}{plural} ({', '.join(names)})"


def pick_signature_output(outputs: dict[str, Any], output: str | None, what: str) -> str:
    """The output key of a SavedModel signature that is the classification head."""
    keys = sorted(outputs)
    if output is not None:
        if output not in outputs:
            raise ModelError(
                f"--output {output!r}: {what} has no output of that name",
                f"its outputs: {', '.join(keys)}",
            )
        return output
    if len(keys) != 1:
        raise ModelError(
            f"{what} has {len(keys)} outputs ({', '.join(keys)})",
            f"pick the classification head with --output NAME (one of: {', '.join(keys)})",
        )
    return keys[0]


def output_kind(outputs: np.ndarray) -> str:
    """PROBABILITIES, SCORES or LOGITS, from what a head gave on some inputs."""
    rows = np.asarray(outputs, dtype=np.float64)
    if not rows.size or rows.min() < -1e-6 or rows.max() > 1 + 1e-6:
        return LOGITS
    return PROBABILITIES if np.allclose(rows.sum(axis=1), 1.0, atol=1e-3) else SCORES


def head_note(kind: str, unit: str | None) -> str:
    """What export tells the user about the head it found ('' for a plain softmax)."""
    if unit == SIGMOID_UNIT:
        return "the head is one sigmoid unit p: exported as two classes, scores [1 - p, p]"
    if unit == LOGIT_UNIT:
        return (
            "the head is one unit giving a logit z: exported as two classes, "
            "scores sigmoid([-z, z]) = [1 - p, p]"
        )
    if kind == SCORES:
        return (
            "the head gives independent scores (sigmoid units; rows do not sum to one): verify "
            "compares them score by score and takes the highest as top-1"
        )
    if kind == LOGITS:
        return (
            "the head gives logits (no softmax): verify scales its absolute tolerances to "
            "the range of the outputs and keeps top-1 agreement"
        )
    return ""


def keras_unit_kind(model: Any) -> str | None:
    """SIGMOID_UNIT or LOGIT_UNIT from the activation Keras records on the layer that
    gives a one-unit output; None when no layer says (a custom op, a wrapped graph)."""
    tensor = model.outputs[0]
    for _ in range(32):  # nested models: follow the output into the inner model
        history = getattr(tensor, "_keras_history", None)
        if history is None:
            return None
        layer = history[0]
        inner = getattr(layer, "outputs", None)
        if getattr(layer, "layers", None) and inner and len(inner) == 1:
            tensor = inner[0]
            continue
        activation = getattr(layer, "activation", None)
        if activation is None:
            # keras.ops.sigmoid(x) in a functional model is an op of that name.
            is_op = type(layer).__module__.startswith("keras.src.ops")
            return SIGMOID_UNIT if is_op and "sigmoid" in str(layer.name).lower() else None
        name = str(getattr(activation, "__name__", "")).lower()
        if "sigmoid" in name:
            return SIGMOID_UNIT
        if name == "linear":
            return LOGIT_UNIT
        raise ModelError(
            f"the model's one output unit ends in {name!r}",
            "cnnx takes one unit as a sigmoid probability or a logit (no activation)",
        )
    return None


def measured_unit_kind(values: np.ndarray, has_sigmoid: bool) -> str:
    """SIGMOID_UNIT or LOGIT_UNIT from a one-unit head's values on generated pictures:
    outside [0, 1] only a logit can be; inside, a sigmoid when the graph computes one."""
    values = np.asarray(values, dtype=np.float64)
    inside = values.size > 0 and values.min() >= -1e-6 and values.max() <= 1 + 1e-6
    return SIGMOID_UNIT if inside and has_sigmoid else LOGIT_UNIT
