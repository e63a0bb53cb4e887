"""`cnnx doctor`: is this machine ready for each part of cnnx, and what fixes it if not.

Every check that imports a heavy library runs in its own subprocess with a time limit,
so a broken install (a protobuf clash that aborts at import, a hanging binary) is
reported as that check's failure instead of taking the doctor down with it. Checks run
in parallel; the slowest (the TF.js converter import) bounds the wall time.

The core is TensorFlow and LiteRT: without them nothing exports. Everything else (the
TF.js converter, Node, Chromium, the emulation cache, MediaPipe, a GPU, a Vulkan device
for LiteRT's GPU accelerator) only turns off
one format, one runtime or one bundle proof.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from toolkit.errors import shorten

OK = "ok"
MISSING = "missing"
BROKEN = "broken"
INFO = "info"  # optional and absent by nature (a GPU): neither good nor bad

PROJECT_ROOT = Path(__file__).resolve().parents[1]
INSTALL_FIX = "pip install -c requirements.lock -e ."
# The pins that make the TF.js converter importable beside TF 2.19 (see DESIGN.md).
CONVERTER_PINS = 'pip install "ydf<0.13" "protobuf==5.29.6" "tensorflow==2.19.*"'
PYTHON_VERSION = (3, 11)  # pyproject's floor; the lock and the tests use it


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | missing | broken | info
    detail: str
    fix: str = ""
    core: bool = False
    seconds: float = 0.0

    @property
    def good(self) -> bool:
        return self.status in (OK, INFO)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DoctorReport:
    checks: tuple[Check, ...]

    @property
    def core_ok(self) -> bool:
        return all(check.good for check in self.checks if check.core)

    @property
    def failed_core(self) -> list[Check]:
        return [check for check in self.checks if check.core and not check.good]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "cnnx.doctor/1",
            "core_ok": self.core_ok,
            "python": sys.executable,
            "project": str(PROJECT_ROOT),
            "checks": [check.to_dict() for check in self.checks],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


@dataclass(frozen=True)
class _Probe:
    """Outcome of a probe subprocess: its exit code (None on timeout) and last output."""

    code: int | None
    out: str
    err: str
    seconds: float


def _run(argv: list[str], timeout: float, env: dict[str, str] | None = None) -> _Probe:
    start = time.perf_counter()
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return _Probe(None, "", "", time.perf_counter() - start)
    except OSError as error:
        return _Probe(127, "", str(error), time.perf_counter() - start)
    seconds = time.perf_counter() - start
    return _Probe(done.returncode, done.stdout.strip(), done.stderr.strip(), seconds)


def _python_probe(code: str, timeout: float) -> _Probe:
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return _run([sys.executable, "-c", code], timeout, env)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return shorten(lines[-1], 240) if lines else ""


def check_python() -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info[:2] >= PYTHON_VERSION:
        return Check("python", OK, f"Python {version} at {sys.executable}", core=True)
    return Check(
        "python",
        BROKEN,
        f"Python {version}; cnnx needs 3.11 or newer",
        "make venv PYTHON=python3.11",
        core=True,
    )


def check_tensorflow(timeout: float) -> Check:
    probe = _python_probe(
        "import tensorflow as tf; print(tf.__version__); "
        "print(len(tf.config.list_physical_devices('GPU')))",
        timeout,
    )
    if probe.code is None:
        return Check(
            "tensorflow",
            BROKEN,
            f"import hung past {timeout:.0f}s",
            INSTALL_FIX,
            core=True,
            seconds=probe.seconds,
        )
    if probe.code != 0:
        return Check(
            "tensorflow",
            MISSING if "No module named" in probe.err else BROKEN,
            _last_line(probe.err) or f"import exited {probe.code}",
            INSTALL_FIX,
            core=True,
            seconds=probe.seconds,
        )
    version = probe.out.splitlines()[0]
    return Check("tensorflow", OK, f"TensorFlow {version}", core=True, seconds=probe.seconds)


def diagnose_converter_error(stderr: str) -> tuple[str, str]:
    """Name the known dependency clash behind a failed converter import, and its fix."""
    text = stderr.lower()
    if "ydf" in text or "decision_forests" in text or "decision forests" in text:
        return ("tensorflow-decision-forests / ydf clash: " + _last_line(stderr), CONVERTER_PINS)
    if "protobuf" in text or "descriptor" in text or "google.protobuf" in text:
        return ("protobuf version clash: " + _last_line(stderr), CONVERTER_PINS)
    if "no module named 'tensorflowjs'" in text:
        return ("tensorflowjs is not installed", tfjs_fix())
    return (_last_line(stderr) or "import failed", INSTALL_FIX)


def tfjs_fix() -> str:
    """The command that installs the TF.js converter beside this TensorFlow."""
    from exporters.tfjs import install_command

    command = install_command()
    # In a checkout with the TensorFlow of the lock, the lock's own set.
    if (
        command.startswith("pip install 'cnnx[tfjs]'")
        and (PROJECT_ROOT / "requirements.lock").exists()
    ):
        return "pip install -c requirements.lock -e '.[tfjs]'"
    return command


def check_converter(timeout: float) -> Check:
    """The TF.js converter, imported the way `cnnx export` imports it."""
    probe = _python_probe(
        "import sys; from importlib.metadata import version\n"
        "from exporters.tfjs import decision_forests_stood_in, load_converter\n"
        "try: load_converter()\n"
        "except Exception as error: sys.exit(f'{type(error).__name__}: {error}')\n"
        "print(version('tensorflowjs')); print(decision_forests_stood_in())",
        timeout,
    )
    if probe.code is None:
        return Check("tfjs-converter", BROKEN, f"import hung past {timeout:.0f}s", tfjs_fix())
    if probe.code != 0:
        detail, fix = diagnose_converter_error(probe.err + "\n" + probe.out)
        status = MISSING if "not installed" in detail else BROKEN
        return Check("tfjs-converter", status, detail, fix, seconds=probe.seconds)
    version, stood_in = ["", "", *probe.out.splitlines()][-2:]
    detail = f"tensorflowjs {version}"
    if stood_in == "True":
        detail += " (without TF Decision Forests: not importable beside this TensorFlow)"
    return Check("tfjs-converter", OK, detail, seconds=probe.seconds)


def check_litert(timeout: float) -> Check:
    probe = _python_probe(
        "from importlib.metadata import version; "
        "from ai_edge_litert.interpreter import Interpreter; print(version('ai-edge-litert'))",
        timeout,
    )
    if probe.code == 0:
        return Check("litert", OK, f"ai-edge-litert {probe.out}", core=True, seconds=probe.seconds)
    detail = f"import hung past {timeout:.0f}s" if probe.code is None else _last_line(probe.err)
    status = MISSING if "No module named" in probe.err else BROKEN
    return Check("litert", status, detail, INSTALL_FIX, core=True, seconds=probe.seconds)


def find_node() -> str | None:
    given = os.environ.get("CNNX_NODE")
    if given:
        return given
    return shutil.which("node")


def check_node(timeout: float) -> Check:
    node = find_node()
    fix = "apt-get install nodejs (or set CNNX_NODE to a node binary)"
    if node is None:
        return Check("node", MISSING, "no node on PATH and CNNX_NODE is unset", fix)
    probe = _run([node, "--version"], timeout)
    if probe.code != 0:
        why = "timed out" if probe.code is None else (_last_line(probe.err) or f"exit {probe.code}")
        return Check("node", BROKEN, f"{node} --version: {why}", fix, seconds=probe.seconds)
    major = probe.out.lstrip("v").split(".")[0]
    if major.isdigit() and int(major) < 18:
        return Check("node", BROKEN, f"{node} is {probe.out}; TF.js needs Node 18+", fix)
    return Check("node", OK, f"{node} {probe.out}", seconds=probe.seconds)


NPM_PACKAGES = (
    "@tensorflow/tfjs",
    "@tensorflow/tfjs-backend-wasm",
    "@tensorflow/tfjs-backend-webgpu",
    "@litertjs/core",
)


def check_npm(root: Path = PROJECT_ROOT) -> Check:
    modules = root / "web_demo" / "node_modules"
    found: list[str] = []
    for package in NPM_PACKAGES:
        manifest = modules / package / "package.json"
        try:
            version = json.loads(manifest.read_text(encoding="utf-8"))["version"]
        except (OSError, ValueError, KeyError, TypeError):
            return Check("npm-packages", MISSING, f"{package} not in {modules}", "make npm")
        found.append(f"{package}@{version}")
    return Check("npm-packages", OK, ", ".join(found))


CHROMIUM_PATHS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    given = os.environ.get("CNNX_CHROMIUM")
    if given:
        return given
    for name in CHROMIUM_PATHS:
        path = shutil.which(name)
        if path:
            return path
    return None


def check_chromium(timeout: float) -> Check:
    fix = "apt-get install chromium (make browser)"
    chromium = find_chromium()
    if chromium is None:
        return Check("chromium", MISSING, "no chromium on PATH and CNNX_CHROMIUM is unset", fix)
    probe = _run([chromium, "--version"], timeout)
    if probe.code != 0:
        why = "timed out" if probe.code is None else (_last_line(probe.err) or f"exit {probe.code}")
        return Check("chromium", BROKEN, f"{chromium} --version: {why}", fix, seconds=probe.seconds)
    try:
        import importlib.util

        has_playwright = importlib.util.find_spec("playwright") is not None
    except (ImportError, ValueError):
        has_playwright = False
    if not has_playwright:
        return Check(
            "chromium", BROKEN, f"{_last_line(probe.out)}; playwright missing", INSTALL_FIX
        )
    return Check("chromium", OK, f"{chromium}: {_last_line(probe.out)}", seconds=probe.seconds)


def check_emulation(root: Path = PROJECT_ROOT) -> Check:
    cache = root / ".cache" / "emulation"
    fix = "make emulation"
    if not cache.is_dir() or not any(cache.iterdir()):
        return Check("emulation", MISSING, f"no aarch64 emulation cache at {cache}", fix)
    # The set-up script records where it put qemu, the sysroot's Python and the wheels.
    try:
        layout = json.loads((cache / "env.json").read_text(encoding="utf-8"))
        wanted = {key: str(layout[key]) for key in ("qemu", "python", "site")}
    except (OSError, ValueError, KeyError, TypeError):
        qemu = next(iter(_shallow_find(cache, "qemu-aarch64*", depth=4)), None)
        if qemu is None:
            return Check("emulation", BROKEN, f"{cache} holds no qemu-aarch64 binary", fix)
        return Check("emulation", OK, f"{cache} (qemu at {qemu.relative_to(cache)})")
    absent = [f"{key} ({value})" for key, value in wanted.items() if not (cache / value).exists()]
    if absent:
        return Check("emulation", BROKEN, f"{cache} lacks " + ", ".join(absent), fix)
    return Check("emulation", OK, f"{cache} (qemu {wanted['qemu']}, CPU {layout.get('cpu', '?')})")


def _shallow_find(root: Path, pattern: str, depth: int) -> list[Path]:
    """Glob at most `depth` levels down (a sysroot is too big to walk whole)."""
    found: list[Path] = []
    for level in range(depth + 1):
        found.extend(root.glob("/".join(["*"] * level + [pattern])))
        if found:
            break
    return found


def check_mediapipe(timeout: float, python: str = sys.executable) -> Check:
    """MediaPipe's metadata writers and Tasks, which the Android bundle needs."""
    fix = "pip install -c requirements.lock -e '.[android]'"
    probe = _run(
        [
            python,
            "-c",
            # MediaPipe imports TensorFlow, if present, only for API docs and file reads;
            # blocked here, the probe costs no third TensorFlow import beside the others.
            "import sys; sys.modules['tensorflow'] = None; import mediapipe; "
            "from toolkit.packaging.android_metadata import require_writers; "
            "require_writers(); print(mediapipe.__version__)",
        ],
        timeout,
        {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    if probe.code == 0:
        return Check("mediapipe", OK, f"mediapipe {_last_line(probe.out)}", seconds=probe.seconds)
    if probe.code is None:
        return Check("mediapipe", BROKEN, "import timed out", fix, seconds=probe.seconds)
    status = MISSING if "No module named 'mediapipe'" in probe.err else BROKEN
    return Check("mediapipe", status, _last_line(probe.err), fix, seconds=probe.seconds)


SSHD_PATHS = ("/usr/sbin/sshd", "/usr/bin/sshd")


def check_ssh(timeout: float) -> Check:
    """The OpenSSH client that `cnnx bench --remote` runs (ssh and scp, or CNNX_SSH/_SCP)."""
    fix = "apt-get install openssh-client (make ssh)"
    clients = {
        name: os.environ.get(f"CNNX_{name.upper()}") or shutil.which(name)
        for name in ("ssh", "scp")
    }
    absent = [name for name, path in clients.items() if not path]
    if absent:
        return Check(
            "ssh",
            MISSING,
            f"no {' or '.join(absent)} on PATH (cnnx bench --remote needs them)",
            fix,
        )
    probe = _run([str(clients["ssh"]), "-V"], timeout)  # OpenSSH prints its version on stderr
    version = _last_line(probe.err or probe.out)
    if probe.code != 0 or not version:
        why = "timed out" if probe.code is None else (version or f"exit {probe.code}")
        return Check("ssh", BROKEN, f"{clients['ssh']} -V: {why}", fix, seconds=probe.seconds)
    sshd = next((p for p in SSHD_PATHS if os.access(p, os.X_OK)), None)
    server = f"sshd {sshd}" if sshd else "no sshd (only the remote tests need it: make ssh)"
    detail = f"{version}; scp {clients['scp']}; {server}"
    return Check("ssh", OK, detail, seconds=probe.seconds)


def check_gpu(timeout: float) -> Check:
    smi = shutil.which("nvidia-smi")
    if smi is None and not Path("/dev/nvidia0").exists():
        return Check("gpu", INFO, "no NVIDIA GPU (GPU rows of the bench are skipped)")
    if smi is None:
        return Check("gpu", INFO, "/dev/nvidia0 present but no nvidia-smi")
    probe = _run([smi, "--query-gpu=name,driver_version", "--format=csv,noheader"], timeout)
    if probe.code != 0:
        detail = "nvidia-smi failed: " + _last_line(probe.err)
        return Check("gpu", BROKEN, detail, "check the NVIDIA driver")
    return Check("gpu", OK, _last_line(probe.out) + " (TF needs pip install -e '.[gpu]')")


def check_litert_gpu(timeout: float) -> Check:
    """Which Vulkan device LiteRT's GPU accelerator selects (toolkit/runtimes/litert_gpu.py:
    a hardware GPU, SwiftShader's software one, or none)."""
    probe = _python_probe("from toolkit.runtimes.litert_gpu import main; main()", timeout)
    fix = "make setup (installs libvulkan1 and chromium, whose SwiftShader is a Vulkan device)"
    if probe.code is None:
        return Check("litert-gpu", BROKEN, f"probe hung past {timeout:.0f}s", fix)
    try:
        seen = json.loads(probe.out.splitlines()[-1])
    except (IndexError, ValueError):
        detail = _last_line(probe.err) or f"probe exited {probe.code}"
        return Check("litert-gpu", BROKEN, detail, fix, seconds=probe.seconds)
    drivers = "; ".join(f"{k}={v}" for k, v in seen["drivers"].items()) or "the system's"
    adapter = seen.get("adapter")
    if adapter is None:
        return Check("litert-gpu", MISSING, f"{seen['reason']} (drivers: {drivers})", fix)
    kind = "software, rows labelled @" + seen["device"] if adapter["software"] else "hardware"
    detail = (
        f"{adapter['name']} ({adapter['vendor']}, {adapter['architecture']}, "
        f"{adapter['backend']}, {kind}); drivers: {drivers}"
    )
    return Check("litert-gpu", OK, detail, seconds=probe.seconds)


def run_checks(timeout: float = 60.0, root: Path = PROJECT_ROOT) -> DoctorReport:
    """Run every check (in parallel, each bounded by `timeout` seconds)."""
    short = min(timeout, 15.0)
    jobs: list[Callable[[], Check]] = [
        check_python,
        lambda: check_tensorflow(timeout),
        lambda: check_converter(timeout),
        lambda: check_litert(timeout),
        lambda: check_node(short),
        lambda: check_npm(root),
        lambda: check_chromium(short),
        lambda: check_emulation(root),
        lambda: check_mediapipe(timeout),
        lambda: check_ssh(short),
        lambda: check_gpu(short),
        lambda: check_litert_gpu(timeout),
    ]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        checks = tuple(pool.map(lambda job: job(), jobs))
    return DoctorReport(checks)
