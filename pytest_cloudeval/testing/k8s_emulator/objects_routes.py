"""REST routes for the objects beyond pods: batch/v1 Jobs, ServiceAccounts, Roles, RoleBindings, reviews.

A mixin of ``K8sHandler`` (``server.py`` owns the plumbing: ``_json``, ``_listing``, ``_q``); the
stores and controllers live in ``jobs.py`` and ``rbac.py``.
"""

from __future__ import annotations

import time
from typing import Any

from pytest_cloudeval.testing.k8s_emulator import resources
from pytest_cloudeval.testing.k8s_emulator.resources import ApiError

_BATCH = r"/apis/batch/v1"
_RBAC = r"/apis/rbac\.authorization\.k8s\.io/v1"
_CORE_NS = r"/api/v1/namespaces/([^/]+)"

ROUTES: list[tuple[str, str, str]] = [
    ("GET", rf"{_BATCH}/jobs", "list_jobs"),
    ("GET", rf"{_BATCH}/namespaces/([^/]+)/jobs", "list_jobs"),
    ("POST", rf"{_BATCH}/namespaces/([^/]+)/jobs", "create_job"),
    ("DELETE", rf"{_BATCH}/namespaces/([^/]+)/jobs", "delete_jobs"),
    ("GET", rf"{_BATCH}/namespaces/([^/]+)/jobs/([^/]+)", "get_job"),
    ("GET", rf"{_BATCH}/namespaces/([^/]+)/jobs/([^/]+)/status", "get_job"),
    ("DELETE", rf"{_BATCH}/namespaces/([^/]+)/jobs/([^/]+)", "delete_job"),
    ("GET", r"/api/v1/serviceaccounts", "list_serviceaccounts"),
    ("GET", rf"{_CORE_NS}/serviceaccounts", "list_serviceaccounts"),
    ("POST", rf"{_CORE_NS}/serviceaccounts", "create_serviceaccount"),
    ("DELETE", rf"{_CORE_NS}/serviceaccounts", "delete_serviceaccounts"),
    ("GET", rf"{_CORE_NS}/serviceaccounts/([^/]+)", "get_serviceaccount"),
    ("DELETE", rf"{_CORE_NS}/serviceaccounts/([^/]+)", "delete_serviceaccount"),
    ("POST", rf"{_CORE_NS}/serviceaccounts/([^/]+)/token", "create_token"),
    ("GET", rf"{_RBAC}/(roles|rolebindings)", "list_rbac"),
    ("GET", rf"{_RBAC}/namespaces/([^/]+)/(roles|rolebindings)", "list_rbac_ns"),
    ("POST", rf"{_RBAC}/namespaces/([^/]+)/(roles|rolebindings)", "create_rbac"),
    ("DELETE", rf"{_RBAC}/namespaces/([^/]+)/(roles|rolebindings)", "delete_rbac_collection"),
    ("GET", rf"{_RBAC}/namespaces/([^/]+)/(roles|rolebindings)/([^/]+)", "get_rbac"),
    ("DELETE", rf"{_RBAC}/namespaces/([^/]+)/(roles|rolebindings)/([^/]+)", "delete_rbac"),
    ("POST", r"/apis/authorization\.k8s\.io/v1/selfsubjectaccessreviews", "self_review"),
]
_RBAC_KINDS = {"roles": "Role", "rolebindings": "RoleBinding"}


class ObjectRoutes:
    """Handlers (mixed into ``K8sHandler``); each answers with ``self._json`` or raises ``ApiError``."""

    server: Any
    _json: Any
    _listing: Any
    _q: Any
    _one: Any
    identity: Any

    def _propagation(self, body: Any) -> str | None:
        policy = self._q("propagationPolicy")
        if policy is None and isinstance(body, dict):
            policy = body.get("propagationPolicy")
            if policy is None and body.get("orphanDependents") is not None:
                policy = "Orphan" if body["orphanDependents"] else "Background"
        return policy

    # -- batch/v1 Jobs -----------------------------------------------------------------------------
    def list_jobs(self, namespace: str | None = None, body: Any = None) -> None:
        self._listing("Job", "batch/v1", self.server.cluster.jobs.list_jobs(namespace), "jobs", namespace)

    def create_job(self, namespace: str, body: Any) -> None:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "a Job object is required")
        self._json(201, self.server.cluster.jobs.create(namespace, body))

    def get_job(self, namespace: str, name: str, body: Any) -> None:
        self._one(self.server.cluster.jobs.get(namespace, name))

    def delete_job(self, namespace: str, name: str, body: Any) -> None:
        self._json(200, self.server.cluster.jobs.delete(namespace, name, self._propagation(body)))

    def delete_jobs(self, namespace: str, body: Any) -> None:
        jobs = self.server.cluster.jobs
        selector = resources.parse_selector(self._q("labelSelector"))
        gone = []
        for job in jobs.list_jobs(namespace):
            if resources.selector_matches(selector, job["metadata"].get("labels") or {}):
                try:
                    gone.append(jobs.delete(namespace, job["metadata"]["name"], self._propagation(body)))
                except ApiError as e:
                    if e.code != 404:
                        raise
        self._json(200, resources.object_list("Job", "batch/v1", gone, self.server.cluster.version))

    def _delete_matching(self, items: list[dict[str, Any]], kind: str, api_version: str,
                         delete: Any) -> None:
        selector = resources.parse_selector(self._q("labelSelector"))
        gone = []
        for obj in items:
            if resources.selector_matches(selector, obj["metadata"].get("labels") or {}):
                try:
                    gone.append(delete(obj["metadata"]["name"]))
                except ApiError as e:
                    if e.code != 404:
                        raise
        self._json(200, resources.object_list(kind, api_version, gone, self.server.cluster.version))

    # -- ServiceAccounts ---------------------------------------------------------------------------
    def list_serviceaccounts(self, namespace: str | None = None, body: Any = None) -> None:
        self._listing("ServiceAccount", "v1", self.server.cluster.list_objects("serviceaccounts", namespace),
                      "serviceaccounts", namespace)

    def create_serviceaccount(self, namespace: str, body: Any) -> None:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "a ServiceAccount object is required")
        self._json(201, self.server.cluster.rbac.create_service_account(namespace, body))

    def get_serviceaccount(self, namespace: str, name: str, body: Any) -> None:
        self._one(self.server.cluster.get_object("serviceaccounts", namespace, name))

    def delete_serviceaccount(self, namespace: str, name: str, body: Any) -> None:
        self._json(200, self.server.cluster.rbac.delete_service_account(namespace, name))

    def delete_serviceaccounts(self, namespace: str, body: Any) -> None:
        cluster = self.server.cluster
        self._delete_matching(cluster.list_objects("serviceaccounts", namespace), "ServiceAccount", "v1",
                              lambda name: cluster.rbac.delete_service_account(namespace, name))

    def create_token(self, namespace: str, name: str, body: Any) -> None:
        """TokenRequest: the emulator hands out the ServiceAccount's one token (no expiry, no audience)."""
        token = self.server.cluster.rbac.token_for(namespace, name)
        spec = (body or {}).get("spec") or {}
        self._json(201, {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                         "metadata": {"name": name, "namespace": namespace},
                         "spec": {"audiences": spec.get("audiences") or [], "expirationSeconds":
                                  spec.get("expirationSeconds") or 3600},
                         "status": {"token": token, "expirationTimestamp": resources.now_rfc3339(
                             time.time() + float(spec.get("expirationSeconds") or 3600))}})

    # -- Roles and RoleBindings --------------------------------------------------------------------
    def list_rbac(self, resource: str, body: Any = None) -> None:
        self._listing(_RBAC_KINDS[resource], "rbac.authorization.k8s.io/v1",
                      self.server.cluster.list_objects(resource, None), resource, None)

    def list_rbac_ns(self, namespace: str, resource: str, body: Any = None) -> None:
        self._listing(_RBAC_KINDS[resource], "rbac.authorization.k8s.io/v1",
                      self.server.cluster.list_objects(resource, namespace), resource, namespace)

    def create_rbac(self, namespace: str, resource: str, body: Any) -> None:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", f"a {_RBAC_KINDS[resource]} object is required")
        rbac = self.server.cluster.rbac
        create = rbac.create_role if resource == "roles" else rbac.create_binding
        self._json(201, create(namespace, body))

    def get_rbac(self, namespace: str, resource: str, name: str, body: Any) -> None:
        self._one(self.server.cluster.get_object(resource, namespace, name))

    def delete_rbac(self, namespace: str, resource: str, name: str, body: Any) -> None:
        self._json(200, self.server.cluster.remove_object(resource, namespace, name))

    def delete_rbac_collection(self, namespace: str, resource: str, body: Any) -> None:
        cluster = self.server.cluster
        self._delete_matching(cluster.list_objects(resource, namespace), _RBAC_KINDS[resource],
                              "rbac.authorization.k8s.io/v1",
                              lambda name: cluster.remove_object(resource, namespace, name))

    # -- access reviews ----------------------------------------------------------------------------
    def self_review(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "a SelfSubjectAccessReview object is required")
        self._json(201, self.server.cluster.rbac.review(self.identity, body))
