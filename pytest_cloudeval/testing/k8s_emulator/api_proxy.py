"""How a pod reaches the emulator's API without reaching the host: a per-pod proxy over a unix socket.

Containers on Docker's bridge cannot reach the host's loopback, and the bridge's private addresses
are not to be used; giving pods the host's network would let them reach every loopback service
(the emulator's plain-HTTP admin listener included). Instead, like a real pod's sandbox container,
a small proxy container ("sidecar", labelled ``cloudeval.k8s.role=api-proxy``) is made first with the
pod's network (bridge, or none under a deny-all policy: then no sidecar and no API); it listens on
``127.0.0.1:443`` inside that network namespace and relays each connection to a unix socket
bind-mounted from the emulator, where ``UnixRelay`` connects it to the TLS listener. The pod's
container joins the sidecar's network namespace (``network_mode: container:ID``), so
``https://127.0.0.1:443`` inside the pod is the API, end-to-end TLS, and nothing else of the host is.

Limits: the sidecar runs ``python3`` from ``image`` (the runner image by default); the pod's
container has the sidecar's hostname (the pod name) only through the sidecar, its own is Docker's.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from pytest_cloudeval.testing.k8s_emulator import docker_pods

SOCKET_IN_POD = "/run/cloudeval-k8s-api.sock"
PORT_IN_POD = 443
ROLE_LABEL = "cloudeval.k8s.role"
READY_S = 20.0

FORWARDER = f"""
import socket, threading
def pump(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", {PORT_IN_POD}))
server.listen(128)
print("ready", flush=True)
while True:
    client, _ = server.accept()
    upstream = socket.socket(socket.AF_UNIX)
    try:
        upstream.connect("{SOCKET_IN_POD}")
    except OSError:
        client.close()
        continue
    threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
    threading.Thread(target=pump, args=(upstream, client), daemon=True).start()
"""


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    for sock in (source, sink):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class UnixRelay:
    """Accepts on a unix socket (mounted into the sidecars) and relays to ``127.0.0.1:port`` (the TLS API)."""

    def __init__(self, path: Path, port: int) -> None:
        self.path = path
        self.port = port
        self._server = socket.socket(socket.AF_UNIX)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        self._server.bind(str(path))
        path.chmod(0o666)  # the sidecar may run as any user; the folder above it is the emulator's
        self._server.listen(128)
        self._stopped = threading.Event()
        threading.Thread(target=self._accept, name="k8s-emu-api-relay", daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.port), timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            threading.Thread(target=_pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()

    def stop(self) -> None:
        self._stopped.set()
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._server.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def start_sidecar(name: str, labels: Mapping[str, str], network: bool, hostname: str, socket_path: Path,
                  image: str) -> str:
    """Create and start a pod's API proxy; returns its id once it listens (RuntimeError if it does not)."""
    client = docker_pods.api()
    host_config = client.create_host_config(
        network_mode="bridge" if network else "none", init=True, cap_drop=["ALL"], cap_add=["NET_BIND_SERVICE"],
        security_opt=["no-new-privileges"], mem_limit=64 * 1024 * 1024,
        binds={str(socket_path): {"bind": SOCKET_IN_POD, "mode": "rw"}})
    reply = client.create_container(image=image, name=name, labels={**labels, ROLE_LABEL: "api-proxy"},
                                    entrypoint=["python3", "-S", "-c", FORWARDER], user="0", hostname=hostname[:63],
                                    host_config=host_config)
    cid = str(reply["Id"])
    try:
        client.start(cid)
        deadline = time.monotonic() + READY_S
        while time.monotonic() < deadline:
            if b"ready" in client.logs(cid, stdout=True, stderr=False):
                return cid
            state = client.inspect_container(cid).get("State") or {}
            if not state.get("Running"):
                raise RuntimeError(f"the API proxy exited: {client.logs(cid).decode(errors='replace')[-500:]}")
            time.sleep(0.05)
        raise RuntimeError(f"the API proxy did not listen within {READY_S:.0f}s")
    except Exception:
        docker_pods.remove(cid, None)
        raise
