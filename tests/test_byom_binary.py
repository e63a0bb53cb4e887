"""Binary classifiers with one output unit, as people train them: `Dense(1, "sigmoid")`
and `Dense(1)` giving a logit (TensorFlow's transfer-learning tutorial). `cnnx export
--to all` makes them two classes, scores [1 - p, p], and every format, runtime and
bundle then sees [batch, 2] with two label names, int8 included: the logit head's
artifacts in every runtime, its float32 ones on every backend; the sigmoid head's, which
end in the same product plus a bias, in TensorFlow, LiteRT, ONNX Runtime and LiteRT.js on
WebGPU. A head of several sigmoid units is independent scores, said so and compared as
such (test_sigmoid_scores.py).

The models are tiny CNNs trained on `shapes` pictures of two classes (red and blue
shapes), shipped under tests/models/ (tests/factories.py `binary`), so agreement and
accuracy mean something.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.cli import cnnx
from tests.factories import BINARY_NAMES as NAMES
from tests.factories import family, two_classes
from toolkit.manifest import load_manifest

pytestmark = [pytest.mark.slow, pytest.mark.browser]

EVERY_RUNTIME = "tf,litert,onnxruntime,tfjs-node,browser,litertjs"
HEADS = ("sigmoid", "logit")


@pytest.fixture(scope="module")
def user(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's folder: both models, labels.txt and their pictures in cat/ and dog/."""
    root = tmp_path_factory.mktemp("binary")
    for head in HEADS:
        shutil.copy(family(f"binary_{head}").path, root / f"{head}.keras")
    (root / "labels.txt").write_text("\n".join(NAMES) + "\n")
    pictures, labels = two_classes(80, seed=41)
    for i, (picture, label) in enumerate(zip(pictures, labels, strict=True)):
        folder = root / "pictures" / NAMES[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(picture).save(folder / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def exported(user: Path) -> dict[str, tuple[Path, str]]:
    done = {}
    for head in HEADS:
        out = user / f"{head}-artifacts"
        code, stdout, err = cnnx(
            "export", "--model", user / f"{head}.keras", "--to", "all",
            "--data", user / "pictures", "--labels", user / "labels.txt", "--out", out,
        )  # fmt: skip
        assert code == 0, err
        done[head] = out, stdout
    return done


@pytest.mark.parametrize("head", HEADS)
def test_one_unit_is_exported_as_two_classes(
    head: str, user: Path, exported: dict[str, tuple[Path, str]]
) -> None:
    import keras
    import tensorflow as tf

    out, stdout = exported[head]
    said = " ".join(stdout.split())
    assert (
        f"the head is one {'sigmoid unit p' if head == 'sigmoid' else 'unit giving a logit z'}"
        in said
    )
    manifest = load_manifest(out)
    assert manifest.labels == list(NAMES)
    assert manifest.source["output"] == {
        "kind": "probabilities",
        "head": f"binary-{head}",
        "units": 1,
    }
    assert len(manifest.artifacts) == 12 and manifest.export["skipped"] == {}
    for entry in manifest.artifacts.values():
        assert entry.outputs[0]["shape"][-1] == 2, entry.id
    # The pivot's two columns are [1 - p, p] of the model's own answer.
    pictures, _ = two_classes(20, seed=77)
    unit = keras.saving.load_model(user / f"{head}.keras").predict(pictures, verbose=0)
    p = unit if head == "sigmoid" else 1 / (1 + np.exp(-unit.astype(np.float64)))
    pivot = tf.saved_model.load(str(out / "saved_model")).signatures["serving_default"]
    scores = pivot(image=tf.constant(pictures, tf.float32))["probabilities"].numpy()
    assert scores.shape == (20, 2)
    np.testing.assert_allclose(scores, np.hstack([1 - p, p]), atol=1e-6)


# Every runtime on every backend for the logit head: the full proof, in two verifies.
# Every artifact in every runtime, on wasm where a runtime has backends; then the float32
# artifacts on every other backend. A TF.js artifact's quantized weights are float32 again
# once loaded, before any backend sees them, so its other precisions add nothing there.
# Both heads end in the same [N, 1] x [1, 2] product (toolkit/sources/pivot.py
# two_columns), the logit's then a sigmoid, the sigmoid's plus a bias as every Dense layer
# has. So the sigmoid head is held to the native runtimes, int8 included, and to LiteRT.js
# on WebGPU with every TFLite precision, where a broadcast in its two columns once came
# out wrong on that backend only.
OTHER_BACKENDS = "cpu,webgl,webgpu,wasm-threaded"
FLOAT32 = "tfjs_float32,tflite_float32"


@pytest.mark.parametrize(
    ("head", "runtimes", "backends", "artifacts"),
    [
        ("sigmoid", "tf,litert,onnxruntime,litertjs", "webgpu", ""),
        ("logit", EVERY_RUNTIME, "wasm", ""),
        ("logit", "tfjs-node,browser,litertjs", OTHER_BACKENDS, FLOAT32),
    ],
)
def test_every_runtime_agrees_int8_included(
    head: str,
    runtimes: str,
    backends: str,
    artifacts: str,
    exported: dict[str, tuple[Path, str]],
) -> None:
    out, _ = exported[head]
    chosen = ("--artifacts", artifacts) if artifacts else ()
    code, stdout, err = cnnx(
        "verify", out, "-r", runtimes, "--backends", backends, *chosen, "--json"
    )
    assert code == 0, err
    report = json.loads(stdout)
    rows = {(r["artifact"], r["label"]): r for r in report["rows"]}
    assert report["labelled"] and all(r["status"] == "ok" for r in rows.values()), [
        (k, r["status"], r["reason"]) for k, r in rows.items() if r["status"] != "ok"
    ]
    assert {r["runtime"] for r in rows.values()} == set(runtimes.split(","))
    made = set(load_manifest(out).artifacts)
    if artifacts:  # every backend but wasm, each named in its row's label
        labels = {label.split("@")[0].split(" ")[0] for _, label in rows}
        assert labels == {
            "tfjs-node/cpu", "browser/cpu", "browser/webgl", "browser/webgpu",
            "litertjs/wasm-threaded", "litertjs/webgpu",
        }  # fmt: skip
        assert {a for a, _ in rows} == set(FLOAT32.split(","))
        return
    assert rows[("savedmodel", "tf")]["metrics"]["accuracy"] >= 0.95
    int8 = rows[("tflite_int8", "litert")]["metrics"]
    assert int8["agreement"] >= 0.98 and int8["accuracy"] >= 0.95
    if backends == "webgpu":
        # LiteRT.js on WebGPU alone ("litertjs/webgpu@DEVICE"): every TFLite artifact.
        litertjs = {(a, label.split("@")[0]) for a, label in rows if label.startswith("litertjs")}
        assert litertjs == {(a, "litertjs/webgpu") for a in made if a.startswith("tflite")}
    else:
        assert {a for a, _ in rows} == made


def test_bundles_classify_into_the_two_names(
    exported: dict[str, tuple[Path, str]], tmp_path: Path
) -> None:
    out, _ = exported["logit"]
    for target in ("web", "android", "rpi"):
        code, _, err = cnnx("package", "--target", target, out, "--out", tmp_path / target)
        assert code == 0, err
    bundle = tmp_path / "rpi"
    assert (bundle / "labels.txt").read_text().splitlines() == list(NAMES)
    run = subprocess.run(
        [sys.executable, "classify.py", "--json", "--model", "int8", "--top-k", "2"],
        cwd=bundle, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    answer = json.loads(run.stdout)
    assert answer["summary"]["accuracy"] >= 0.95
    for result in answer["results"]:
        assert len(result["scores"]) == 2 and abs(sum(result["scores"]) - 1) <= 0.02
        assert {t["label"] for t in result["top"]} == set(NAMES)
    page = load_manifest(tmp_path / "web" / "artifacts")  # what the web page reads
    assert page.labels == list(NAMES) and page.source["output"]["head"] == "binary-logit"
