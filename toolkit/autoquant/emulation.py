"""Run a Python program on an emulated Raspberry Pi 4: aarch64 under qemu user mode.

`make emulation` (scripts/setup_emulation.sh) builds the cache: qemu-aarch64-static, an
arm64 Debian bookworm Python 3.11 sysroot (Raspberry Pi OS's userspace) with a Pi 4
/proc/cpuinfo, and the Pi bundle's pinned aarch64 wheels. This module finds it and runs
commands in it. The CPU is pinned to a Cortex-A72 (a Pi 4's): qemu 7.2's default CPU
gives wrong int8 results.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from toolkit.errors import RuntimeUnavailable

CPU = "cortex-a72"
ENV_VAR = "CNNX_EMULATION_DIR"
SETUP_HINT = "build it with: make emulation (or bash scripts/setup_emulation.sh DIR)"
_SOURCE_ROOT = Path(__file__).resolve().parents[2]  # the repository: toolkit/autoquant/..


@dataclass(frozen=True)
class Emulator:
    root: Path
    qemu: Path
    sysroot: Path
    python: Path
    site: Path
    cpu: str = CPU

    def argv(self, args: Sequence[str]) -> list[str]:
        """The host command that runs `python3 ARGS` on the emulated Pi."""
        return [str(self.qemu), "-L", str(self.sysroot), str(self.python), *args]

    def environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        # Only what the guest needs: the host's PYTHONPATH or venv must not leak in.
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": os.environ.get("HOME", "/tmp"),
            "QEMU_CPU": self.cpu,
            "PYTHONPATH": str(self.site),
            "PYTHONNOUSERSITE": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        env.update(extra or {})
        return env

    def run_python(
        self,
        args: Sequence[str],
        *,
        cwd: Path | None = None,
        timeout: float = 300.0,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run python3 ARGS under emulation; RuntimeUnavailable if it cannot start or hangs.

        A non-zero exit of the program itself is returned, not raised: the caller knows
        what that program's exit codes mean.
        """
        try:
            return subprocess.run(
                self.argv(args),
                cwd=cwd,
                env=self.environment(env),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise RuntimeUnavailable(
                f"the emulated Pi did not finish python3 {' '.join(args)} in {timeout:.0f} s"
            ) from None
        except OSError as error:
            raise RuntimeUnavailable(
                f"cannot start {self.qemu}: {error.strerror or error}", SETUP_HINT
            ) from None


def candidate_dirs() -> list[Path]:
    """Where the cache may be: $CNNX_EMULATION_DIR, ./.cache/emulation, the checkout's."""
    found = []
    if os.environ.get(ENV_VAR):
        found.append(Path(os.environ[ENV_VAR]))
    found.append(Path.cwd() / ".cache" / "emulation")
    found.append(_SOURCE_ROOT / ".cache" / "emulation")
    return found


def find_emulator(cache: Path | None = None) -> Emulator:
    """The emulation cache at `cache` (or the first of candidate_dirs() that has one)."""
    places = [Path(cache)] if cache is not None else candidate_dirs()
    for place in places:
        layout_file = place / "env.json"
        if not layout_file.is_file():
            continue
        try:
            layout = json.loads(layout_file.read_text(encoding="utf-8"))
            parts = {key: place / str(layout[key]) for key in ("qemu", "sysroot", "python", "site")}
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise RuntimeUnavailable(f"{layout_file} is unreadable: {error}", SETUP_HINT) from None
        missing = [f"{key} ({path})" for key, path in parts.items() if not path.exists()]
        if missing:
            raise RuntimeUnavailable(
                f"the emulation cache {place} lacks " + ", ".join(missing), SETUP_HINT
            )
        return Emulator(root=place, cpu=str(layout.get("cpu", CPU)), **parts)
    raise RuntimeUnavailable(
        "no aarch64 emulation cache (looked in " + ", ".join(str(p) for p in places) + ")",
        SETUP_HINT,
    )
