"""Before verify or bench runs anything, every graph it would load passes the graph-op
policy. Apart from graph_policy so that the TF.js reader, which checks its own graph,
and the policy do not import each other."""

from __future__ import annotations

from toolkit.graph.onnx_policy import check_onnx
from toolkit.graph.policy import check_savedmodel
from toolkit.graph.tfjs_model import read_tfjs_model
from toolkit.manifest import ArtifactEntry, Manifest


def check_artifact_graphs(
    manifest: Manifest, entries: list[ArtifactEntry], *, unsafe: bool = False
) -> None:
    """Before verify or bench runs anything: the reference SavedModel and every selected
    SavedModel, TF.js and ONNX graph pass the policy. A manifest hash proves a file is the one
    exported, not that a graph swapped in with a matching manifest is safe to run."""
    chosen = {entry.id: entry for entry in entries}
    if "savedmodel" in manifest.artifacts:
        chosen.setdefault("savedmodel", manifest.artifacts["savedmodel"])
    for entry in chosen.values():
        path = manifest.artifact_path(entry, check=True)  # a missing or changed file: exit 7
        if entry.format == "savedmodel":
            check_savedmodel(path, unsafe=unsafe)
        elif entry.format == "tfjs":
            read_tfjs_model(path, unsafe=unsafe)
        elif entry.format == "onnx":
            check_onnx(path, unsafe=unsafe)
