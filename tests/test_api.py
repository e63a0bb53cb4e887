"""toolkit.api: docs/python-api.md runs as written, and gives what the CLI gives.

The notebook on that page (train a Keras model in memory, export, verify, bench, load
and predict) is executed once per module in an empty folder; the tests then run the CLI
on the same model (saved to .keras) with the same options and compare artifacts and
figures, and use the same artifacts for predict, errors and the no-printing rule.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.cli import cnnx
from toolkit import api
from toolkit.errors import (
    ArtifactError,
    DataError,
    ModelError,
    PathError,
    UsageError,
    VerificationFailed,
)

DOC = Path(__file__).resolve().parents[1] / "docs" / "python-api.md"


def doc_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


@dataclasses.dataclass
class Notebook:
    folder: Path
    names: dict[str, Any]
    printed: list[str]

    @property
    def artifacts(self) -> Path:
        return self.folder / "artifacts"


@pytest.fixture(scope="module")
def notebook(tmp_path_factory: pytest.TempPathFactory) -> Notebook:
    """Every python block of docs/python-api.md, in order, in one namespace."""
    folder = tmp_path_factory.mktemp("notebook")
    printed: list[str] = []

    def collect(*values: Any, **_: Any) -> None:
        printed.append(" ".join(str(v) for v in values))

    names: dict[str, Any] = {"__name__": "notebook", "print": collect}
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        for block in doc_blocks():
            exec(compile(block, str(DOC), "exec"), names)  # our own page, run as a notebook would
    finally:
        os.chdir(cwd)
    return Notebook(folder, names, printed)


@pytest.fixture(scope="module")
def cli_artifacts(notebook: Notebook) -> Path:
    """The same model, saved to .keras, exported by `cnnx export` with the same options."""
    folder = notebook.folder
    notebook.names["model"].save(folder / "model.keras")
    labels = folder / "labels.txt"
    labels.write_text("\n".join(notebook.names["dataset"].class_names) + "\n", encoding="utf-8")
    out = folder / "cli-artifacts"
    result = cnnx(
        "export", "--model", folder / "model.keras", "--to", "tflite",
        "--data", folder / "images", "--labels", labels, "--out", out,
    )  # fmt: skip
    assert result.returncode == 0, result.output
    return out


@pytest.mark.slow
def test_the_notebook_runs_and_each_call_did_its_work(notebook: Notebook) -> None:
    from exporters import registry

    manifest = notebook.names["manifest"]
    assert set(manifest.artifacts) == set(registry.select("tflite", None, None))
    assert manifest.source["format"] == "memory"
    assert manifest.labels == notebook.names["dataset"].class_names
    report = notebook.names["report"]
    assert manifest.eval_data["kind"] == "images"  # data= was recorded for verify
    assert report.labelled and report.images == manifest.eval_data["split"]["evaluation"]
    rows = {(r.artifact, r.runtime): r for r in report.rows}
    assert set(rows) == {(a, "tf" if a == "savedmodel" else "litert") for a in manifest.artifacts}
    # float32 holds 1e-4 whatever the training gave; int8 is measured, not assumed
    assert rows["tflite_float32", "litert"].status == "ok"
    assert rows["savedmodel", "tf"].metrics.agreement == 1.0
    # the strict tolerance given as a mapping made int8 fail on max abs, raised as exit 9
    strict = notebook.names["strict"]
    assert [r.status for r in strict.rows] == ["drift"]
    assert "max_abs" in [c.metric for c in strict.rows[0].failed_checks]
    assert any(line.startswith("9 1 artifact(s) drifted") for line in notebook.printed)
    with pytest.raises(VerificationFailed, match=r"tflite_int8 on litert: .*max_abs"):
        strict.raise_for_failures()
    speed = notebook.names["speed"]
    tflite = len(manifest.artifacts) - 1  # each in LiteRT, one thread
    assert [r.status != "failed" and r.latency.p50 > 0 for r in speed.rows] == [True] * tflite
    assert (notebook.artifacts / "report" / "report.json").is_file()
    scores = notebook.names["scores"]
    assert scores.shape == (2, 10) and np.allclose(scores.sum(axis=1), 1, atol=0.02)


@pytest.mark.slow
def test_the_cli_on_the_same_model_makes_the_same_artifacts(
    notebook: Notebook, cli_artifacts: Path
) -> None:
    from toolkit.manifest import load_manifest

    ours, theirs = notebook.names["manifest"], load_manifest(cli_artifacts)
    assert set(ours.artifacts) == set(theirs.artifacts)
    assert ours.source["fingerprint"] == theirs.source["fingerprint"]
    assert ours.input == theirs.input and ours.labels == theirs.labels
    assert ours.eval_data == theirs.eval_data
    for artifact_id in ours.artifacts:
        if artifact_id == "savedmodel":
            continue  # the pivot's graph names where it came from; its weights are compared
        assert ours.artifacts[artifact_id].files == theirs.artifacts[artifact_id].files


@pytest.mark.slow
def test_the_cli_measures_the_same_figures(notebook: Notebook, cli_artifacts: Path) -> None:
    def parity(rows: list[dict[str, Any]]) -> dict[tuple[str, str], Any]:
        return {(r["artifact"], r["label"]): (r["status"], r["metrics"]) for r in rows}

    report = notebook.names["report"]
    result = cnnx("verify", cli_artifacts, "-r", "tf,litert", "--json")
    assert result.returncode == (0 if report.ok else 9), result.output
    cli_verify = json.loads(result.stdout)
    assert parity(cli_verify["rows"]) == parity(report.to_dict()["rows"])
    assert cli_verify["images"] == report.images

    result = cnnx(
        "bench", cli_artifacts, "-r", "litert", "--threads", "1",
        "--runs", "30", "--warmup", "3", "--json", "--no-plots",
    )  # fmt: skip
    assert result.returncode == (0 if report.ok else 9), result.output
    cli_bench = json.loads(result.stdout)
    ours = notebook.names["speed"].to_dict()
    assert parity(cli_bench["rows"]) == parity(ours["rows"])
    assert {k: v["size"] for k, v in cli_bench["artifacts"].items()} == {
        k: v["size"] for k, v in ours["artifacts"].items()
    }
    assert cli_bench["config"]["runs"] == ours["config"]["runs"] == 30


@pytest.mark.slow
def test_predict_applies_the_recorded_pixel_rule(notebook: Notebook) -> None:
    from PIL import Image

    from toolkit.manifest import load_manifest
    from toolkit.measure.evalset import load_eval_set

    manifest = load_manifest(notebook.artifacts)
    evalset = load_eval_set(manifest)  # the evaluation half that export recorded
    root, files = Path(manifest.eval_data["path"]), manifest.eval_data["files"][:8]
    raw = [np.asarray(Image.open(root / f).convert("RGB")) for f in files]
    with api.load(notebook.artifacts, "tflite_float32") as predictor:
        assert predictor.info.runtime == "litert"
        # the pictures verify ran on, given raw, become exactly what verify gave LiteRT
        verified = {image.tobytes() for image in evalset.images}
        assert all(image.tobytes() in verified for image in predictor.preprocess(raw))
        batch = predictor.predict(np.stack(raw))
        np.testing.assert_array_equal(predictor.predict(raw), batch)
        # one picture at another size is resized by the recorded rule (bilinear with
        # antialiasing, as Pillow's BILINEAR): within one grey level of Pillow's
        big = np.asarray(Image.fromarray(raw[0]).resize((97, 61), Image.Resampling.BICUBIC))
        back = np.asarray(Image.fromarray(big).resize((32, 32), Image.Resampling.BILINEAR))
        ours = predictor.preprocess(big)[0]
        assert ours.shape == (32, 32, 3)
        assert np.abs(ours - back.astype(np.float32)).max() <= 1.0
        # a gray HxW picture and a Pillow image are taken as well
        gray = np.asarray(Image.fromarray(raw[1]).convert("L"))
        assert predictor.predict(gray).shape == (1, 10)
        pil = predictor.predict(Image.fromarray(raw[2]))
        np.testing.assert_array_equal(pil, batch[2:3])
        top = predictor.classify(raw[:3], top=3)
        assert [p.indices[0] for p in top] == list(np.argmax(batch[:3], axis=1))
        assert top[0].labels[0] == manifest.labels[top[0].indices[0]]
        assert json.loads(json.dumps(top[0].to_dict()))["indices"] == list(top[0].indices)
    with api.load(notebook.artifacts, "savedmodel") as reference:
        assert reference.info.runtime == "tf"
        np.testing.assert_allclose(reference.predict(raw), batch, atol=1e-4)


@pytest.mark.slow
def test_quantize_auto_keeps_the_chosen_artifact(
    notebook: Notebook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The library's --quantize auto: the same search as the CLI's, one artifact kept.
    Two candidates (plain int8, float32), really built and measured: the search itself,
    over all six, is proven in tests/test_quantize.py."""
    from toolkit.autoquant import search
    from toolkit.manifest import load_manifest

    monkeypatch.setattr(search, "CANDIDATES", (search.CANDIDATES[0], search.CANDIDATES[-1]))
    out = tmp_path / "auto"
    names = notebook.names
    manifest = api.export(
        names["model"], out, to="tflite", quantize="auto", data=notebook.folder / "images",
        labels=names["dataset"].class_names,
    )  # fmt: skip
    (winner,) = [e for e in manifest.artifacts.values() if "quantize_auto" in e.details]
    assert set(manifest.artifacts) == {"savedmodel", winner.id}
    decision = winner.details["quantize_auto"]
    candidates = [row["candidate"] for row in decision["candidates"]]
    assert candidates == ["int8", "float32"] and decision["reason"]
    assert (out / winner.path).is_file() and (out / "tflite" / "quantize_auto.md").is_file()
    assert load_manifest(out).artifact(winner.id).size == winner.size


@pytest.mark.slow
@pytest.mark.node
@pytest.mark.browser
def test_an_in_memory_export_joins_the_cli_folder_and_predicts_in_tfjs(
    notebook: Notebook, cli_artifacts: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "both"
    shutil.copytree(cli_artifacts, folder)
    names = notebook.names
    # same weights, labels and preprocessing as the CLI's: not "another model's artifacts"
    manifest = api.export(
        names["model"], folder, to="tfjs", quantize="none",
        labels=names["dataset"].class_names,
    )  # fmt: skip
    assert {"tflite_int8", "tfjs_float32"} <= set(manifest.artifacts)
    assert capfd.readouterr() == ("", "")  # the converter's chatter stays off the terminal
    pictures = [names["dataset"].x_test[0], names["big"]]
    with api.load(folder, "savedmodel") as reference:
        expected = reference.predict(pictures)
    for runtime in ("tfjs-node", "browser"):
        with api.load(folder, "tfjs_float32", runtime=runtime, backend="wasm") as predictor:
            assert predictor.info.runtime == runtime
            np.testing.assert_allclose(predictor.predict(pictures), expected, atol=1e-4)


@pytest.mark.slow
def test_the_api_prints_nothing(notebook: Notebook, capfd: pytest.CaptureFixture[str]) -> None:
    capfd.readouterr()
    report = api.verify(
        notebook.artifacts,
        runtimes="litert",
        artifact_ids="tflite_float32",
    )
    with api.load(notebook.artifacts, "tflite_dynamic") as predictor:
        predictor.predict(notebook.names["big"])
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    assert report.ok


@pytest.mark.slow
def test_results_are_frozen_with_plain_dicts(notebook: Notebook) -> None:
    for result in (notebook.names["manifest"], notebook.names["report"], notebook.names["speed"]):
        assert dataclasses.is_dataclass(result)
        with pytest.raises(dataclasses.FrozenInstanceError):
            result.created = "changed"  # type: ignore[misc]
        json.dumps(result.to_dict())


@pytest.mark.slow
def test_bad_input_raises_the_typed_errors(notebook: Notebook, tmp_path: Path) -> None:
    artifacts = notebook.artifacts
    with api.load(artifacts, "tflite_float32") as predictor:
        for images, words in (
            (np.zeros((32, 32, 3), np.float32), "dtype float32"),
            (np.full((8, 8, 3), 300), "outside 0..255"),
            (np.zeros((8, 8, 2), np.uint8), "shape [8, 8, 2]"),
            (np.zeros((2, 2, 8, 8, 3), np.uint8), "NxHxWxC"),
            ([], "no images"),
            ("picture.png", "got str"),
        ):
            with pytest.raises(UsageError, match=re.escape(words)):
                predictor.predict(images)
    with pytest.raises(ArtifactError, match="no artifact 'tflite_int4'"):
        api.load(artifacts, "tflite_int4")
    with pytest.raises(UsageError, match="unknown runtime 'onnx'"):
        api.load(artifacts, "tflite_int8", runtime="onnx")
    with pytest.raises(ArtifactError, match="cannot run artifact"):
        api.load(artifacts, "tflite_int8", runtime="tf")
    with pytest.raises(PathError, match=r"no manifest\.json"):
        api.verify(tmp_path)
    with pytest.raises(UsageError, match="'min_agreemnt' is neither a tolerance name"):
        api.verify(artifacts, runtimes="litert", tolerances={"min_agreemnt": 0.9})
    with pytest.raises(UsageError, match="unknown runtime 'tflite'"):
        api.bench(artifacts, runtimes=["tflite"])
    with pytest.raises(UsageError, match=r"model_or_path must be a keras\.Model or a path"):
        api.export(42, tmp_path / "out")
    with pytest.raises(UsageError, match="budget of --quantize auto"):
        api.export(notebook.names["model"], tmp_path / "out", min_agreement="99%")
    with pytest.raises(UsageError, match="preprocess has unknown keys"):
        api.export(notebook.names["model"], tmp_path / "out", preprocess={"scaling": 2})


@pytest.mark.slow
def test_export_checks_an_in_memory_model_as_it_checks_files(
    notebook: Notebook, tmp_path: Path
) -> None:
    import keras

    model = notebook.names["model"]
    with pytest.raises(DataError, match="list of labels has 2 names but the model has 10"):
        api.export(model, tmp_path / "a", to="savedmodel", labels=["cat", "dog"])
    unbuilt = keras.Sequential([keras.layers.Dense(3, activation="softmax")])
    with pytest.raises(ModelError, match="not built"):
        api.export(unbuilt, tmp_path / "b", to="savedmodel")
    # A map of one value a pixel (segmentation), not class scores nor one binary unit.
    pixelwise = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Dense(1)])
    with pytest.raises(ModelError, match=r"outputs shape \[None, 8, 8, 1\]"):
        api.export(pixelwise, tmp_path / "c", to="savedmodel")
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


@pytest.mark.slow
def test_verify_on_unlabelled_pictures_of_another_size(notebook: Notebook, tmp_path: Path) -> None:
    from PIL import Image

    flat = tmp_path / "flat"
    flat.mkdir()
    for n, pixels in enumerate(notebook.names["dataset"].x_test[:20]):
        Image.fromarray(pixels).resize((45, 37)).save(flat / f"{n:02d}.jpg")
    report = api.verify(
        notebook.artifacts, data=flat, runtimes="litert", artifact_ids="tflite_float32"
    )
    assert not report.labelled and report.images == 20
    assert [(r.status, r.metrics.accuracy) for r in report.rows] == [("ok", None)]


@pytest.mark.slow
def test_preprocess_as_a_preset_or_a_mapping(tmp_path: Path) -> None:
    import keras

    from toolkit.data.inputspec import PRESETS

    keras.utils.set_random_seed(1)
    layers = keras.layers
    model = keras.Sequential(
        [keras.Input((8, 8, 3)), layers.Flatten(), layers.Dense(3, activation="softmax")]
    )
    preset = api.export(model, tmp_path / "a", to="savedmodel", preprocess="imagenet")
    assert preset.input.mean == PRESETS["imagenet"].mean
    assert preset.input.std == PRESETS["imagenet"].std
    given = api.export(
        model, tmp_path / "b", to="savedmodel", preprocess={"scale": "1/255", "resize": "nearest"}
    )
    assert given.input.scale == pytest.approx(1 / 255) and given.input.resize == "nearest"
    assert given.source["fingerprint"] == preset.source["fingerprint"]
