"""HTTP front of the Kubernetes emulator: REST routes, watches, logs, the exec upgrade, the access log.

Standard library ``ThreadingHTTPServer`` (one thread per connection, HTTP/1.1 keep-alive): the
official Python client and kubectl both talk to it over plain HTTP. Every refusal is a ``Status``.
Every request is appended to the access log (JSON lines: time, method, path with query, headers
without credentials), which is what tests grep to prove a secret never reached the API server.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from pytest_cloudeval.testing.k8s_emulator import (
    docker_pods,
    objects_routes,
    protobuf,
    rbac,
    resources,
    tables,
    websocket,
)
from pytest_cloudeval.testing.k8s_emulator.cluster import Cluster
from pytest_cloudeval.testing.k8s_emulator.resources import ApiError

_NS = r"/api/v1/namespaces/([^/]+)"
_NET = r"/apis/networking\.k8s\.io/v1"
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [(m, re.compile(f"^{p}$"), h) for m, p, h in [
    ("GET", r"/version/?", "version"),
    ("GET", r"/api/?", "api"),
    ("GET", r"/apis/?", "apis"),
    ("GET", r"/api/v1/?", "core_resources"),
    ("GET", r"/apis/([^/]+)/?", "api_group"),
    ("GET", r"/apis/([^/]+)/([^/]+)/?", "group_resources"),
    ("GET", r"/api/v1/namespaces", "list_namespaces"),
    ("POST", r"/api/v1/namespaces", "create_namespace"),
    ("GET", _NS, "get_namespace"),
    ("GET", r"/api/v1/pods", "list_pods"),
    ("GET", rf"{_NS}/pods", "list_pods"),
    ("POST", rf"{_NS}/pods", "create_pod"),
    ("DELETE", rf"{_NS}/pods", "delete_pods"),
    ("GET", rf"{_NS}/pods/([^/]+)", "get_pod"),
    ("GET", rf"{_NS}/pods/([^/]+)/status", "get_pod"),
    ("PATCH", rf"{_NS}/pods/([^/]+)", "patch_pod"),
    ("DELETE", rf"{_NS}/pods/([^/]+)", "delete_pod"),
    ("GET", rf"{_NS}/pods/([^/]+)/log", "pod_log"),
    ("GET", rf"{_NS}/pods/([^/]+)/exec", "pod_exec"),
    ("POST", rf"{_NS}/pods/([^/]+)/exec", "pod_exec"),
    ("GET", r"/api/v1/events", "list_events"),
    ("GET", rf"{_NS}/events", "list_events"),
    ("GET", rf"{_NET}/networkpolicies", "list_policies"),
    ("GET", rf"{_NET}/namespaces/([^/]+)/networkpolicies", "list_policies"),
    ("POST", rf"{_NET}/namespaces/([^/]+)/networkpolicies", "create_policy"),
    ("DELETE", rf"{_NET}/namespaces/([^/]+)/networkpolicies", "delete_policies"),
    ("GET", rf"{_NET}/namespaces/([^/]+)/networkpolicies/([^/]+)", "get_policy"),
    ("DELETE", rf"{_NET}/namespaces/([^/]+)/networkpolicies/([^/]+)", "delete_policy"),
    ("GET", r"/emulator/v1/health", "health"),
    ("GET", r"/emulator/v1/faults", "get_faults"),
    ("POST", r"/emulator/v1/faults", "set_faults"),
    ("DELETE", r"/emulator/v1/faults", "reset_faults"),
    ("POST", r"/emulator/v1/namespaces/([^/]+)/pods/([^/]+)/evict", "evict"),
    ("POST", r"/emulator/v1/namespaces/([^/]+)/pods/([^/]+)/drop-execs", "drop_execs"),
    *objects_routes.ROUTES,
]]
_HIDDEN_HEADERS = {"authorization", "cookie", "proxy-authorization"}
WATCH_DEFAULT_S = 300.0
TLS_HANDSHAKE_S = 10.0
_LOG_LOCK = threading.Lock()
"""One lock for every server of the process (the plain and the TLS listener share an access log)."""


class K8sHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], cluster: Cluster, access_log: str | None,
                 log: Callable[[str], None], tls: ssl.SSLContext | None = None) -> None:
        super().__init__(address, K8sHandler)
        self.cluster = cluster
        self.access_log = access_log
        self.log = log
        self.tls = tls
        """HTTPS when set: the handshake runs in the connection's thread, never in the accept loop."""

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (ssl.SSLError, ConnectionError, TimeoutError)):
            return  # a client that left or failed the TLS handshake: nothing to report
        self.log(f"k8s emulator: request from {client_address} failed: {error!r}")

    def record(self, entry: dict[str, Any]) -> None:
        if not self.access_log:
            return
        line = json.dumps(entry, sort_keys=True) + "\n"
        with _LOG_LOCK, open(self.access_log, "a", encoding="utf-8") as fh:
            fh.write(line)


class K8sHandler(objects_routes.ObjectRoutes, BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: K8sHTTPServer
    query: dict[str, list[str]]
    identity: rbac.Identity | None = None

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(TLS_HANDSHAKE_S)
            self.request.do_handshake()
            self.request.settimeout(None)
        super().setup()

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    # -- plumbing ----------------------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        path = unquote(split.path).rstrip("/") or "/"
        self.query = parse_qs(split.query, keep_blank_values=True)
        self.server.record({"time": time.time(), "method": method, "path": self.path,
                            "headers": {k: v for k, v in self.headers.items() if k.lower() not in _HIDDEN_HEADERS}})
        try:
            body = self._body()
            self.identity = self._authorize(method, path)
        except ApiError as e:
            self._json(e.code, e.status())
            return
        known = False
        for verb, pattern, handler in _ROUTES:
            match = pattern.match(path)
            if not match:
                continue
            known = True
            if verb != method:
                continue
            try:
                getattr(self, handler)(*match.groups(), body=body)
            except ApiError as e:
                self._json(e.code, e.status())
            except (ValueError, TypeError, KeyError) as e:
                self._json(400, ApiError(400, "BadRequest", f"bad request: {e}").status())
            return
        if known:
            self._json(405, ApiError(405, "MethodNotAllowed", f"{method} is not supported on {path}").status())
        else:
            self._json(404, ApiError(404, "NotFound", "the server could not find the requested resource").status())

    def _authorize(self, method: str, path: str) -> rbac.Identity | None:
        """Who is asking (401 without a known token) and whether they may (403 ``Status`` if not)."""
        if path in ("/version", "/emulator/v1/health"):
            return None
        cluster = self.server.cluster
        authorization = self.headers.get("Authorization")
        if authorization is None and self.server.tls is None:
            # kubectl sends no credentials over plain HTTP: the host's loopback user is the admin.
            identity = rbac.Identity(rbac.ADMIN_USER)
        else:
            identity = cluster.rbac.identify(authorization)
        if path.startswith("/emulator/"):
            if not identity.admin:
                raise ApiError(403, "Forbidden", f'User "{identity.user}" cannot use the emulator\'s control API')
            return identity
        attrs = rbac.request_attributes(method, path, self._flag("watch"))
        if attrs is not None and attrs.resource != "selfsubjectaccessreviews":
            allowed, _reason = cluster.rbac.decide(identity, attrs)
            if not allowed:
                raise cluster.rbac.forbidden(identity, attrs)
        return identity

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        if not length:
            return None
        raw = self.rfile.read(length)
        if "protobuf" in (self.headers.get("Content-Type") or ""):
            try:
                return protobuf.decode(raw)
            except ValueError as e:
                raise ApiError(415, "UnsupportedMediaType", f"the emulator reads JSON bodies ({e})") from None
        try:
            return json.loads(raw)
        except ValueError:
            raise ApiError(400, "BadRequest", "the request body is not JSON (YAML and protobuf are not "
                                              "accepted by the emulator)") from None

    def _json(self, code: int, doc: Any) -> None:
        data = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _q(self, key: str, default: str | None = None) -> str | None:
        values = self.query.get(key)
        return values[-1] if values else default

    def _flag(self, key: str) -> bool:
        return (self._q(key) or "").lower() in ("1", "true", "yes")

    def _listing(self, kind: str, api_version: str, items: list[dict[str, Any]], watch_kind: str,
                 namespace: str | None) -> None:
        selector = resources.parse_selector(self._q("labelSelector"))
        fields = self._q("fieldSelector")

        def keep(obj: dict[str, Any]) -> bool:
            return (resources.selector_matches(selector, (obj.get("metadata") or {}).get("labels") or {})
                    and resources.field_matches(fields, obj))

        if self._flag("watch"):
            self._watch(watch_kind, namespace, keep)
            return
        chosen = [o for o in items if keep(o)]
        with self.server.cluster.lock:
            version = self.server.cluster.version
        accept = self.headers.get("Accept") or ""
        if "as=Table" in accept and kind in tables.TABLES:
            self._json(200, tables.table(kind, chosen, version))
            return
        self._json(200, resources.object_list(kind, api_version, chosen, version))

    def _one(self, obj: dict[str, Any]) -> None:
        """Answer one object (as a one-row Table when kubectl asks for one)."""
        if "as=Table" in (self.headers.get("Accept") or "") and obj.get("kind") in tables.TABLES:
            with self.server.cluster.lock:
                version = self.server.cluster.version
            self._json(200, tables.table(obj["kind"], [obj], version))
            return
        self._json(200, obj)

    def _watch(self, kind: str, namespace: str | None, keep: Callable[[dict[str, Any]], bool]) -> None:
        cluster = self.server.cluster
        timeout = float(self._q("timeoutSeconds") or WATCH_DEFAULT_S)
        since = int(self._q("resourceVersion") or 0)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        end = time.monotonic() + timeout

        def emit(kind_event: str, obj: dict[str, Any]) -> None:
            data = (json.dumps({"type": kind_event, "object": obj}) + "\n").encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        try:
            with cluster.lock:
                if not since:
                    since = cluster.version
                    current = cluster.list_kind(kind, namespace)
                else:
                    current = []
            for obj in current:
                if keep(obj):
                    emit("ADDED", obj)
            while time.monotonic() < end:
                with cluster.changed:
                    cluster.changed.wait(timeout=min(1.0, max(0.0, end - time.monotonic())))
                    fresh = [h for h in cluster.history if h[0] > since and h[1] == kind]
                    since = max(since, cluster.version)
                for _version, _kind, kind_event, obj in fresh:
                    if namespace is not None and obj["metadata"].get("namespace") != namespace:
                        continue
                    if keep(obj):
                        emit(kind_event, obj)
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass
        self.close_connection = True

    # -- discovery ---------------------------------------------------------------------------------
    def version(self, body: Any) -> None:
        self._json(200, resources.SERVER_VERSION)

    def api(self, body: Any) -> None:
        self._json(200, resources.api_versions())

    def apis(self, body: Any) -> None:
        self._json(200, resources.api_group_list())

    def core_resources(self, body: Any) -> None:
        self._json(200, resources.resource_list("v1", resources.CORE_RESOURCES))

    def api_group(self, group: str, body: Any) -> None:
        found = [g for g in resources.api_group_list()["groups"] if g["name"] == group]
        if not found:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        self._json(200, {"kind": "APIGroup", "apiVersion": "v1", **found[0]})

    def group_resources(self, group: str, version: str, body: Any) -> None:
        if resources.GROUPS.get(group, ("",))[0] != version:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        self._json(200, resources.resource_list(f"{group}/{version}", resources.GROUPS[group][1]))

    # -- namespaces --------------------------------------------------------------------------------
    def list_namespaces(self, body: Any) -> None:
        with self.server.cluster.lock:
            items = list(self.server.cluster.namespaces.values())
        self._listing("Namespace", "v1", items, "namespaces", None)

    def create_namespace(self, body: Any) -> None:
        self._json(201, self.server.cluster.create_namespace(body or {}))

    def get_namespace(self, namespace: str, body: Any) -> None:
        with self.server.cluster.lock:
            obj = self.server.cluster.namespaces.get(namespace)
        if obj is None:
            raise resources.not_found("namespaces", namespace)
        self._json(200, obj)

    # -- pods --------------------------------------------------------------------------------------
    def list_pods(self, namespace: str | None = None, body: Any = None) -> None:
        self._listing("Pod", "v1", self.server.cluster.list_pods(namespace), "pods", namespace)

    def create_pod(self, namespace: str, body: Any) -> None:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "a Pod object is required")
        self._json(201, self.server.cluster.create_pod(namespace, body))

    def get_pod(self, namespace: str, name: str, body: Any) -> None:
        self._one(self.server.cluster.get_pod(namespace, name))

    def patch_pod(self, namespace: str, name: str, body: Any) -> None:
        kind = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if kind not in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            raise ApiError(415, "UnsupportedMediaType", f"the emulator patches pods with merge patches only, not {kind!r}")
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "a merge patch must be a JSON object")
        self._json(200, self.server.cluster.patch_pod(namespace, name, body))

    def _grace(self, body: Any) -> float | None:
        grace = self._q("gracePeriodSeconds")
        if grace is None and isinstance(body, dict) and body.get("gracePeriodSeconds") is not None:
            grace = str(body["gracePeriodSeconds"])
        return None if grace is None else float(grace)

    def delete_pod(self, namespace: str, name: str, body: Any) -> None:
        self._json(200, self.server.cluster.delete_pod(namespace, name, self._grace(body)))

    def delete_pods(self, namespace: str, body: Any) -> None:
        cluster = self.server.cluster
        selector = resources.parse_selector(self._q("labelSelector"))
        gone = []
        for pod in cluster.list_pods(namespace):
            if resources.selector_matches(selector, pod["metadata"].get("labels") or {}):
                try:
                    gone.append(cluster.delete_pod(namespace, pod["metadata"]["name"], self._grace(body)))
                except ApiError:
                    pass
        self._json(200, resources.object_list("Pod", "v1", gone, cluster.version))

    def pod_log(self, namespace: str, name: str, body: Any) -> None:
        record = self.server.cluster.record(namespace, name)
        if record.container_id is None:
            status = record.obj["status"]["containerStatuses"][0]["state"]
            reason = (status.get("waiting") or {}).get("reason", "ContainerCreating")
            raise ApiError(400, "BadRequest", f'container "{record.obj["spec"]["containers"][0]["name"]}" in pod '
                                              f'"{name}" is waiting to start: {reason}')
        tail = self._q("tailLines")
        options: dict[str, Any] = {"stdout": True, "stderr": True, "timestamps": self._flag("timestamps"),
                                   "tail": int(tail) if tail else "all"}
        api = docker_pods.api()
        if self._flag("follow"):
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                for chunk in api.logs(record.container_id, stream=True, follow=True, **options):
                    self.wfile.write(chunk)
                    self.wfile.flush()
            except Exception:  # noqa: BLE001 - the container went away or the client left
                pass
            self.close_connection = True
            return
        try:
            data = api.logs(record.container_id, **options)
        except Exception as e:  # noqa: BLE001
            raise ApiError(400, "BadRequest", f"cannot read the logs of {name}: {e}") from e
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def pod_exec(self, namespace: str, name: str, body: Any) -> None:
        cluster = self.server.cluster
        record = cluster.record(namespace, name)
        command = self.query.get("command") or []
        if not command:
            raise ApiError(400, "BadRequest", "you must specify at least 1 command")
        if record.container_id is None or record.obj["status"].get("phase") != "Running":
            raise ApiError(400, "BadRequest", f"unable to upgrade connection: container not found "
                                              f'("{record.obj["spec"]["containers"][0]["name"]}")')
        if (self.headers.get("Upgrade") or "").lower() != "websocket":
            raise ApiError(400, "BadRequest", "the emulator speaks exec over websockets only "
                                              "(v5.channel.k8s.io, v4.channel.k8s.io), not SPDY")
        protocol = websocket.choose_protocol(self.headers.get("Sec-WebSocket-Protocol"))
        if protocol is None:
            raise ApiError(400, "BadRequest", "no supported websocket subprotocol offered (want one of "
                                              f"{', '.join(websocket.PROTOCOLS)})")
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", websocket.accept_key(self.headers.get("Sec-WebSocket-Key", "")))
        self.send_header("Sec-WebSocket-Protocol", protocol)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        flags = {k: self._flag(k) for k in ("stdin", "stdout", "stderr", "tty")}
        if not any(k in self.query for k in ("stdout", "stderr")):
            flags["stdout"] = flags["stderr"] = True
        ws = websocket.WebSocket(self.connection, self.rfile)  # type: ignore[arg-type]
        websocket.bridge_exec(ws, protocol, record.container_id, command, flags, cluster.faults.take_drop(),
                              self.server.log, on_open=lambda cut: cluster.open_stream(namespace, name, cut))

    # -- events ------------------------------------------------------------------------------------
    def list_events(self, namespace: str | None = None, body: Any = None) -> None:
        self._listing("Event", "v1", self.server.cluster.list_events(namespace), "events", namespace)

    # -- network policies --------------------------------------------------------------------------
    def list_policies(self, namespace: str | None = None, body: Any = None) -> None:
        self._listing("NetworkPolicy", "networking.k8s.io/v1", self.server.cluster.list_policies(namespace),
                      "networkpolicies", namespace)

    def create_policy(self, namespace: str, body: Any) -> None:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "a NetworkPolicy object is required")
        self._json(201, self.server.cluster.create_policy(namespace, body))

    def get_policy(self, namespace: str, name: str, body: Any) -> None:
        self._json(200, self.server.cluster.get_policy(namespace, name))

    def delete_policy(self, namespace: str, name: str, body: Any) -> None:
        self._json(200, self.server.cluster.delete_policy(namespace, name))

    def delete_policies(self, namespace: str, body: Any) -> None:
        cluster = self.server.cluster
        selector = resources.parse_selector(self._q("labelSelector"))
        gone = [cluster.delete_policy(namespace, p["metadata"]["name"]) for p in cluster.list_policies(namespace)
                if resources.selector_matches(selector, p["metadata"].get("labels") or {})]
        self._json(200, resources.object_list("NetworkPolicy", "networking.k8s.io/v1", gone, cluster.version))

    # -- emulator control --------------------------------------------------------------------------
    def health(self, body: Any) -> None:
        cluster = self.server.cluster
        self._json(200, {"ok": True, "stateLabel": cluster.state_label, "pods": len(cluster.pods)})

    def get_faults(self, body: Any) -> None:
        self._json(200, self.server.cluster.faults.show())

    def set_faults(self, body: Any) -> None:
        """Standing faults, plus ``dropExecStreamsOf: ["NS/POD", ...]``: cut those pods' open streams now."""
        cluster = self.server.cluster
        targets = (body or {}).get("dropExecStreamsOf") or []
        cluster.faults.set({k: v for k, v in (body or {}).items() if k != "dropExecStreamsOf"})
        dropped = 0
        for target in targets:
            namespace, _, name = str(target).rpartition("/")
            dropped += cluster.drop_exec_streams(namespace or "default", name)
        self._json(200, {**cluster.faults.show(), "droppedExecStreams": dropped})

    def drop_execs(self, namespace: str, name: str, body: Any) -> None:
        self._json(200, {"droppedExecStreams": self.server.cluster.drop_exec_streams(namespace, name)})

    def reset_faults(self, body: Any) -> None:
        self.server.cluster.faults.set({"reset": True})
        self._json(200, self.server.cluster.faults.show())

    def evict(self, namespace: str, name: str, body: Any) -> None:
        message = (body or {}).get("message") or "The node was low on resource: memory."
        self.server.cluster.evict(namespace, name, message)
        self._json(200, self.server.cluster.get_pod(namespace, name))
