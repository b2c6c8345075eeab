"""``K8sEmulator``: the cluster and its HTTP server in a background thread, plus a kubeconfig for it."""

from __future__ import annotations

import json
import secrets
import threading
from pathlib import Path
from typing import Any

from pytest_cloudeval.testing.k8s_emulator.api_proxy import UnixRelay
from pytest_cloudeval.testing.k8s_emulator.cluster import Cluster, InClusterAccess, NodeCapacity
from pytest_cloudeval.testing.k8s_emulator.faults import Faults
from pytest_cloudeval.testing.k8s_emulator.server import K8sHTTPServer
from pytest_cloudeval.testing.k8s_emulator.tls import make_serving_cert


def kubeconfig_document(endpoint: str, namespace: str = "default", context: str = "emulator",
                        token: str = "emulator-token") -> dict[str, Any]:
    """A kubeconfig whose current context points at ``endpoint`` (plain HTTP, the admin's bearer token)."""
    return {"apiVersion": "v1", "kind": "Config", "current-context": context,
            "clusters": [{"name": context, "cluster": {"server": endpoint}}],
            "users": [{"name": context, "user": {"token": token}}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context,
                                                       "namespace": namespace}}],
            "preferences": {}}


class K8sEmulator:
    """Start with ``with K8sEmulator(kubeconfig=path) as emu:``; ``emu.endpoint`` is ``http://127.0.0.1:P``."""

    def __init__(self, port: int = 0, *, host: str = "127.0.0.1", kubeconfig: str | Path | None = None,
                 access_log: str | Path | None = None, state_label: str | None = None,
                 capacity: NodeCapacity | None = None, log: Any = None, admin_token: str | None = None,
                 tls_port: int = 0, proxy_image: str = "cloudeval/runner:bookworm") -> None:
        self.state_label = state_label or f"k8s-{secrets.token_hex(4)}"
        self.admin_token = admin_token or f"emu-admin.{secrets.token_urlsafe(24)}"
        """The kubeconfig's bearer token (the admin); random per emulator, as pods may share the host's network."""
        self.faults = Faults()
        self._log = log or (lambda line: None)
        self.cluster = Cluster(self.state_label, capacity, self.faults, self._log, admin_token=self.admin_token)
        self.server = K8sHTTPServer((host, port), self.cluster, str(access_log) if access_log else None, self._log)
        self.tls = make_serving_cert((host,))
        self.tls_server = K8sHTTPServer((host, tls_port), self.cluster, str(access_log) if access_log else None,
                                        self._log, tls=self.tls.server_context())
        self.relay = UnixRelay(self.tls.ca_path.parent / "api.sock", self.tls_server.server_address[1])
        self.cluster.in_cluster = InClusterAccess(self.tls.ca_pem, self.relay.path, proxy_image)
        self.kubeconfig = Path(kubeconfig) if kubeconfig else None
        self._thread: threading.Thread | None = None

    @property
    def tls_endpoint(self) -> str:
        """``https://127.0.0.1:P``: what pods reach (``ca_path`` verifies it; a ServiceAccount token or the admin's)."""
        host = self.tls_server.server_address[0]
        return f"https://{host.decode() if isinstance(host, bytes) else host}:{self.tls_server.server_address[1]}"

    @property
    def ca_path(self) -> Path:
        return self.tls.ca_path

    @property
    def endpoint(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host.decode() if isinstance(host, bytes) else host}:{port}"

    def start(self) -> K8sEmulator:
        if self.kubeconfig is not None:
            self.kubeconfig.parent.mkdir(parents=True, exist_ok=True)
            # JSON is YAML: kubectl and the Python client read it without a YAML writer here.
            self.kubeconfig.write_text(json.dumps(kubeconfig_document(self.endpoint, token=self.admin_token),
                                                  indent=1))
            self.kubeconfig.chmod(0o600)
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="k8s-emulator", daemon=True)
        self._thread.start()
        threading.Thread(target=self.tls_server.serve_forever, kwargs={"poll_interval": 0.2},
                         name="k8s-emulator-tls", daemon=True).start()
        return self

    def stop(self, remove_containers: bool = True) -> None:
        for server in (self.server, self.tls_server):
            server.shutdown()
            server.server_close()
        self.relay.stop()
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

    def jobs(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return self.cluster.jobs.list_jobs(namespace)

    def service_account_token(self, name: str, namespace: str = "default") -> str:
        """The bearer token the emulator issued to ServiceAccount ``namespace/name``."""
        return self.cluster.rbac.token_for(namespace, name)

    def drop_exec_streams(self, name: str, namespace: str = "default") -> int:
        """Cut every open exec stream of pod ``namespace/name`` now (TCP closed, no status); how many."""
        return self.cluster.drop_exec_streams(namespace, name)
