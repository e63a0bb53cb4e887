"""Runs inside the android environment (make android-env), never in cnnx's own venv.

tflite-support and MediaPipe clash with TensorFlow (protobuf, pybind), so cnnx runs
this file with that venv's python: one JSON request on stdin, one JSON answer on
stdout. It imports nothing from cnnx.

Requests:
  {"action": "write_metadata", "model": in.tflite, "out": out.tflite, "labels": labels.txt,
   "mean": [...], "std": [...], "name", "version", "description", "author", "license",
   "input_description", "output_description"}
      -> {"metadata": the metadata as JSON, "associated_files": [...]}
  {"action": "read_metadata", "model": path}
      -> {"metadata": ..., "associated_files": [...]}
  {"action": "classify", "model": path, "images": [paths], "max_results": K}
      -> {"results": [[{"index", "score", "category_name", "display_name"}, ...], ...]}
      (MediaPipe Tasks' ImageClassifier: the task code Android runs)
Errors: {"error": "one line"} and exit code 1.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def write_metadata(request: dict[str, Any]) -> dict[str, Any]:
    from tflite_support import metadata_schema_py_generated as schema_fb
    from tflite_support.metadata_writers import image_classifier, metadata_info, writer_utils

    model = bytearray(writer_utils.load_file(request["model"]))
    input_type = writer_utils.get_input_tensor_types(model)[0]
    output_type = writer_utils.get_output_tensor_types(model)[0]
    writer = image_classifier.MetadataWriter.create_from_metadata_info(
        model,
        general_md=metadata_info.GeneralMd(
            name=request["name"],
            version=request.get("version"),
            description=request.get("description"),
            author=request.get("author"),
            licenses=request.get("license"),
        ),
        input_md=metadata_info.InputImageTensorMd(
            name="image",
            description=request.get("input_description"),
            norm_mean=[float(v) for v in request["mean"]],
            norm_std=[float(v) for v in request["std"]],
            color_space_type=(
                schema_fb.ColorSpaceType.GRAYSCALE
                if request.get("color") == "GRAY"
                else schema_fb.ColorSpaceType.RGB
            ),
            tensor_type=input_type,
        ),
        output_md=metadata_info.ClassificationTensorMd(
            name="probabilities",
            description=request.get("output_description"),
            label_files=[metadata_info.LabelFileMd(request["labels"])],
            tensor_type=output_type,
        ),
    )
    writer_utils.save_file(writer.populate(), request["out"])
    return read_metadata({"model": request["out"]})


def read_metadata(request: dict[str, Any]) -> dict[str, Any]:
    from tflite_support import metadata

    displayer = metadata.MetadataDisplayer.with_model_file(request["model"])
    files = list(displayer.get_packed_associated_file_list())
    labels = {}
    for name in files:
        labels[name] = displayer.get_associated_file_buffer(name).decode("utf-8").splitlines()
    return {
        "metadata": json.loads(displayer.get_metadata_json()),
        "associated_files": files,
        "associated_text": labels,
    }


def classify(request: dict[str, Any]) -> dict[str, Any]:
    import mediapipe as mp
    from mediapipe.tasks import python as mp_tasks
    from mediapipe.tasks.python import vision

    options = vision.ImageClassifierOptions(
        base_options=mp_tasks.BaseOptions(model_asset_path=request["model"]),
        max_results=int(request.get("max_results", 3)),
    )
    results = []
    with vision.ImageClassifier.create_from_options(options) as classifier:
        for path in request["images"]:
            image = mp.Image.create_from_file(path)
            classification = classifier.classify(image).classifications[0]
            results.append(
                [
                    {
                        "index": int(c.index),
                        "score": float(c.score),
                        "category_name": c.category_name,
                        "display_name": c.display_name,
                    }
                    for c in classification.categories
                ]
            )
    return {"results": results, "mediapipe": getattr(mp, "__version__", "unknown")}


ACTIONS = {"write_metadata": write_metadata, "read_metadata": read_metadata, "classify": classify}


def main() -> int:
    try:
        request = json.loads(sys.stdin.read())
        action = ACTIONS[request["action"]]
        answer = action(request)
    except Exception as error:  # the caller turns this line into a typed error
        print(json.dumps({"error": " ".join(f"{type(error).__name__}: {error}".split())}))
        return 1
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
