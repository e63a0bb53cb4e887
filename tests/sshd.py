"""A throwaway OpenSSH server on 127.0.0.1 for the remote tests, and an aarch64 "device".

Debian's sshd (make ssh) runs in the foreground on a free port with a host key, a user
key, authorized_keys, known_hosts and client config of its own, all in one folder: the
system's ssh configuration is neither read nor changed. The client config is what
`cnnx bench --ssh-config` (or CNNX_SSH_CONFIG) is given.

`emulated_python(folder)` writes a python3 for the remote login that is the emulated
Raspberry Pi's: Debian's arm64 Python 3.11 under qemu-aarch64 (Cortex-A72) with the Pi
bundle's aarch64 wheels, LiteRT included (make emulation).
"""

from __future__ import annotations

import getpass
import os
import shlex
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD_PATHS = ("/usr/sbin/sshd", "/usr/bin/sshd")
SETUP_HINT = "install it with: make ssh (Debian's openssh-server and openssh-client)"


@dataclass
class SshServer:
    root: Path
    port: int
    user: str
    process: subprocess.Popen[bytes]
    client_config: Path
    client_key: Path

    def url(self, folder: Path | str, python: str | None = None) -> str:
        query = f"?python={python}" if python else ""
        return f"ssh://{self.user}@127.0.0.1:{self.port}{folder}{query}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return (self.root / "sshd.log").read_text(errors="replace")


def find_sshd() -> str:
    for path in SSHD_PATHS:
        if os.access(path, os.X_OK):
            return path
    found = shutil.which("sshd")
    if found is None:
        raise RuntimeError(f"no sshd ({', '.join(SSHD_PATHS)}): {SETUP_HINT}")
    return found


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "cnnx-test", "-f", str(path)],
        check=True,
        capture_output=True,
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
            conn.settimeout(5)
            return conn.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def start_sshd(root: Path) -> SshServer:
    """sshd on a free port of 127.0.0.1, accepting only a key made here, for this user."""
    sshd = find_sshd()
    root.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        # As root sshd wants its privilege-separation folder (Debian's service makes it).
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    host_key, client_key = root / "host_key", root / "client_key"
    _keygen(host_key)
    _keygen(client_key)
    shutil.copyfile(root / "client_key.pub", root / "authorized_keys")
    user = getpass.getuser()
    for _attempt in range(5):  # another test run may take the port between probe and bind
        port = _free_port()
        (root / "sshd_config").write_text(
            "\n".join(
                [
                    f"ListenAddress 127.0.0.1:{port}",
                    f"HostKey {host_key}",
                    f"AuthorizedKeysFile {root / 'authorized_keys'}",
                    f"AllowUsers {user}",
                    "PidFile none",
                    "UsePAM no",
                    "StrictModes no",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "Subsystem sftp internal-sftp",
                    "LogLevel VERBOSE",
                    "",
                ]
            )
        )
        log = open(root / "sshd.log", "ab")  # noqa: SIM115
        process = subprocess.Popen(
            [sshd, "-D", "-e", "-f", str(root / "sshd_config")],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None and not _answers(port):
            time.sleep(0.1)
        if process.poll() is None and _answers(port):
            break
        process.kill()
        process.wait()
    else:
        raise RuntimeError(f"sshd did not start: {(root / 'sshd.log').read_text()[-2000:]}")
    host_public = (root / "host_key.pub").read_text().split()[:2]
    (root / "known_hosts").write_text(f"[127.0.0.1]:{port} {' '.join(host_public)}\n")
    config = root / "ssh_config"
    config.write_text(
        "\n".join(
            [
                "Host *",
                f"  IdentityFile {client_key}",
                "  IdentitiesOnly yes",
                "  IdentityAgent none",
                f"  UserKnownHostsFile {root / 'known_hosts'}",
                "  GlobalKnownHostsFile /dev/null",
                "  StrictHostKeyChecking yes",
                "  LogLevel ERROR",
                "",
            ]
        )
    )
    client_key.chmod(0o600)
    return SshServer(root, port, user, process, config, client_key)


def emulated_python(folder: Path) -> Path:
    """A python3 for the remote login: the emulated Pi 4's (qemu-aarch64, Cortex-A72)."""
    from toolkit.autoquant.emulation import find_emulator

    emulator = find_emulator()  # in CI a missing cache is a failure: make emulation
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "python3"
    variables = {
        key: value
        for key, value in emulator.environment().items()
        if key not in ("PATH", "HOME", "LANG")
    }
    assignments = " ".join(f"{k}={shlex.quote(v)}" for k, v in variables.items())
    command = " ".join(shlex.quote(part) for part in emulator.argv([]))
    script.write_text(f'#!/bin/sh\nexec env {assignments} {command} "$@"\n')
    script.chmod(0o755)
    return script
