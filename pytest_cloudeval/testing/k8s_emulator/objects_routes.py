"""REST routes for the objects beyond pods: batch/v1 Jobs, ServiceAccounts, Roles, RoleBindings, reviews.

A mixin of ``K8sHandler`` (``server.py`` owns the plumbing: ``_json``, ``_listing``, ``_q``); the
stores and controllers live in ``jobs.py`` and ``rbac.py``.
"""

from __future__ import annotations

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
]


class ObjectRoutes:
    """Handlers (mixed into ``K8sHandler``); each answers with ``self._json`` or raises ``ApiError``."""

    server: Any
    _json: Any
    _listing: Any
    _q: Any
    _one: Any

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
