"""SavedModels whose graphs do more than compute, built once a session.

Each takes a [None, 16, 16, 3] float32 `image` and returns 3-class `probabilities`
through the serving signature, like a real classifier, and each would touch the file
system when run: the file it would create is `marker(folder)` (or, for the checkpoint
writer, a file beside it), so whether its graph ran is a fact on disk.

`build_graphs(folder)` writes (a few seconds, once; later calls reuse the folder):

- write_file/, save_v2/, print_to_file/, read_file/, matching_files/, py_function/:
  the op named, in the serving function;
- tf1_main_op/: a TF1 SavedModel whose main_op (run by the loader) writes a file;
- saver_suffix/: a clean SavedModel whose checkpoint writer's suffix was edited to
  climb out of the variables folder;
- saver_const/: a clean SavedModel whose restore call reads from a constant path
  instead of the loader's;
- clean/: the untouched model the two above were edited from.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

DONE = ".complete"
SIZE = 16
CLASSES = 3
NAMES = (
    "write_file",
    "save_v2",
    "print_to_file",
    "read_file",
    "matching_files",
    "py_function",
    "tf1_main_op",
    "saver_suffix",
    "saver_const",
    "clean",
)
# The op each graph is refused for (what the error line must name).
REFUSED_OP = {
    "write_file": "WriteFile",
    "save_v2": "SaveV2",
    "print_to_file": "PrintV2",
    "read_file": "ReadFile",
    "matching_files": "MatchingFiles",
    "py_function": "EagerPyFunc",
    "tf1_main_op": "WriteFile",
    "saver_suffix": "SaveV2",
    "saver_const": "StatefulPartitionedCall",
}


def marker(folder: Path) -> Path:
    return Path(folder) / "GRAPH-RAN"


def build_graphs(folder: Path) -> dict[str, Path]:
    folder = Path(folder)
    paths = {name: folder / name for name in NAMES}
    if (folder / DONE).exists():
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    target = str(marker(folder))
    spec = tf.TensorSpec([None, SIZE, SIZE, 3], tf.float32)

    def classify(image: Any, weights: Any) -> dict[str, Any]:
        flat = tf.reshape(image, [-1, SIZE * SIZE * 3])
        return {"probabilities": tf.nn.softmax(tf.matmul(flat, weights))}

    def side_effects() -> dict[str, Any]:
        return {
            "write_file": lambda image: tf.io.write_file(target, "ran"),
            "save_v2": lambda image: tf.raw_ops.SaveV2(
                prefix=target, tensor_names=["x"], shape_and_slices=[""], tensors=[image]
            ),
            "print_to_file": lambda image: tf.print(
                image[0, 0, 0], output_stream=f"file://{target}"
            ),
            "read_file": lambda image: tf.strings.length(tf.io.read_file("/etc/hostname")),
            "matching_files": lambda image: tf.io.matching_files("/*"),
            "py_function": lambda image: tf.py_function(
                lambda: open(target, "w").close() or 0.0, [], tf.float32
            ),
        }

    def serving(module: Any, effect: Any) -> Any:
        def serve(image: Any) -> dict[str, Any]:
            with tf.control_dependencies([effect(image)]):
                return classify(tf.identity(image), module.weights)

        return tf.function(serve, input_signature=[spec])

    for name, effect in side_effects().items():
        module = tf.Module()
        module.weights = tf.Variable(tf.random.normal([SIZE * SIZE * 3, CLASSES], seed=1))
        module.serve = serving(module, effect)
        tf.saved_model.save(module, str(paths[name]), signatures={"serving_default": module.serve})

    _tf1_main_op(paths["tf1_main_op"], target)
    clean = tf.Module()
    clean.weights = tf.Variable(tf.random.normal([SIZE * SIZE * 3, CLASSES], seed=1))
    clean.serve = tf.function(lambda image: classify(image, clean.weights), input_signature=[spec])
    tf.saved_model.save(clean, str(paths["clean"]), signatures={"serving_default": clean.serve})
    _edit(paths["clean"], paths["saver_suffix"], _climbing_suffix)
    _edit(paths["clean"], paths["saver_const"], _constant_restore_path(target))
    marker(folder).unlink(missing_ok=True)
    (folder / DONE).write_text(json.dumps(sorted(paths)))
    return paths


def _tf1_main_op(path: Path, target: str) -> None:
    import tensorflow as tf

    v1 = tf.compat.v1
    with tf.Graph().as_default(), v1.Session() as session:
        image = v1.placeholder(tf.float32, [None, SIZE, SIZE, 3], name="image")
        weights = v1.get_variable("weights", [SIZE * SIZE * 3, CLASSES])
        flat = tf.reshape(image, [-1, SIZE * SIZE * 3])
        probabilities = tf.nn.softmax(tf.matmul(flat, weights), name="probabilities")
        session.run(v1.global_variables_initializer())
        builder = v1.saved_model.Builder(str(path))
        builder.add_meta_graph_and_variables(
            session,
            ["serve"],
            signature_def_map={
                "serving_default": v1.saved_model.predict_signature_def(
                    {"image": image}, {"probabilities": probabilities}
                )
            },
            main_op=tf.group(v1.tables_initializer(), tf.io.write_file(target, "ran")),
        )
        builder.save()


def _edit(source: Path, target: Path, edit: Any) -> None:
    from tensorflow.core.protobuf import saved_model_pb2

    shutil.copytree(source, target)
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((target / "saved_model.pb").read_bytes())
    edit(proto.meta_graphs[0].graph_def)
    (target / "saved_model.pb").write_bytes(proto.SerializeToString())


def _climbing_suffix(graph_def: Any) -> None:
    """The checkpoint writer's file suffix becomes '/../../../escaped'."""
    for function in graph_def.library.function:
        if "traced_save" not in function.signature.name:
            continue
        for node in function.node_def:
            if node.op == "Const" and node.attr["value"].tensor.string_val:
                values = node.attr["value"].tensor.string_val
                if any(b"part" in v for v in values):
                    values[:] = [b"/../../../escaped" for _ in values]


def _constant_restore_path(target: str) -> Any:
    """The top-level restore call reads a constant path instead of the saver's filename."""

    def edit(graph_def: Any) -> None:
        const = graph_def.node.add()
        const.name = "evil_prefix"
        const.op = "Const"
        const.attr["dtype"].type = 7  # DT_STRING
        tensor = const.attr["value"].tensor
        tensor.dtype = 7
        tensor.string_val.append(target.encode())
        for node in graph_def.node:
            calls = node.attr["f"].func.name if "f" in node.attr else ""
            if "traced_restore" in calls and node.input and node.input[0] == "saver_filename":
                node.input[0] = "evil_prefix"

    return edit
