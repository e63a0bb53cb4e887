"""cnnx doctor: the real checks on this machine, and the known breakages it must name."""

from __future__ import annotations

import json
import time
import venv
from pathlib import Path

from tests.cli import Done, cnnx
from toolkit import doctor

CORE = {"python", "tensorflow", "litert"}
ALL = CORE | {"tfjs-converter", "node", "npm-packages", "chromium", "emulation", "mediapipe"}
ALL |= {"ssh", "gpu", "litert-gpu"}


def run_cli(*args: str, env: dict[str, str] | None = None) -> Done:
    # A real process: what doctor finds depends on the interpreter's own PYTHONPATH.
    return cnnx(*args, env=env, process=True, timeout=180)


def test_doctor_json_on_this_machine_reports_every_check_and_a_working_core() -> None:
    # Each check's limit is kept near the subprocess's own, so a loaded machine's slow
    # TensorFlow import is not mistaken for a broken one.
    result = run_cli("doctor", "--json", "--timeout", "170")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    report = json.loads(result.stdout)
    assert report["schema"] == "cnnx.doctor/1"
    assert report["core_ok"] is True
    by_name = {check["name"]: check for check in report["checks"]}
    assert set(by_name) == ALL
    for name in CORE:
        assert by_name[name]["status"] == "ok", by_name[name]
        assert by_name[name]["core"] is True
    assert "2.19" in by_name["tensorflow"]["detail"]
    assert by_name["tfjs-converter"]["detail"] == "tensorflowjs 4.22.0"
    assert by_name["mediapipe"]["status"] == "ok", by_name["mediapipe"]
    assert by_name["ssh"]["status"] == "ok", by_name["ssh"]  # make ssh installs OpenSSH
    assert by_name["ssh"]["detail"].startswith("OpenSSH_") and "sshd /" in by_name["ssh"]["detail"]
    # make setup's libvulkan1 and Chromium give LiteRT's GPU accelerator SwiftShader.
    gpu = by_name["litert-gpu"]
    assert gpu["status"] == "ok", gpu
    assert gpu["detail"].startswith("SwiftShader Device (Subzero) (google, swiftshader, Vulkan")
    for check in by_name.values():
        assert check["status"] in {"ok", "missing", "broken", "info"}
        if check["status"] in {"missing", "broken"}:
            assert check["fix"], check  # every problem comes with the command that fixes it


def test_broken_imports_are_named_and_only_a_core_one_fails_with_one_line_and_exit_8(
    tmp_path: Path,
) -> None:
    """One doctor run with three breakages: the TF.js converter and Node (extras) and
    LiteRT (core). Each is named with its fix; only LiteRT fails the run."""
    shadow = tmp_path / "shadow"
    # A tensorflowjs that fails the way the real one does when ydf >= 0.13 pulls protobuf 6.
    (shadow / "tensorflowjs").mkdir(parents=True)
    (shadow / "tensorflowjs" / "__init__.py").write_text(
        "raise ImportError(\"cannot import name 'runtime_version' from 'google.protobuf' "
        '(ydf/proto/dataset_pb2.py)")\n'
    )
    (shadow / "ai_edge_litert").mkdir()
    (shadow / "ai_edge_litert" / "__init__.py").write_text(
        "raise ImportError('libLiteRt.so: cannot open')\n"
    )
    env = {"PYTHONPATH": str(shadow), "CNNX_NODE": "/nope"}
    # Every check imports its package at once: on a loaded machine TensorFlow's import
    # alone passed doctor's default 60 s, a core check "hung" that this test is not about.
    result = run_cli("doctor", "--json", "--timeout", "170", env=env)
    assert result.returncode == 8, result.stderr
    # The report is still printed whole, then the one-line error names the core alone.
    report = json.loads(result.stdout)
    by_name = {check["name"]: check for check in report["checks"]}
    assert report["core_ok"] is False
    litert = by_name["litert"]
    assert litert["status"] == "broken" and litert["core"] is True
    # TF.js is an extra: a broken converter is named with its fix but fails no core check.
    converter = by_name["tfjs-converter"]
    assert converter["status"] == "broken" and converter["core"] is False
    assert "ydf" in converter["detail"] and "ydf<0.13" in converter["fix"]
    assert by_name["tensorflow"]["status"] == "ok"  # one broken import does not hide the rest
    # A missing optional runtime is reported, but does not fail the core.
    assert by_name["node"]["status"] == "broken" and by_name["node"]["core"] is False
    assert by_name["node"]["fix"]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cnnx: error: core checks failed: ")
    assert "litert (pip install -c requirements.lock -e .)" in lines[0]
    assert "tfjs-converter" not in lines[0] and "node" not in lines[0]


def test_diagnose_converter_error_tells_the_known_clashes_apart() -> None:
    detail, fix = doctor.diagnose_converter_error(
        "TypeError: Descriptors cannot be created directly.\n"
        "If this call came from a _pb2.py file, your generated code is out of date"
    )
    assert "protobuf" in detail and fix == doctor.CONVERTER_PINS
    detail, fix = doctor.diagnose_converter_error(
        "ModuleNotFoundError: No module named 'tensorflow_decision_forests'"
    )
    assert "ydf" in detail and fix == doctor.CONVERTER_PINS
    detail, fix = doctor.diagnose_converter_error(
        "ModuleNotFoundError: No module named 'tensorflowjs'"
    )
    assert fix == doctor.tfjs_fix() == "pip install -c requirements.lock -e '.[tfjs]'"


def test_a_hanging_binary_is_cut_off_by_the_time_limit(tmp_path: Path, monkeypatch) -> None:
    hang = tmp_path / "chromium"
    hang.write_text("#!/bin/sh\nsleep 30\n")
    hang.chmod(0o755)
    monkeypatch.setenv("CNNX_CHROMIUM", str(hang))
    start = time.perf_counter()
    check = doctor.check_chromium(timeout=1.0)
    assert time.perf_counter() - start < 20  # cut off, not the binary's 30 s
    assert check.status == "broken" and "timed out" in check.detail
    assert "apt-get install chromium" in check.fix


def test_ssh_missing_or_broken_says_how_to_install_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CNNX_SCP", str(tmp_path / "no-scp"))
    monkeypatch.setenv("CNNX_SSH", "")
    monkeypatch.setenv("PATH", str(tmp_path))  # no ssh on PATH either
    missing = doctor.check_ssh(timeout=5.0)
    assert missing.status == "missing" and missing.detail.startswith("no ssh on PATH")
    assert missing.fix == "apt-get install openssh-client (make ssh)"
    fake = tmp_path / "ssh"
    fake.write_text("#!/bin/sh\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv("CNNX_SSH", str(fake))
    broken = doctor.check_ssh(timeout=5.0)
    assert broken.status == "broken" and broken.detail == f"{fake} -V: exit 3"


def test_missing_npm_packages_and_caches_say_which_make_target_fixes_them(tmp_path: Path) -> None:
    npm = doctor.check_npm(tmp_path)
    assert npm.status == "missing" and npm.fix == "make npm"
    emulation = doctor.check_emulation(tmp_path)
    assert emulation.status == "missing" and emulation.fix == "make emulation"
    # A Python without MediaPipe: the Android metadata writers are missing, not broken.
    venv.create(tmp_path / "bare", with_pip=False)
    mediapipe = doctor.check_mediapipe(30.0, str(tmp_path / "bare" / "bin" / "python"))
    assert mediapipe.status == "missing" and "'.[android]'" in mediapipe.fix
    # A half-made emulation cache (the recorded qemu is gone) is broken, not ok.
    cache = tmp_path / ".cache" / "emulation"
    cache.mkdir(parents=True)
    (cache / "env.json").write_text(
        json.dumps({"qemu": "qemu/usr/bin/qemu-aarch64-static", "python": "p", "site": "site"})
    )
    (cache / "site").mkdir()
    (cache / "p").write_text("")
    broken = doctor.check_emulation(tmp_path)
    assert broken.status == "broken" and "qemu" in broken.detail


def test_bad_timeout_is_a_usage_error() -> None:
    result = run_cli("doctor", "--timeout", "0")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "cnnx: error: --timeout must be positive, got 0.0"
    ]
