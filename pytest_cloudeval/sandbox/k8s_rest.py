"""The few Kubernetes REST calls the sandbox makes, as plain JSON, through the official client's ``ApiClient``.

The ``kubernetes`` package's ``ApiClient`` still does the work a cluster cares about: the kubeconfig's
authentication (bearer tokens, exec plugins and their refresh hooks, client certificates), TLS and
urllib3's pooled keep-alive connections; errors are its ``ApiException`` (status, body). What is left
out are the generated ``CoreV1Api``/``NetworkingV1Api`` classes and their typed models: importing
them costs about 4.5 s of CPU per process (a 63,000-line module and hundreds of pydantic models),
which every xdist worker paid before its first pod, and typed responses are not needed to read a
pod's phase. Exec websockets are opened with the same package's ``websocket_call`` (see ``k8s_exec``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

JSON = "application/json"


class Rest:
    """One ``ApiClient`` (thread-safe for plain requests: urllib3's pool) and the calls on it."""

    def __init__(self, api_client: Any) -> None:
        self.client = api_client

    def url(self, method: str, path: str, params: Mapping[str, str],
            query: Sequence[tuple[str, Any]] = ()) -> tuple[str, dict[str, str]]:
        """(full URL, headers with the kubeconfig's credentials) for ``path`` with ``{name}`` parameters."""
        _method, url, headers, _body, _post = self.client.param_serialize(
            method=method, resource_path=path, path_params=dict(params), query_params=list(query),
            header_params={"Accept": JSON}, collection_formats={"command": "multi"}, auth_settings=["BearerToken"])
        return url, headers

    def request(self, method: str, path: str, params: Mapping[str, str], *,
                query: Sequence[tuple[str, Any]] = (), body: Any = None,
                content_type: str = JSON) -> dict[str, Any]:
        """The decoded JSON answer; ``ApiException`` (the client's) for any non-2xx status."""
        from kubernetes.client.exceptions import ApiException

        headers: dict[str, str] = {"Accept": JSON}
        if body is not None:
            headers["Content-Type"] = content_type
        method, url, headers, body, post = self.client.param_serialize(
            method=method, resource_path=path, path_params=dict(params), query_params=list(query),
            header_params=headers, body=body, auth_settings=["BearerToken"])
        response = self.client.call_api(method, url, header_params=headers, body=body, post_params=post)
        data = response.read() or b""
        text = data.decode("utf-8", errors="replace")
        if not 200 <= response.status <= 299:
            ApiException.from_response(http_resp=response, body=text, data=None)  # raises
            raise ApiException(status=response.status, reason=text)  # pragma: no cover - from_response raised
        try:
            return json.loads(text) if text else {}
        except ValueError as e:
            raise ApiException(status=response.status, reason=f"the API server's answer is not JSON: {text[:200]!r}") \
                from e

    # -- the calls ------------------------------------------------------------------------------------
    def read_namespace(self, namespace: str) -> dict[str, Any]:
        return self.request("GET", "/api/v1/namespaces/{namespace}", {"namespace": namespace})

    def create_pod(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("POST", "/api/v1/namespaces/{namespace}/pods", {"namespace": namespace}, body=body)

    def read_pod(self, namespace: str, name: str) -> dict[str, Any]:
        return self.request("GET", "/api/v1/namespaces/{namespace}/pods/{name}", {"namespace": namespace, "name": name})

    def patch_pod(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """A JSON merge patch (RFC 7386) of the pod: what a running pod lets change (labels, annotations,
        a lower ``activeDeadlineSeconds``)."""
        return self.request("PATCH", "/api/v1/namespaces/{namespace}/pods/{name}",
                            {"namespace": namespace, "name": name}, body=patch,
                            content_type="application/merge-patch+json")

    def delete_pod(self, namespace: str, name: str, grace_period_seconds: int | None = None) -> dict[str, Any]:
        query = [] if grace_period_seconds is None else [("gracePeriodSeconds", grace_period_seconds)]
        return self.request("DELETE", "/api/v1/namespaces/{namespace}/pods/{name}",
                            {"namespace": namespace, "name": name}, query=query)

    def list_pods(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        found = self.request("GET", "/api/v1/namespaces/{namespace}/pods", {"namespace": namespace},
                             query=[("labelSelector", label_selector)])
        return list(found.get("items") or [])

    def list_events(self, namespace: str, field_selector: str) -> list[dict[str, Any]]:
        found = self.request("GET", "/api/v1/namespaces/{namespace}/events", {"namespace": namespace},
                             query=[("fieldSelector", field_selector)])
        return list(found.get("items") or [])

    def create_network_policy(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("POST", "/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies",
                            {"namespace": namespace}, body=body)

    def list_network_policies(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        found = self.request("GET", "/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies",
                             {"namespace": namespace}, query=[("labelSelector", label_selector)])
        return list(found.get("items") or [])

    def delete_network_policy(self, namespace: str, name: str) -> dict[str, Any]:
        return self.request("DELETE", "/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies/{name}",
                            {"namespace": namespace, "name": name})

    def watch_pod(self, namespace: str, name: str, resource_version: str, timeout_s: int) -> Iterator[dict[str, Any]]:
        """The pod's states after ``resource_version`` as the API server streams them (a watch of one
        pod by field selector), for at most ``timeout_s``; ends early when the caller stops iterating.
        ``ApiException`` if the watch is refused; an ``ERROR`` event (e.g. 410 Gone) ends it too."""
        from kubernetes.client.exceptions import ApiException

        query = [("fieldSelector", f"metadata.name={name}"), ("resourceVersion", resource_version),
                 ("timeoutSeconds", int(timeout_s)), ("watch", "true")]
        method, url, headers, _body, _post = self.client.param_serialize(
            method="GET", resource_path="/api/v1/namespaces/{namespace}/pods", path_params={"namespace": namespace},
            query_params=query, header_params={"Accept": JSON}, auth_settings=["BearerToken"])
        response = self.client.call_api(method, url, header_params=headers, _request_timeout=(10, timeout_s + 10))
        if not 200 <= response.status <= 299:
            text = (response.read() or b"").decode("utf-8", errors="replace")
            ApiException.from_response(http_resp=response, body=text, data=None)  # raises
        raw = response.response
        try:
            pending = b""
            for chunk in raw.stream(amt=None, decode_content=False):
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event.get("type") == "ERROR" or not isinstance(event.get("object"), dict):
                        return
                    yield event["object"]
        finally:
            raw.close()

    def exec_url(self, namespace: str, pod: str, command: Sequence[str], *, stdin: bool) -> tuple[str, dict[str, str]]:
        """The ``pods/exec`` URL (the command in its query, as every client sends it) and its headers."""
        query: list[tuple[str, Any]] = [("command", list(command)), ("stderr", True), ("stdin", stdin),
                                        ("stdout", True), ("tty", False)]
        return self.url("GET", "/api/v1/namespaces/{namespace}/pods/{name}/exec", {"namespace": namespace, "name": pod},
                        query)
