"""`model_fingerprint`: one hash for what a model computes, so an artifacts folder knows
whether a new export comes from the same model (and may join it) or from another one."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

# Graph bookkeeping that says nothing about what is computed (and carries generated names).
_PLUMBING_OPS = {
    "NoOp",
    "Identity",
    "ReadVariableOp",
    "Placeholder",
    "StatefulPartitionedCall",
    "PartitionedCall",
}
_NAMING_ATTRS = {"f", "shared_name", "container"}


def model_fingerprint(saved_model_dir: Path) -> str:
    """sha256 of what the model computes: its architecture and the weights it uses.

    - Weights: the values of the variables the serving function reads, each hashed and
      sorted, so the same weights saved by a run or converted from its .keras file give
      the same value. State the computation never reads (a Dropout or RandomFlip seed
      generator, which Keras 3 reseeds on every load; optimizer slots) does not count.
    - Architecture: every op of the serving function with its attributes and constants
      (a Rescaling factor, strides, an activation), as a sorted list; generated node and
      function names do not count.
    """
    from exporters.savedmodel import load_pivot

    pivot = load_pivot(saved_model_dir)
    digest = hashlib.sha256()
    digest.update(json.dumps([list(pivot.input_shape), pivot.num_classes]).encode())
    parts = []
    for variable in pivot.function.variables:
        value = np.asarray(variable.numpy())
        head = f"{value.dtype.str}{value.shape}".encode()
        parts.append(hashlib.sha256(head + value.tobytes()).hexdigest())
    for part in sorted(parts):
        digest.update(part.encode())
    for line in _architecture(pivot.function):
        digest.update(line.encode())
    return digest.hexdigest()


def _architecture(function: Any) -> list[str]:
    """The serving function's ops with hashed attributes, sorted (names left out)."""
    graph = function.graph.as_graph_def()
    nodes = [*graph.node, *(node for f in graph.library.function for node in f.node_def)]
    lines = []
    for node in nodes:
        if node.op in _PLUMBING_OPS:
            continue
        attrs = [
            f"{key}={hashlib.sha256(node.attr[key].SerializeToString(deterministic=True)).hexdigest()[:16]}"
            for key in sorted(node.attr)
            if not key.startswith("_") and key not in _NAMING_ATTRS
        ]
        lines.append(f"{node.op}|{','.join(attrs)}")
    return sorted(lines)
