"""The cluster calls the GKE provider makes, as plain JSON over the official ``kubernetes`` client's
``ApiClient`` (``sandbox.k8s_rest.Rest``: the kubeconfig's authentication, TLS, pooled connections).

Not the generated ``CoreV1Api``/``BatchV1Api`` classes and typed models: touching them costs the
controller about a second of CPU before its first Job (on the critical path of every run), and
turning a 50-pod list into models costs ~30 ms, four times a second while the pods start. Every call
is retried on connection trouble, 429 and 5xx (``sandbox.k8s_api.call``); a refusal becomes
``BackendError`` naming the call and the API server's reason. "Not found" on a delete counts as
deleted. No exec stream goes through here (that is the ``kubectl`` transport's).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ...errors import BackendError, SandboxError

JOBS = "/apis/batch/v1/namespaces/{namespace}/jobs"
PODS = "/api/v1/namespaces/{namespace}/pods"
RBAC = "/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}"
ACCOUNTS = "/api/v1/namespaces/{namespace}/serviceaccounts"


@dataclass(frozen=True)
class PodInfo:
    name: str
    worker: str
    """The Job (worker) it belongs to: its ``cloudeval.worker`` label."""
    phase: str
    reason: str = ""
    """Why it is not running (image pull, unschedulable, eviction, deadline), "" when it runs."""
    deleting: bool = False
    created_at: float = 0.0
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.phase == "Running" and not self.deleting


def _ts(value: Any) -> float:
    """Seconds since the epoch of an RFC 3339 timestamp of the API (0.0 when absent or unreadable)."""
    if not value:
        return 0.0
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError):
        return 0.0


class Kube:
    """One namespace of one cluster. Thread-safe (plain requests on urllib3's pool; no streams)."""

    def __init__(self, cluster: Any, namespace: str | None = None) -> None:
        from ...sandbox import k8s_api
        from ...sandbox.k8s_rest import Rest

        self.cluster = cluster
        try:
            self.namespace = namespace or k8s_api.namespace_of(cluster)
            self._rest = Rest(k8s_api.api_client(cluster))
        except SandboxError as e:
            raise BackendError(str(e)) from e

    def call(self, what: str, fn: Any, *, missing_ok: bool = False) -> Any:
        from ...sandbox import k8s_api

        try:
            return k8s_api.call(what, fn, passthrough_404=True)
        except SandboxError as e:
            raise BackendError(str(e)) from (e.__cause__ or e)  # the API's exception: callers read .status
        except Exception as e:  # noqa: BLE001 - the client's ApiException (404 passed through)
            if getattr(e, "status", None) == 404:
                if missing_ok:
                    return None
                raise BackendError(f"Kubernetes API: {what} failed: {k8s_api.describe_error(e)}") from e
            raise

    def _request(self, what: str, method: str, path: str, name: str | None = None, *, missing_ok: bool = False,
                 query: list[tuple[str, Any]] | None = None, body: Any = None) -> dict[str, Any] | None:
        params = {"namespace": self.namespace}
        if name is not None:
            path, params["name"] = path + "/{name}", name
        return self.call(what, lambda: self._rest.request(method, path, params, query=query or [], body=body),
                         missing_ok=missing_ok)

    # -- discovery ---------------------------------------------------------------------------------
    def serves_jobs(self) -> bool:
        """Whether the API server serves batch/v1 Jobs (every real cluster does)."""
        found = self._request("discover batch/v1", "GET", "/apis/batch/v1", missing_ok=True)
        return found is not None and any(r.get("name") == "jobs" for r in found.get("resources") or [])

    # -- workers -------------------------------------------------------------------------------------
    def create_job(self, body: Mapping[str, Any]) -> None:
        self._request(f"create the worker Job {body['metadata']['name']}", "POST", JOBS, body=dict(body))

    def create_pod(self, body: Mapping[str, Any]) -> None:
        self._request(f"create the worker pod {body['metadata']['name']}", "POST", PODS, body=dict(body))

    def delete_job(self, name: str) -> bool:
        """Delete a worker Job (its pods with it, Background propagation); False when it was gone."""
        done = self._request(f"delete the worker Job {name}", "DELETE", JOBS, name, missing_ok=True,
                             query=[("propagationPolicy", "Background"), ("gracePeriodSeconds", 0)])
        return done is not None

    def delete_pods(self, label_selector: str) -> None:
        """Delete (grace 0) the pods matching ``label_selector``: the cluster's garbage collector
        would take its time, and a stopped worker should stop now."""
        self._request(f"delete pods {label_selector}", "DELETE", PODS, missing_ok=True,
                      query=[("labelSelector", label_selector), ("gracePeriodSeconds", 0)])

    def delete_pod(self, name: str) -> bool:
        done = self._request(f"delete the pod {name}", "DELETE", PODS, name, missing_ok=True,
                             query=[("gracePeriodSeconds", 0)])
        return done is not None

    def pods(self, label_selector: str) -> list[PodInfo]:
        found = self._request(f"list pods {label_selector}", "GET", PODS, query=[("labelSelector", label_selector)])
        return [pod_info(p) for p in (found or {}).get("items") or []]

    def pod(self, name: str) -> PodInfo | None:
        found = self._request(f"read the pod {name}", "GET", PODS, name, missing_ok=True)
        return None if found is None else pod_info(found)

    def jobs(self, label_selector: str) -> list[tuple[str, dict[str, str], float]]:
        """(name, labels, created at) of the Jobs matching ``label_selector``."""
        found = self._request(f"list Jobs {label_selector}", "GET", JOBS, missing_ok=True,
                              query=[("labelSelector", label_selector)])
        return [(str(j["metadata"]["name"]), dict(j["metadata"].get("labels") or {}),
                 _ts(j["metadata"].get("creationTimestamp"))) for j in (found or {}).get("items") or []]

    def events(self, name: str) -> list[str]:
        from ...sandbox import k8s_api

        return k8s_api.pod_events(self.cluster, self.namespace, name)

    # -- RBAC of --sandbox=k8s -------------------------------------------------------------------
    _RBAC_KINDS = (("ServiceAccount", ACCOUNTS), ("Role", RBAC + "/roles"), ("RoleBinding", RBAC + "/rolebindings"))

    def create_rbac(self, account: Mapping[str, Any], role: Mapping[str, Any], binding: Mapping[str, Any]) -> None:
        for (what, path), body in zip(self._RBAC_KINDS, (account, role, binding), strict=True):
            try:
                self._request(f"create the {what} {account['metadata']['name']}", "POST", path, body=dict(body))
            except BackendError as e:
                if getattr(e.__cause__, "status", None) != 409:  # already there (a pool reused)
                    raise

    def delete_rbac(self, name: str) -> list[str]:
        """Delete the RoleBinding, Role and ServiceAccount ``name``; returns the problems."""
        problems = []
        for what, path in reversed(self._RBAC_KINDS):
            try:
                self._request(f"delete the {what} {name}", "DELETE", path, name, missing_ok=True)
            except BackendError as e:
                problems.append(str(e))
        return problems

    def rbac_names(self, label_selector: str) -> list[str]:
        """Names of the ServiceAccounts, Roles and RoleBindings matching ``label_selector``."""
        names: set[str] = set()
        for what, path in self._RBAC_KINDS:
            found = self._request(f"list {what}s {label_selector}", "GET", path, missing_ok=True,
                                  query=[("labelSelector", label_selector)])
            names.update(str(o["metadata"]["name"]) for o in (found or {}).get("items") or [])
        return sorted(names)

    # -- --cloud-check -------------------------------------------------------------------------------
    def allowed(self, body: Mapping[str, Any]) -> tuple[bool, str]:
        """A SelfSubjectAccessReview: (allowed, the reason the API server gave)."""
        attrs = body["spec"]["resourceAttributes"]
        got = self.call(f"check {attrs['verb']} {attrs['resource']}", lambda: self._rest.request(
            "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", {}, body=dict(body))) or {}
        status = got.get("status") or {}
        return bool(status.get("allowed")), str(status.get("reason") or status.get("evaluationError") or "")


def pod_info(pod: Mapping[str, Any]) -> PodInfo:
    """A pod of the API's JSON as the provider needs it."""
    from ...sandbox.k8s_api import explain_pending

    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    labels = dict(meta.get("labels") or {})
    name = str(meta.get("name", ""))
    phase = str(status.get("phase") or "Pending")
    reason = ""
    if phase != "Running":
        try:
            reason = explain_pending(pod)
        except Exception:  # noqa: BLE001 - an explanation is best effort
            reason = phase
    return PodInfo(name=name, worker=labels.get("cloudeval.worker", name), phase=phase, reason=reason,
                   deleting=meta.get("deletionTimestamp") is not None, created_at=_ts(meta.get("creationTimestamp")),
                   labels=labels)
