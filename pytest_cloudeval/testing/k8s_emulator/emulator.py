"""``K8sEmulator``: the cluster and its HTTP server in a background thread, plus a kubeconfig for it."""

from __future__ import annotations

import json
import secrets
import threading
from pathlib import Path
from typing import Any

from pytest_cloudeval.testing.k8s_emulator.cluster import Cluster, NodeCapacity
from pytest_cloudeval.testing.k8s_emulator.faults import Faults
from pytest_cloudeval.testing.k8s_emulator.server import K8sHTTPServer


def kubeconfig_document(endpoint: str, namespace: str = "default", context: str = "emulator") -> dict[str, Any]:
    """A kubeconfig whose current context points at ``endpoint`` (plain HTTP, a dummy bearer token)."""
    return {"apiVersion": "v1", "kind": "Config", "current-context": context,
            "clusters": [{"name": context, "cluster": {"server": endpoint}}],
            "users": [{"name": context, "user": {"token": "emulator-token"}}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context,
                                                       "namespace": namespace}}],
            "preferences": {}}


class K8sEmulator:
    """Start with ``with K8sEmulator(kubeconfig=path) as emu:``; ``emu.endpoint`` is ``http://127.0.0.1:P``."""

    def __init__(self, port: int = 0, *, host: str = "127.0.0.1", kubeconfig: str | Path | None = None,
                 access_log: str | Path | None = None, state_label: str | None = None,
                 capacity: NodeCapacity | None = None, log: Any = None) -> None:
        self.state_label = state_label or f"k8s-{secrets.token_hex(4)}"
        self.faults = Faults()
        self._log = log or (lambda line: None)
        self.cluster = Cluster(self.state_label, capacity, self.faults, self._log)
        self.server = K8sHTTPServer((host, port), self.cluster, str(access_log) if access_log else None, self._log)
        self.kubeconfig = Path(kubeconfig) if kubeconfig else None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host.decode() if isinstance(host, bytes) else host}:{port}"

    def start(self) -> K8sEmulator:
        if self.kubeconfig is not None:
            self.kubeconfig.parent.mkdir(parents=True, exist_ok=True)
            # JSON is YAML: kubectl and the Python client read it without a YAML writer here.
            self.kubeconfig.write_text(json.dumps(kubeconfig_document(self.endpoint), indent=1))
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="k8s-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self, remove_containers: bool = True) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.cluster.stop(remove_containers)

    def __enter__(self) -> K8sEmulator:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- conveniences for tests ------------------------------------------------------------------
    def evict(self, name: str, namespace: str = "default") -> None:
        self.cluster.evict(namespace, name)

    def pods(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return self.cluster.list_pods(namespace)
