"""`cnnx bench --remote`: an emulated Raspberry Pi reached over a real SSH server.

Debian's sshd runs on 127.0.0.1 on a free port with its own keys and known_hosts
(tests/sshd.py); the login's python3 is the emulated Pi 4's (aarch64 Python 3.11 under
qemu, Cortex-A72, with the bundle's aarch64 LiteRT wheels). So the remote rows are
aarch64 LiteRT, reached over SSH, checked against the local SavedModel under the same
tolerances as the local rows. Select with `pytest -k remote`.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli import cnnx
from tests.sshd import SshServer, emulated_python, start_sshd

pytestmark = [pytest.mark.slow, pytest.mark.emulation]
QUICK = ("--runs", "5", "--warmup", "1", "--batch", "4", "--threads", "1")
# One model: the transport, the merge and the checks are the same for each, and the Pi's
# answers for every bundle model against x86 LiteRT are tests/test_rpi.py's; float32's
# tolerance (agreement 1.0, its own [float32] section) is the one that could fail here.
MODELS = "tflite_float32"
TOLERANCES = "min_agreement = 0.85\nmax_accuracy_drop = 0.05\n[float32]\nmin_agreement = 1.0\n"


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@pytest.fixture
def copy(artifacts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    target = tmp_path / "artifacts"
    shutil.copytree(artifacts, target, ignore=shutil.ignore_patterns("report"))
    (tmp_path / "tiny.toml").write_text(TOLERANCES)
    monkeypatch.chdir(tmp_path)  # no ./bundles/rpi here: the bench builds a temporary one
    return target


def _bench(*args: str) -> tuple[int, str]:
    done = cnnx("bench", *args)
    return done.returncode, done.output


def test_an_emulated_pi_over_ssh_is_merged_into_the_report(
    sshd: SshServer, copy: Path, tmp_path: Path
) -> None:
    python = emulated_python(tmp_path / "pi-bin")
    device = sshd.url(tmp_path / "device", str(python))
    down = f"ssh://{sshd.user}@127.0.0.1:1/tmp/cnnx"  # nothing listens on port 1
    code, output = _bench(str(copy), "-r", "litert", "--artifacts", MODELS,
                          "--tolerances", str(tmp_path / "tiny.toml"), *QUICK,
                          "--remote", device, "--remote", down,
                          "--ssh-config", str(sshd.client_config))  # fmt: skip
    # The unreachable device fails its rows (exit 8, once the report is written).
    assert code == 8, output
    assert "127.0.0.1:1: connection refused" in output
    report = json.loads((copy / "report" / "report.json").read_text())
    name = f"127.0.0.1:{sshd.port}"
    rows = {(r["artifact"], r["label"]): r for r in report["rows"]}
    assert set(rows) == {
        (artifact, label)
        for artifact in MODELS.split(",")
        for label in ("litert x1", f"litert@{name} x1", "litert@127.0.0.1:1 x1")
    }
    assert report["config"]["remotes"] == [device, down]
    for artifact in MODELS.split(","):
        local, remote = rows[(artifact, "litert x1")], rows[(artifact, f"litert@{name} x1")]
        assert local["status"] == "ok" and remote["status"] == "ok", remote["reason"]
        assert remote["runtime"] == f"litert@{name}"
        details = remote["runtime_info"]["details"]
        assert details["machine"] == "aarch64" and details["python"].startswith("3.11")
        assert details["litert"] and details["numpy"]
        # Same images, same tolerances: the device's answers pass the local checks.
        assert remote["checks"] and all(c["passed"] for c in remote["checks"]), remote["checks"]
        assert remote["metrics"]["images"] == local["metrics"]["images"] == report["data"]["images"]
        assert remote["latency"]["runs"] == 5 and remote["latency"]["min"] > 0
        assert remote["latency"]["p50"] <= remote["latency"]["p99"] and remote["load_ms"] > 0
        # The graph's work over the device's p50; no share of a peak measured here.
        expected = report["work"]["flops"] / (remote["latency"]["p50"] * 1e6)
        assert remote["gflops"] == pytest.approx(expected, rel=1e-2)
        assert remote["peak_percent"] is None
        on_device = remote["runtime_info"]["remote"]
        assert on_device["test_images_accuracy"] == on_device["test_images_recorded_accuracy"]
        failed = rows[(artifact, "litert@127.0.0.1:1 x1")]
        assert failed["status"] == "failed" and failed["metrics"] is None
        assert failed["reason"].startswith("127.0.0.1:1: connection refused")
    float32 = rows[("tflite_float32", f"litert@{name} x1")]["metrics"]
    assert float32["agreement"] == 1.0 and float32["max_abs"] < 1e-4
    assert sorted(report["status"]["failed"]) == sorted(
        f"{artifact}|litert@127.0.0.1:1 x1" for artifact in MODELS.split(",")
    )
    markdown = (copy / "report" / "report.md").read_text()
    assert f"| tflite_float32 | litert@{name} x1 | ok |" in markdown
    assert "| tflite_float32 | litert x1 | ok |" in markdown
    assert f"- device {name}: " in markdown and "aarch64" in markdown
    assert "latency.png" in report["plots"]
    # What went to the device: the bundle and the images, in content-named folders.
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "device").iterdir()) == [
        "evalset",
        "rpi",
    ]


def test_remote_usage_errors_fail_before_any_work(
    sshd: SshServer, copy: Path, tmp_path: Path
) -> None:
    cases = [
        (("--remote", "pi@host"), 2, "is not an ssh:// URL"),
        (("--remote", "ssh://pi:secret@host"), 2, "carries a password"),
        (("--remote", "ssh://host", "--artifacts", "savedmodel"), 2, "none is selected"),
        (("--remote", "ssh://host", "--ssh-config", str(tmp_path / "nope")), 3, "does not exist"),
    ]
    for args, expected, message in cases:
        code, output = _bench(str(copy), "-r", "litert", *args)
        assert code == expected, output
        assert message in output and "Traceback" not in output
        assert not (copy / "report").exists()


def test_bench_help_documents_remote() -> None:
    result = cnnx("bench", "--help", env={"COLUMNS": "200"})
    assert result.returncode == 0, result.output
    assert "ssh://user@host:port/dir?python=PATH" in result.output
    assert (
        "--ssh-config" in result.output and "[default: yours, or CNNX_SSH_CONFIG]" in result.output
    )
