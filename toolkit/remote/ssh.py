"""Reaching a device over SSH with the user's own ssh and scp.

    ssh://[user@]host[:port][/dir][?python=PATH]

cnnx runs the OpenSSH client the user already has, so their ~/.ssh/config (aliases,
ProxyJump, identities), their agent and their known_hosts apply unchanged. It never
handles a password: BatchMode=yes makes ssh fail instead of prompting, and a host key
that is unknown or changed is refused, as ssh refuses it. CNNX_SSH_CONFIG (or
`cnnx bench --ssh-config FILE`) names another ssh config file; CNNX_SSH and CNNX_SCP
other client binaries.

`dir` is absolute (`ssh://pi@host/srv/cnnx`), or under the login's home with a leading
`~/` (`ssh://pi@host/~/cnnx`); the default is `~/cnnx-bench`. `python` names the
device's Python (default `python3`, as the login's PATH finds it), for example the venv
that the bundle's setup.sh makes.

Every failure is a RemoteError (exit 8) whose message says what went wrong in words:
unreachable host, refused connection, authentication, host key, timeout.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from toolkit.errors import PathError, RuntimeUnavailable, UsageError, shorten

DEFAULT_DIR = "cnnx-bench"  # under the login's home
DEFAULT_PYTHON = "python3"
CONNECT_TIMEOUT = 15  # seconds for TCP and the SSH handshake
CONFIG_VAR = "CNNX_SSH_CONFIG"
URL_FORM = "ssh://[user@]host[:port][/dir][?python=PATH]"
# Names ssh accepts that cannot be mistaken for one of its options.
_HOST = re.compile(r"^[A-Za-z0-9_.:][A-Za-z0-9_.:-]*$")  # names, IPv4, IPv6 (::1)
_USER = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.-]*$")


class RemoteError(RuntimeUnavailable):
    """The device could not be reached, refused us, or failed to run the bench (exit 8)."""


@dataclass(frozen=True)
class SshTarget:
    url: str
    host: str
    user: str | None = None
    port: int | None = None
    dir: str = DEFAULT_DIR  # absolute, or relative to the login's home
    python: str = DEFAULT_PYTHON

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    @property
    def name(self) -> str:
        """How rows and messages name the device: host, or host:port off the default."""
        return f"{self.host}:{self.port}" if self.port not in (None, 22) else self.host

    def to_dict(self) -> dict[str, object]:
        return {
            "url": self.url,
            "host": self.host,
            "user": self.user,
            "port": self.port,
            "dir": self.dir,
            "python": self.python,
        }


def parse_remote(url: str) -> SshTarget:
    """An ssh:// URL -> SshTarget; UsageError (exit 2) naming what is wrong."""
    text = url.strip()
    hint = f"write it as {URL_FORM}"
    if not text.startswith("ssh://"):
        raise UsageError(f"--remote {url!r} is not an ssh:// URL", hint)
    if any(ord(c) < 32 for c in text):
        raise UsageError(f"--remote {url!r} holds control characters", hint)
    parts = urlsplit(text)
    try:
        port = parts.port
    except ValueError:
        raise UsageError(f"--remote {url!r} has a bad port", hint) from None
    host = parts.hostname or ""
    if not host or not _HOST.match(host):
        raise UsageError(f"--remote {url!r} names no usable host", hint)
    user = parts.username
    if user is not None and not _USER.match(user):
        raise UsageError(f"--remote {url!r}: user {user!r} is not a login name", hint)
    if parts.password is not None:
        raise UsageError(
            f"--remote {url!r} carries a password",
            "cnnx never handles passwords: use a key (ssh-copy-id) and your ssh agent",
        )
    if parts.fragment:
        raise UsageError(f"--remote {url!r} has a #fragment", hint)
    path = parts.path
    if path in ("", "/"):
        folder = DEFAULT_DIR
    elif path.startswith("/~/"):
        folder = path[3:].rstrip("/") or DEFAULT_DIR
    else:
        folder = path.rstrip("/")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"python"})
    if unknown:
        raise UsageError(f"--remote {url!r}: unknown parameter(s) {unknown}", hint)
    python = query.get("python", [DEFAULT_PYTHON])[-1].strip()
    if not python:
        raise UsageError(f"--remote {url!r}: ?python= is empty", hint)
    return SshTarget(url=text, host=host, user=user, port=port, dir=folder, python=python)


def remote_path(folder: str) -> str:
    """A path for the remote shell: quoted, with a leading ~/ left to the shell."""
    if folder.startswith("~/"):
        return "~/" + shlex.quote(folder[2:])
    return shlex.quote(folder)


@dataclass(frozen=True)
class SshClient:
    """Runs commands on and copies folders to one target with the user's ssh and scp."""

    target: SshTarget
    config_file: Path | None = None
    connect_timeout: int = CONNECT_TIMEOUT

    @classmethod
    def for_target(cls, target: SshTarget, config_file: Path | None = None) -> SshClient:
        given = config_file or (
            Path(os.environ[CONFIG_VAR]) if os.environ.get(CONFIG_VAR) else None
        )
        if given is not None and not Path(given).is_file():
            raise PathError(
                f"ssh config file {given} does not exist",
                f"name an existing file with --ssh-config or {CONFIG_VAR}",
            )
        return cls(target, given)

    def _options(self) -> list[str]:
        options = [
            "-o", "BatchMode=yes",  # fail instead of asking for a password or a host key
            "-o", f"ConnectTimeout={self.connect_timeout}",
            "-o", "ServerAliveInterval=5",  # a device that vanishes mid-run is noticed
            "-o", "ServerAliveCountMax=3",
        ]  # fmt: skip
        if self.config_file is not None:
            options = ["-F", str(self.config_file), *options]
        return options

    def run(
        self, command: str, *, stdin: bytes = b"", timeout: float, doing: str
    ) -> subprocess.CompletedProcess[bytes]:
        """Run `command` (a remote shell line) there. ssh's own failures raise RemoteError;
        the command's exit status is returned for the caller to read."""
        port = ["-p", str(self.target.port)] if self.target.port else []
        argv = [_client("ssh"), *self._options(), *port, "--", self.target.destination, command]
        done = self._call(argv, stdin, timeout, doing)
        if done.returncode == 255:
            raise self.failure(done.stderr, doing)
        return done

    def copy(self, local: Path, remote_folder: str, *, timeout: float) -> None:
        """Copy the folder `local` to REMOTE_FOLDER (which must not exist) with scp -r."""
        port = ["-P", str(self.target.port)] if self.target.port else []
        host = f"[{self.target.host}]" if ":" in self.target.host else self.target.host
        user = f"{self.target.user}@" if self.target.user else ""
        where = f"{user}{host}:{remote_folder}"
        argv = [_client("scp"), "-q", "-r", *self._options(), *port, "--", str(local), where]
        done = self._call(argv, b"", timeout, f"copying {local.name}")
        if done.returncode != 0:
            raise self.failure(done.stderr, f"copying {local.name}")

    def _call(
        self, argv: list[str], stdin: bytes, timeout: float, doing: str
    ) -> subprocess.CompletedProcess[bytes]:
        try:
            return subprocess.run(
                argv, input=stdin, capture_output=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise RemoteError(
                f"{self.target.name}: timed out after {timeout:g} s {doing}",
                "check the device, or give it longer with --timeout",
            ) from None
        except OSError as error:
            raise RemoteError(
                f"cannot run {argv[0]}: {error.strerror or error}",
                "install the OpenSSH client (apt-get install openssh-client)",
            ) from None

    def failure(self, stderr: bytes, doing: str) -> RemoteError:
        """ssh's or scp's complaint, in words."""
        text = stderr.decode("utf-8", "replace")
        name, who = self.target.name, self.target.destination
        lower = text.lower()
        if "could not resolve hostname" in lower:
            return RemoteError(f"{name}: the host name does not resolve", "check the name")
        if "connection refused" in lower:
            return RemoteError(
                f"{name}: connection refused (no SSH server on port {self.target.port or 22})",
                "start sshd on the device, or give the port: ssh://host:PORT",
            )
        if "host key verification failed" in lower or "identification has changed" in lower:
            return RemoteError(
                f"{name}: host key verification failed (unknown or changed host key)",
                f"cnnx checks host keys as ssh does: run `ssh {who}` once and check the key",
            )
        if "permission denied" in lower or "too many authentication failures" in lower:
            return RemoteError(
                f"{name}: authentication failed for {who} (no key was accepted)",
                f"cnnx uses your ssh keys and agent, never passwords: check `ssh {who} true`",
            )
        if "timed out" in lower or "no route to host" in lower or "unreachable" in lower:
            return RemoteError(
                f"{name}: unreachable ({_last_line(text)})",
                "check that the device is on and on the network",
            )
        return RemoteError(f"{name}: ssh failed {doing}: {_last_line(text) or 'no message'}")


def _client(name: str) -> str:
    given = os.environ.get(f"CNNX_{name.upper()}")
    return given or shutil.which(name) or name


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return shorten(lines[-1]) if lines else ""
