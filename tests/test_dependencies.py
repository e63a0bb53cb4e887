"""cnnx as a neighbour: what installing it does to an environment that holds TensorFlow,
and the TF.js converter without TensorFlow Decision Forests."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from toolkit.errors import RuntimeUnavailable
from toolkit.manifest import load_manifest

ROOT = Path(__file__).resolve().parents[1]
HELD = ("tensorflow", "keras", "numpy")


def _closure(names: tuple[str, ...]) -> list[importlib.metadata.Distribution]:
    """These distributions of the running environment and everything they require."""
    found: dict[str, importlib.metadata.Distribution] = {}
    todo = list(names)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in found:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # a requirement for another platform or Python
        found[name] = dist
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return list(found.values())


def _environment_holding(names: tuple[str, ...], root: Path) -> tuple[Path, dict[str, str]]:
    """A venv that holds `names` and their dependencies, linked from this test's venv
    (no download, no copy); its python and what it holds (name -> version)."""
    venv.create(root, with_pip=False)
    site = next((root / "lib").glob("python3*/site-packages"))
    held: dict[str, str] = {}
    for dist in _closure(names):
        held[canonicalize_name(dist.metadata["Name"])] = dist.version
        base = Path(str(dist.locate_file("")))
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if ".." not in Path(str(f)).parts}
        for top in tops:
            if (base / top).exists() and not (site / top).exists():
                (site / top).symlink_to(base / top)
    return root / "bin" / "python", held


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return next(out.glob("cnnx-*.whl"))


@pytest.fixture(scope="module")
def holding(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """One environment holding TensorFlow, Keras and NumPy for both dry runs below (a
    dry run changes nothing in it)."""
    return _environment_holding(HELD, tmp_path_factory.mktemp("holding") / "env")


@pytest.mark.slow
@pytest.mark.parametrize("extras", ["", "[tfjs,android,onnx]"])
def test_installing_the_wheel_changes_no_tensorflow_keras_or_numpy(
    wheel: Path, holding: tuple[Path, dict[str, str]], extras: str, tmp_path: Path
) -> None:
    from exporters.tfjs import TFDF_TENSORFLOW

    python, held = holding
    assert {"tensorflow", "keras", "numpy", "protobuf", "h5py"} <= set(held)
    if extras and held["tensorflow"] != TFDF_TENSORFLOW:
        # (a floor or ceiling check: scripts/check_dependency_range.sh)
        pytest.skip(f"the tfjs extra holds TensorFlow {TFDF_TENSORFLOW}, not {held['tensorflow']}")
    report = tmp_path / "report.json"
    # Normal resolution against what the environment holds; only metadata is fetched
    # (PyPI serves it beside each wheel), so no wheel is downloaded. Without our
    # PYTHONPATH: a source tree on it (with the cnnx.egg-info the wheel build leaves)
    # would count as an installed cnnx.
    subprocess.run(
        [
            sys.executable, "-m", "pip", "--python", str(python), "install", "--dry-run",
            "--only-binary=:all:", "--quiet", "--report", str(report), f"{wheel}{extras}",
        ],
        check=True,
        capture_output=True,
        timeout=300,
        env={name: value for name, value in os.environ.items() if name != "PYTHONPATH"},
    )  # fmt: skip
    planned = {
        canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    assert planned.pop("cnnx") == "0.1.0"
    changed = {name: (held[name], planned[name]) for name in planned if name in held}
    kept = HELD
    if extras and not held["numpy"].startswith("2."):
        # (the floor check) jax, for the converter, and OpenCV, for MediaPipe, need NumPy 2
        kept = ("tensorflow", "keras")
        assert changed.pop("numpy", ("", "2."))[1].startswith("2.")
    assert not {name: changed[name] for name in kept if name in changed}
    if not extras:
        # The library alone adds packages and replaces none.
        assert not changed
    else:
        assert {"tensorflowjs", "mediapipe", "onnxruntime", "onnx", "tf2onnx"} <= set(planned)


@pytest.mark.slow
def test_converter_without_decision_forests_writes_the_same_graph_model(
    artifacts: Path, tmp_path: Path
) -> None:
    """TFDF that fails to import (as beside any TensorFlow but the one it was built
    for): the converter runs with the stand-in and writes the same TF.js model."""
    shadow = tmp_path / "shadow" / "tensorflow_decision_forests"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        "raise ImportError('inference.so: undefined symbol: _ZN10tensorflow8OpKernel')\n"
    )
    pivot = load_manifest(artifacts).artifact_path(load_manifest(artifacts).artifact("savedmodel"))
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from exporters.base import ExportOptions\n"
        "from exporters.tfjs import decision_forests_stood_in, export_tfjs_float32\n"
        "export_tfjs_float32(Path(sys.argv[1]), Path(sys.argv[2]), ExportOptions())\n"
        "print(decision_forests_stood_in())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(pivot), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": f"{tmp_path / 'shadow'}:{ROOT}", "TF_CPP_MIN_LOG_LEVEL": "3"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "True"
    ours, theirs = tmp_path / "out" / "tfjs" / "float32", artifacts / "tfjs" / "float32"
    assert _graph(ours / "model.json") == _graph(theirs / "model.json")
    shards = sorted(p.name for p in theirs.glob("*.bin"))
    assert shards and sorted(p.name for p in ours.glob("*.bin")) == shards
    for name in shards:
        assert (ours / name).read_bytes() == (theirs / name).read_bytes()


def _graph(model_json: Path) -> dict[str, object]:
    """model.json as data, without the `_input_shapes`-style annotations grappler adds
    or not depending on what the process converted before (TF.js ignores them)."""
    model = json.loads(model_json.read_text())
    for node in model["modelTopology"]["node"]:
        node["attr"] = {k: v for k, v in node.get("attr", {}).items() if not k.startswith("_")}
    return model


@pytest.mark.slow
def test_a_missing_converter_stops_the_export_before_any_work(
    tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from exporters.tfjs import install_command
    from toolkit.export.artifacts import ExportRequest, export

    monkeypatch.setitem(sys.modules, "tensorflowjs", None)  # import tensorflowjs fails
    monkeypatch.setitem(sys.modules, "tensorflowjs.converters", None)
    with pytest.raises(RuntimeUnavailable) as raised:
        export(ExportRequest(model=tiny_run, to="all", out=tmp_path / "artifacts"))
    line = raised.value.one_line()
    assert "the TF.js converter (tensorflowjs) cannot be imported" in line
    # On TensorFlow 2.19.0, `pip install 'cnnx[tfjs]'`; on another, the install that keeps it.
    assert f"(install it: {install_command()})" in line
    assert not (tmp_path / "artifacts").exists()


def test_the_converter_install_command_keeps_the_installed_tensorflow() -> None:
    from exporters.tfjs import install_command

    # The TensorFlow TF Decision Forests pins: the extra changes nothing.
    assert install_command("2.19.0") == "pip install 'cnnx[tfjs]'"
    # Any other: the converter without its dependencies, and the tf_keras of that minor.
    for version, minor in (("2.21.0", "2.21"), ("2.19.1", "2.19"), ("2.16.2", "2.16")):
        command = install_command(version)
        assert "--no-deps 'tensorflowjs==4.22.0'" in command
        assert f"'tf_keras~={minor}.0'" in command and "cnnx[tfjs]" not in command


def test_a_keras_2_file_without_tf_keras_names_the_matching_release() -> None:
    from toolkit.sources.keras_files import tf_keras_hint

    minor = ".".join(importlib.metadata.version("tensorflow").split(".")[:2])
    hint = tf_keras_hint(["tf_keras: No module named 'tf_keras'", "keras: bad config"])
    assert hint == f"Keras 2 files load through tf_keras: pip install 'tf_keras~={minor}.0'"
    assert tf_keras_hint(["tf_keras: bad config", "keras: bad config"]) == ""
