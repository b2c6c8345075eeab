"""The SSH transport: the run's key, one ssh_config file per slot alias, readiness and gateways.

xdist reaches each worker slot with an ``ssh=ALIAS//ssh_config=FILE`` spec; ``SshTransport.point``
writes the file (and rewrites it to move a lost slot to a live host). Keepalives make a hung host
visible in a few seconds instead of never (RECIPES §4).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import BackendError
from .transport import Transport

if TYPE_CHECKING:
    from .base import Host

KEEPALIVE_INTERVAL_S = 2
KEEPALIVE_COUNT = 3
CONNECT_TIMEOUT_S = 10
# No ``KexAlgorithms`` line in the configs: the client's default key exchange stays. On OpenSSH 9 that
# is the post-quantum hybrid ``sntrup761x25519-sha512``, which costs the controller ~150 ms of CPU per
# login (curve25519: ~15 ms; ~7 s over 50 VMs). The link carries the run's secrets, so it is not
# traded for speed.


@dataclass(frozen=True)
class SshKey:
    private: Path
    public: str
    """The ``ssh-ed25519 AAAA... comment`` line."""


def ensure_key(folder: Path, comment: str) -> SshKey:
    """An ed25519 key in ``folder`` (0600), made with ssh-keygen unless it is already there."""
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    private = folder / "id_ed25519"
    public = folder / "id_ed25519.pub"
    if not (private.exists() and public.exists()):
        if shutil.which("ssh-keygen") is None:
            raise BackendError("ssh-keygen was not found: install the OpenSSH client (Debian: openssh-client)")
        for path in (private, public):
            path.unlink(missing_ok=True)
        proc = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(private)],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise BackendError(f"ssh-keygen failed: {proc.stderr.strip()}")
    os.chmod(private, 0o600)
    return SshKey(private=private, public=public.read_text(encoding="utf-8").strip())


def ssh_config_text(alias: str, host: str, port: int, user: str, key: Path) -> str:
    return "\n".join([
        f"Host {alias}",
        f"    HostName {host}",
        f"    Port {port}",
        f"    User {user}",
        f"    IdentityFile {key}",
        "    IdentitiesOnly yes",
        # Fresh VMs have fresh host keys and addresses are reused: pinning them would only break runs.
        "    StrictHostKeyChecking no",
        "    UserKnownHostsFile /dev/null",
        "    BatchMode yes",
        "    LogLevel ERROR",
        f"    ConnectTimeout {CONNECT_TIMEOUT_S}",
        f"    ServerAliveInterval {KEEPALIVE_INTERVAL_S}",
        f"    ServerAliveCountMax {KEEPALIVE_COUNT}",
        "",
    ])


def write_ssh_config(path: Path, alias: str, host: str, port: int, user: str, key: Path) -> None:
    """Write (atomically: xdist may read it for a restart at any moment) one alias's ssh_config."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(ssh_config_text(alias, host, port, user, key), encoding="utf-8")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def port_answers(host: str, port: int, timeout: float = 2.0) -> bool:
    """Whether an SSH server greets on ``host:port`` (its banner starts with ``SSH-``)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def wait_for_sshd(host: str, port: int, deadline: float, stop: threading.Event | None = None,
                  poll_s: float = 0.2) -> None:
    """Poll until sshd greets. Raises: BackendError at the deadline (``time.monotonic()`` based)
    or when ``stop`` is set."""
    while not port_answers(host, port):
        if time.monotonic() > deadline:
            raise BackendError(f"no SSH server answered on {host}:{port} in time")
        if stop is not None and stop.wait(poll_s):
            raise BackendError("cancelled")
        elif stop is None:
            time.sleep(poll_s)


def make_gateway(group: Any, alias: str, config_file: Path, python: str, deadline: float,
                 stop: threading.Event | None = None) -> Any:
    """An execnet gateway over ssh, retried until ``deadline`` (logins may appear after sshd does).

    Health-checked with a round trip: execnet does not always fail at creation (RECIPES §3).
    """
    import execnet

    last: BaseException | None = None
    while True:
        gateway = None
        try:
            gateway = group.makegateway(f"ssh={alias}//ssh_config={config_file}//python={python}")
            channel = gateway.remote_exec("channel.send(1)")
            channel.receive(timeout=30)
            return gateway
        except (execnet.HostNotFound, OSError, EOFError, execnet.TimeoutError, execnet.RemoteError) as e:
            last = e
            if gateway is not None:
                gateway.exit()
        if time.monotonic() > deadline:
            raise BackendError(f"cannot open a Python gateway over ssh to {alias}: {last}")
        if stop is not None and stop.wait(0.5):
            raise BackendError("cancelled")
        elif stop is None:
            time.sleep(0.5)


def tx_spec(alias: str, ssh_config: Path, python: str, chdir: str) -> str:
    for value in (alias, str(ssh_config), python, chdir):
        if "//" in value:
            raise BackendError(f"{value!r} contains '//', which execnet specs cannot carry")
    return f"ssh={alias}//ssh_config={ssh_config}//python={python}//chdir={chdir}"


class SshTransport(Transport):
    """Hosts reached over SSH with the run's ed25519 key (pool runs keep the key in ``key_dir``)."""

    name = "ssh"
    hands_over_gateways = True

    def __init__(self, private: Path, key_dir: Path, label: str) -> None:
        super().__init__(private, key_dir, label)
        self.key: SshKey | None = None

    def prepare(self) -> None:
        self.key = ensure_key(self.key_dir, self.label)

    def _key(self) -> SshKey:
        if self.key is None:
            raise BackendError("the SSH transport was used before prepare()")
        return self.key

    def access(self, user: str) -> Mapping[str, str]:
        return {"user": user, "public_key": self._key().public}

    def config_path(self, alias: str) -> Path:
        return self.private / f"{alias}.ssh_config"

    def wait_ready(self, host: Host, deadline: float, cancel: threading.Event) -> None:
        wait_for_sshd(host.address, host.port, deadline, cancel)

    def gateway(self, group: Any, host: Host, python: str, deadline: float, cancel: threading.Event) -> Any:
        alias = f"cloudeval-vm-{host.name}"
        conf = self.config_path(alias)
        write_ssh_config(conf, alias, host.address, host.port, host.user, self._key().private)
        return make_gateway(group, alias, conf, python, deadline, cancel)

    def slot_spec(self, slot: str, python: str, chdir: str) -> str:
        return tx_spec(slot, self.config_path(slot), python, chdir)

    def point(self, slot: str, host: Host) -> None:
        write_ssh_config(self.config_path(slot), slot, host.address, host.port, host.user, self._key().private)

    def slot_of(self, spec: Any) -> str | None:
        return getattr(spec, "ssh", None)

    def answers(self, host: Host) -> bool:
        return port_answers(host.address, host.port, timeout=3.0)
