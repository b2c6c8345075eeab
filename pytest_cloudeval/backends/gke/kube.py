"""The cluster calls the GKE provider makes, over the official ``kubernetes`` client (imported lazily).

Every call is retried on connection trouble, 429 and 5xx (``sandbox.k8s_api.call``); a refusal
becomes ``BackendError`` naming the call and the API server's reason. "Not found" on a delete counts
as deleted. Clients come from the run's ``K8sConfig`` (kubeconfig, context) and share one
configuration; no exec stream goes through here (that is the ``kubectl`` transport's).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...errors import BackendError, SandboxError


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
    try:
        return float(value.timestamp()) if value is not None else 0.0
    except (AttributeError, OverflowError, ValueError):
        return 0.0


class Kube:
    """One namespace of one cluster. Thread-safe: the client's REST calls are (streams are not, and
    none are made here)."""

    def __init__(self, cluster: Any, namespace: str | None = None) -> None:
        from ...sandbox import k8s_api

        self.cluster = cluster
        try:
            self.namespace = namespace or k8s_api.namespace_of(cluster)
            self._client = k8s_api.api_client(cluster)
        except SandboxError as e:
            raise BackendError(str(e)) from e
        self._lock = threading.Lock()
        self._apis: dict[str, Any] = {}

    def _api(self, kind: str) -> Any:
        from kubernetes import client

        with self._lock:
            if kind not in self._apis:
                self._apis[kind] = getattr(client, kind)(self._client)
            return self._apis[kind]

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

    # -- discovery ---------------------------------------------------------------------------------
    def serves_jobs(self) -> bool:
        """Whether the API server serves batch/v1 Jobs (every real cluster does)."""
        found = self.call("discover batch/v1", lambda: self._api("BatchV1Api").get_api_resources(), missing_ok=True)
        return found is not None and any(r.name == "jobs" for r in found.resources or [])

    # -- workers -------------------------------------------------------------------------------------
    def create_job(self, body: Mapping[str, Any]) -> None:
        name = body["metadata"]["name"]
        self.call(f"create the worker Job {name}",
                  lambda: self._api("BatchV1Api").create_namespaced_job(self.namespace, dict(body)))

    def create_pod(self, body: Mapping[str, Any]) -> None:
        name = body["metadata"]["name"]
        self.call(f"create the worker pod {name}",
                  lambda: self._api("CoreV1Api").create_namespaced_pod(self.namespace, dict(body)))

    def delete_job(self, name: str) -> bool:
        """Delete a worker Job (its pods with it, Background propagation); False when it was gone."""
        done = self.call(f"delete the worker Job {name}", lambda: self._api("BatchV1Api").delete_namespaced_job(
            name, self.namespace, propagation_policy="Background", grace_period_seconds=0), missing_ok=True)
        return done is not None

    def delete_pods(self, label_selector: str) -> None:
        """Delete (grace 0) the pods matching ``label_selector``: the cluster's garbage collector
        would take its time, and a stopped worker should stop now."""
        api = self._api("CoreV1Api")
        self.call(f"delete pods {label_selector}", lambda: api.delete_collection_namespaced_pod(
            self.namespace, label_selector=label_selector, grace_period_seconds=0), missing_ok=True)

    def delete_pod(self, name: str) -> bool:
        done = self.call(f"delete the pod {name}", lambda: self._api("CoreV1Api").delete_namespaced_pod(
            name, self.namespace, grace_period_seconds=0), missing_ok=True)
        return done is not None

    def pods(self, label_selector: str) -> list[PodInfo]:
        found = self.call(f"list pods {label_selector}", lambda: self._api("CoreV1Api").list_namespaced_pod(
            self.namespace, label_selector=label_selector))
        return [pod_info(p) for p in found.items]

    def pod(self, name: str) -> PodInfo | None:
        found = self.call(f"read the pod {name}", lambda: self._api("CoreV1Api").read_namespaced_pod(
            name, self.namespace), missing_ok=True)
        return None if found is None else pod_info(found)

    def jobs(self, label_selector: str) -> list[tuple[str, dict[str, str], float]]:
        """(name, labels, created at) of the Jobs matching ``label_selector``."""
        found = self.call(f"list Jobs {label_selector}", lambda: self._api("BatchV1Api").list_namespaced_job(
            self.namespace, label_selector=label_selector), missing_ok=True)
        return [(j.metadata.name, dict(j.metadata.labels or {}), _ts(j.metadata.creation_timestamp))
                for j in (found.items if found is not None else [])]

    def events(self, name: str) -> list[str]:
        from ...sandbox import k8s_api

        return k8s_api.pod_events(self.cluster, self.namespace, name)

    # -- RBAC of --sandbox=k8s -------------------------------------------------------------------
    def create_rbac(self, account: Mapping[str, Any], role: Mapping[str, Any], binding: Mapping[str, Any]) -> None:
        core, rbac = self._api("CoreV1Api"), self._api("RbacAuthorizationV1Api")
        for what, fn in (
                ("ServiceAccount", lambda: core.create_namespaced_service_account(self.namespace, dict(account))),
                ("Role", lambda: rbac.create_namespaced_role(self.namespace, dict(role))),
                ("RoleBinding", lambda: rbac.create_namespaced_role_binding(self.namespace, dict(binding)))):
            try:
                self.call(f"create the {what} {account['metadata']['name']}", fn)
            except BackendError as e:
                if getattr(e.__cause__, "status", None) != 409:  # already there (a pool reused)
                    raise

    def delete_rbac(self, name: str) -> list[str]:
        """Delete the RoleBinding, Role and ServiceAccount ``name``; returns the problems."""
        core, rbac = self._api("CoreV1Api"), self._api("RbacAuthorizationV1Api")
        problems = []
        for what, fn in (("RoleBinding", lambda: rbac.delete_namespaced_role_binding(name, self.namespace)),
                         ("Role", lambda: rbac.delete_namespaced_role(name, self.namespace)),
                         ("ServiceAccount", lambda: core.delete_namespaced_service_account(name, self.namespace))):
            try:
                self.call(f"delete the {what} {name}", fn, missing_ok=True)
            except BackendError as e:
                problems.append(str(e))
        return problems

    def rbac_names(self, label_selector: str) -> list[str]:
        """Names of the ServiceAccounts, Roles and RoleBindings matching ``label_selector``."""
        core, rbac = self._api("CoreV1Api"), self._api("RbacAuthorizationV1Api")
        names: set[str] = set()
        for what, fn in (("ServiceAccounts", lambda: core.list_namespaced_service_account(
                              self.namespace, label_selector=label_selector)),
                         ("Roles", lambda: rbac.list_namespaced_role(self.namespace, label_selector=label_selector)),
                         ("RoleBindings", lambda: rbac.list_namespaced_role_binding(
                              self.namespace, label_selector=label_selector))):
            found = self.call(f"list {what} {label_selector}", fn, missing_ok=True)
            names.update(o.metadata.name for o in (found.items if found is not None else []))
        return sorted(names)

    # -- --cloud-check -------------------------------------------------------------------------------
    def allowed(self, body: Mapping[str, Any]) -> tuple[bool, str]:
        """A SelfSubjectAccessReview: (allowed, the reason the API server gave)."""
        api = self._api("AuthorizationV1Api")
        attrs = body["spec"]["resourceAttributes"]
        got = self.call(f"check {attrs['verb']} {attrs['resource']}",
                        lambda: api.create_self_subject_access_review(dict(body)))
        status = got.status
        return bool(status.allowed), str(status.reason or status.evaluation_error or "")


_serializer: Any = None


def _plain(obj: Any) -> Any:
    """A generated model as the API's own JSON (camelCase dicts), the form ``k8s_api`` reads."""
    global _serializer
    if _serializer is None:
        from kubernetes.client import ApiClient, Configuration

        _serializer = ApiClient(Configuration())
    return _serializer.sanitize_for_serialization(obj)


def pod_info(pod: Any) -> PodInfo:
    from ...sandbox.k8s_api import explain_pending

    meta, status = pod.metadata, pod.status
    labels = dict(meta.labels or {})
    phase = status.phase or "Pending"
    reason = ""
    if phase != "Running":
        try:
            reason = explain_pending(_plain(pod))
        except Exception:  # noqa: BLE001 - an explanation is best effort
            reason = phase
    return PodInfo(name=meta.name, worker=labels.get("cloudeval.worker", meta.name), phase=phase, reason=reason,
                   deleting=meta.deletion_timestamp is not None, created_at=_ts(meta.creation_timestamp),
                   labels=labels)
