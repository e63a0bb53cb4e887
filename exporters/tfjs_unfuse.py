"""Split fused TF.js ops whose "bias" is a whole tensor back into the op and an AddV2.

Grappler folds an Add that follows a convolution or a matmul into the op as its bias
without looking at what is added. In EfficientNet's residual blocks the addend is the
block's input, a [1, H, W, C] tensor computed by another node, so model.json holds a
_FusedConv2D with a rank-4 "bias". TensorFlow, and TF.js's cpu and webgl backends,
broadcast it; the wasm backend refuses the model at the first predict ("FusedConv2D only
supports rank-1 bias but got rank 4"). Split, the graph computes the same: the plain op,
an AddV2 of the addend, then the fused activation, if any, after the add as before. The
weights are the same tensors, so the shards and weightsManifest do not change.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from toolkit.core.limits import read_json
from toolkit.errors import ExportError

# The fused op -> the plain op, and the attributes of the fused op the plain one keeps.
PLAIN_OPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "_FusedConv2D": (
        "Conv2D",
        ("T", "strides", "padding", "explicit_paddings", "data_format", "dilations"),
    ),
    "FusedDepthwiseConv2dNative": (
        "DepthwiseConv2dNative",
        ("T", "strides", "padding", "explicit_paddings", "data_format", "dilations"),
    ),
    "_FusedMatMul": ("MatMul", ("T", "transpose_a", "transpose_b")),
}
# Activations a fused op may apply after its bias, each a graph op TF.js runs alone.
ACTIVATIONS = ("Relu", "Relu6", "Elu", "Selu", "Sigmoid", "Tanh", "LeakyRelu", "Prelu")


def fused_ops(node: dict[str, Any]) -> list[str]:
    """The names in a node's `fused_ops` attribute ("BiasAdd", "Relu", ...)."""
    encoded = node.get("attr", {}).get("fused_ops", {}).get("list", {}).get("s", [])
    return [base64.b64decode(item).decode() for item in encoded]


def _source(name: str) -> str:
    """The node an input names ("^ctrl", "node:1" -> "node")."""
    return str(name).lstrip("^").split(":")[0]


def unfuse_model_json(model_json: Path) -> list[str]:
    """`unfuse_tensor_biases` on a model.json file, rewritten only if a node was split."""
    data = read_json(model_json, "TF.js converter output", ExportError)
    split = unfuse_tensor_biases(data)
    if split:
        model_json.write_text(json.dumps(data))
    return split


def unfuse_tensor_biases(data: dict[str, Any]) -> list[str]:
    """Split every fused op of `data` (a model.json) whose bias is not a rank-1 weight;
    return the names of the nodes split. `data` is changed in place."""
    nodes: list[dict[str, Any]] = data.get("modelTopology", {}).get("node", [])
    by_name = {str(node.get("name")): node for node in nodes}
    ranks = {
        weight.get("name"): len(weight.get("shape", []))
        for group in data.get("weightsManifest", [])
        for weight in group.get("weights", [])
    }
    split: list[str] = []
    rewritten: list[dict[str, Any]] = []
    for node in nodes:
        ops = fused_ops(node)
        inputs = [str(name) for name in node.get("input", []) if not str(name).startswith("^")]
        if node.get("op") not in PLAIN_OPS or ops[:1] != ["BiasAdd"] or len(inputs) < 3:
            rewritten.append(node)
            continue
        bias = _source(inputs[2])
        if by_name.get(bias, {}).get("op") == "Const" and ranks.get(bias) == 1:
            rewritten.append(node)  # a rank-1 weight: what every backend takes
            continue
        rewritten.extend(_split(node, ops, inputs, set(by_name)))
        split.append(str(node["name"]))
    if split:
        data["modelTopology"]["node"] = rewritten
    return split


def _split(
    node: dict[str, Any], ops: list[str], inputs: list[str], taken: set[str]
) -> list[dict[str, Any]]:
    """The plain op, the AddV2 and the activation that compute what `node` computed; the
    last of them keeps its name, so the nodes that read it need no change."""
    name = str(node["name"])
    plain_op, kept = PLAIN_OPS[str(node["op"])]
    activations = ops[1:]
    if not _splittable(activations, inputs):
        raise ExportError(
            f"TF.js graph: {name} ({node['op']}) fuses {'+'.join(ops)} onto a tensor bias, "
            "which TF.js's wasm backend cannot run and cnnx cannot split",
            "export with --to tflite, or run TF.js on its cpu or webgl backend",
        )

    def fresh(suffix: str) -> str:
        candidate = f"{name}/{suffix}"
        while candidate in taken:
            candidate += "_"
        taken.add(candidate)
        return candidate

    attrs = node.get("attr", {})
    dtype = attrs.get("T", {"type": "DT_FLOAT"})
    controls = [str(i) for i in node.get("input", []) if str(i).startswith("^")]
    common = {key: node[key] for key in ("device",) if key in node}
    plain = {
        **common,
        "name": fresh("unfused_op"),
        "op": plain_op,
        "input": inputs[:2] + controls,
        "attr": {key: attrs[key] for key in kept if key in attrs},
    }
    add = {
        **common,
        "name": fresh("unfused_add") if activations else name,
        "op": "AddV2",
        "input": [plain["name"], inputs[2]],
        "attr": {"T": dtype},
    }
    if not activations:
        return [plain, add]
    activation = activations[0]
    act_attrs: dict[str, Any] = {"T": dtype}
    if activation == "LeakyRelu" and "leakyrelu_alpha" in attrs:
        act_attrs["alpha"] = attrs["leakyrelu_alpha"]
    act_inputs = [add["name"]] + ([inputs[3]] if activation == "Prelu" else [])
    act = {**common, "name": name, "op": activation, "input": act_inputs, "attr": act_attrs}
    return [plain, add, act]


def _splittable(activations: list[str], inputs: list[str]) -> bool:
    """At most one activation after the bias, one TF.js runs alone (Prelu with its alpha)."""
    if not activations:
        return True
    if len(activations) > 1 or activations[0] not in ACTIVATIONS:
        return False
    return activations[0] != "Prelu" or len(inputs) > 3
