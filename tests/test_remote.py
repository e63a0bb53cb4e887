"""The SSH transport of `cnnx bench --remote`, against a real OpenSSH server on 127.0.0.1.

The server (tests/sshd.py) has its own host key, user key and known_hosts; the
"device" is this machine reached over SSH. Here its Python is this test's own (x86,
with LiteRT), which keeps the transport tests fast; the emulated aarch64 Pi reached
over SSH is in test_remote_bench.py. Select both with `pytest -k remote`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import venv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.bundle_artifacts import LABELS, images, tiny_artifacts
from tests.sshd import SshServer, start_sshd
from toolkit.data.inputspec import InputSpec
from toolkit.errors import DataError, UsageError
from toolkit.manifest import Manifest, load_manifest
from toolkit.measure.evalset import EvalSet
from toolkit.remote.device import RemoteResult, folder_hashes, run_on_device
from toolkit.remote.inputs import eval_pixels, matching_bundle, pi_bundle, write_eval_images
from toolkit.remote.ssh import SshClient, parse_remote

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@dataclass(frozen=True)
class Sent:
    """A Pi bundle of the tiny models and 12 evaluation images as PNG files."""

    bundle: Path
    eval_dir: Path
    evalset: EvalSet
    spec: InputSpec
    manifest: Manifest


@pytest.fixture(scope="module")
def sent(tmp_path_factory: pytest.TempPathFactory) -> Sent:
    manifest = load_manifest(tiny_artifacts(tmp_path_factory))
    with pi_bundle(manifest, tmp_path_factory.mktemp("no-bundles")) as (bundle, reused):
        assert not reused  # no ./bundles/rpi of this manifest: built in a temporary folder
        kept = tmp_path_factory.mktemp("bundle") / "rpi"
        shutil.copytree(bundle, kept)
    x, y = images(12, seed=5)
    evalset = EvalSet(x.astype(np.float32), y.astype(np.int64), list(LABELS), "12 images")
    folder = write_eval_images(evalset, manifest.input, tmp_path_factory.mktemp("eval") / "set")
    return Sent(kept, folder, evalset, manifest.input, manifest)


def on_device(
    server: SshServer,
    sent: Sent,
    folder: Path,
    python: str = sys.executable,
    *,
    models: tuple[str, ...] = ("int8",),
    threads: tuple[int, ...] = (1,),
    runs: int = 1,
    timeout: float | None = None,
    config: Path | None = None,
    url: str | None = None,
) -> RemoteResult:
    target = parse_remote(url or server.url(folder, python))
    client = SshClient.for_target(target, config or server.client_config)
    return run_on_device(
        target,
        sent.bundle,
        sent.eval_dir,
        models=models,
        threads=threads,
        runs=runs,
        timeout=timeout,
        client=client,
    )


def test_the_bundle_is_copied_checked_run_and_then_reused(
    sshd: SshServer, sent: Sent, tmp_path: Path
) -> None:
    first = on_device(sshd, sent, tmp_path / "device", threads=(1, 2), runs=5)
    assert first.reason == "", first.reason
    assert first.device is not None and first.device.machine == "x86_64"
    assert first.device.litert == "2.3.0" and first.device.python.startswith("3.11")
    assert len(first.copied) == 2  # the bundle and the evaluation images
    remote_bundle = Path(first.remote_dirs["bundle"])
    assert (remote_bundle / "classify.py").read_bytes() == (
        sent.bundle / "classify.py"
    ).read_bytes()
    assert sorted(p.name for p in remote_bundle.parent.iterdir()) == sorted(first.copied)
    assert [(r.model, r.threads, r.status) for r in first.runs] == [
        ("int8", 1, "ok"),
        ("int8", 2, "ok"),
    ]
    run = first.runs[0]
    assert run.scores is not None and run.scores.shape == (len(sent.evalset), len(LABELS))
    assert run.latency["runs"] == 5 and run.latency["p50_ms"] > 0
    record = json.loads((sent.bundle / "bundle.json").read_text())
    assert run.test_accuracy == record["models"]["int8"]["accuracy_test_images"]
    # The device's answers are LiteRT's on the same pixels, read back from the PNG files.
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(sent.bundle / "models" / "model_int8.tflite"))
    interpreter.allocate_tensors()
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    scale, zero = target["quantization"]
    for pixels, scores in zip(eval_pixels(sent.evalset, sent.spec), run.scores, strict=True):
        interpreter.set_tensor(source["index"], pixels[None].astype(source["dtype"]))
        interpreter.invoke()
        expected = (interpreter.get_tensor(target["index"])[0].astype(np.float32) - zero) * scale
        np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-6)

    again = on_device(sshd, sent, tmp_path / "device", models=())
    assert again.reason == "" and again.copied == ()  # the same sha256s are there: nothing sent


def test_a_bundle_from_cnnx_package_is_reused_only_while_it_matches(
    sent: Sent, tmp_path: Path
) -> None:
    shutil.copytree(sent.bundle, tmp_path / "bundles" / "rpi")
    with pi_bundle(sent.manifest, tmp_path / "bundles") as (bundle, reused):
        assert reused and bundle == tmp_path / "bundles" / "rpi"
    model = bundle / "models" / "model_int8.tflite"
    original = model.read_bytes()
    model.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))  # edited after packaging
    assert not matching_bundle(bundle, sent.manifest)
    model.write_bytes(original)
    assert matching_bundle(bundle, sent.manifest)
    (bundle / "classify.py").write_text("print('an older classify.py')\n")
    assert not matching_bundle(bundle, sent.manifest)


def test_a_temporary_bundle_is_the_same_bytes_each_time(sent: Sent, tmp_path: Path) -> None:
    """So a device that has it is sent nothing by the next `cnnx bench --remote`."""
    with pi_bundle(sent.manifest, tmp_path / "no-bundles") as (bundle, reused):
        assert not reused
        assert folder_hashes(bundle) == folder_hashes(sent.bundle)


def test_a_corrupted_copy_is_caught_by_its_sha256_and_deleted(
    sshd: SshServer, sent: Sent, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An scp that changes a byte of the int8 model on its way (a bad disk, a bad link)."""
    scp = tmp_path / "bad-scp"
    scp.write_text(
        "#!/bin/sh\n"
        f'{shutil.which("scp")} "$@" || exit $?\n'
        'for last; do :; done\nfolder="${last#*:}"\n'
        'model="$folder/models/model_int8.tflite"\n'
        '[ -f "$model" ] && printf x | dd of="$model" bs=1 seek=100 conv=notrunc 2>/dev/null\n'
        "exit 0\n"
    )
    scp.chmod(0o755)
    monkeypatch.setenv("CNNX_SCP", str(scp))
    result = on_device(sshd, sent, tmp_path / "device")
    assert result.runs == ()
    assert result.reason.startswith(f"127.0.0.1:{sshd.port}: the copy of rpi does not match")
    assert "models/model_int8.tflite" in result.reason
    assert list((tmp_path / "device").iterdir()) == []  # the bad copy is gone


def test_each_failure_is_one_reason(sshd: SshServer, sent: Sent, tmp_path: Path) -> None:
    where = f"127.0.0.1:{sshd.port}"

    venv.create(tmp_path / "bare", with_pip=False)  # a Python without LiteRT, numpy, Pillow
    bare = on_device(sshd, sent, tmp_path / "d1", str(tmp_path / "bare" / "bin" / "python"))
    assert bare.reason.startswith(f"{where}: ai-edge-litert, numpy, Pillow not installed for")
    assert "setup.sh" in bare.reason and bare.runs == ()

    nowhere = on_device(sshd, sent, tmp_path / "d2", "/no/such/python3")
    assert nowhere.reason.startswith(f"{where}: no Python at '/no/such/python3' on the device")

    slow = tmp_path / "slow-python"
    slow.write_text("#!/bin/sh\nsleep 60\n")
    slow.chmod(0o755)
    late = on_device(sshd, sent, tmp_path / "d3", str(slow), timeout=3)
    assert late.reason.startswith(f"{where}: timed out after 3 s probing the device")

    # Host keys are checked as ssh checks them: known_hosts holding another key fails.
    stranger = tmp_path / "known_hosts"
    key = (sshd.root / "client_key.pub").read_text().split()[:2]
    stranger.write_text(f"[127.0.0.1]:{sshd.port} {' '.join(key)}\n")
    config = tmp_path / "config"
    text = sshd.client_config.read_text()
    config.write_text(text.replace(str(sshd.root / "known_hosts"), str(stranger)))
    changed = on_device(sshd, sent, tmp_path / "d4", config=config)
    assert changed.reason.startswith(f"{where}: host key verification failed")

    # A key the server does not know: refused, and no password is ever asked for.
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    config.write_text(text.replace(str(sshd.client_key), str(other)))
    refused = on_device(sshd, sent, tmp_path / "d5", config=config)
    assert refused.reason.startswith(f"{where}: authentication failed for {sshd.user}@127.0.0.1")

    down = on_device(sshd, sent, tmp_path / "d6", url=f"ssh://{sshd.user}@127.0.0.1:1/tmp/x")
    assert down.reason.startswith("127.0.0.1:1: connection refused")

    unknown = on_device(sshd, sent, tmp_path / "d7", url="ssh://pi@no-such-host.invalid/x")
    assert unknown.reason.startswith("no-such-host.invalid: the host name does not resolve")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ssh://pi@raspberrypi.local", ("pi", "raspberrypi.local", None, "cnnx-bench", "python3")),
        ("ssh://pi@10.0.0.7:2222/srv/cnnx/", ("pi", "10.0.0.7", 2222, "/srv/cnnx", "python3")),
        (
            "ssh://board/~/bench?python=~/venv/bin/python",
            (None, "board", None, "bench", "~/venv/bin/python"),
        ),
        ("ssh://u@[::1]:22", ("u", "::1", 22, "cnnx-bench", "python3")),
    ],
)
def test_remote_urls(url: str, expected: tuple[object, ...]) -> None:
    target = parse_remote(url)
    assert (target.user, target.host, target.port, target.dir, target.python) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("pi@host", "is not an ssh:// URL"),
        ("ssh://-oProxyCommand=x/", "names no usable host"),
        ("ssh://-x@host", "is not a login name"),
        ("ssh://pi:secret@host", "carries a password"),
        ("ssh://host:99999", "has a bad port"),
        ("ssh://host?pyton=x", "unknown parameter"),
        ("ssh://host/a\nb", "control characters"),
    ],
)
def test_bad_remote_urls(url: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_remote(url)


@pytest.mark.parametrize(
    "spec",
    [
        InputSpec(16, 16, 3),
        InputSpec(16, 16, 3, scale=1 / 127.5, offset=-1.0),
        InputSpec(16, 16, 3, color="BGR", mean=(103.939, 116.779, 123.68), std=(1.0, 1.0, 1.0)),
        InputSpec(16, 16, 1, color="GRAY", scale=1 / 255),
    ],
)
def test_evaluation_images_go_back_to_the_pixels_they_came_from(spec: InputSpec) -> None:
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, size=(4, *spec.shape), dtype=np.uint8)
    evalset = EvalSet(spec.apply(pixels), None, list(LABELS), "4 images")
    np.testing.assert_array_equal(eval_pixels(evalset, spec), pixels)
    blurred = EvalSet(evalset.images + np.float32(0.37) * np.float32(spec.scale), None, [], "x")
    with pytest.raises(DataError, match="not 8-bit pictures"):
        eval_pixels(blurred, spec)
