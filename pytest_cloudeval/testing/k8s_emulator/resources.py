"""Kubernetes API documents the emulator serves: discovery, Status errors, quantities, label selectors.

Pure functions and constants (no Docker, no HTTP), so the store and the server share one idea of what
an object looks like. Discovery lists only what is implemented, so kubectl never tries a verb we lack.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

SERVER_VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0-cloudeval-emulator",
                  "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
                  "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.23", "compiler": "gc",
                  "platform": "linux/amd64"}

_VERBS_RW = ["create", "delete", "deletecollection", "get", "list", "watch"]

CORE_RESOURCES: list[dict[str, Any]] = [
    {"name": "namespaces", "singularName": "namespace", "namespaced": False, "kind": "Namespace",
     "verbs": ["create", "get", "list"], "shortNames": ["ns"]},
    {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod", "verbs": [*_VERBS_RW, "patch"],
     "shortNames": ["po"], "categories": ["all"]},
    {"name": "pods/exec", "singularName": "", "namespaced": True, "kind": "PodExecOptions",
     "verbs": ["create", "get"]},
    {"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod", "verbs": ["get"]},
    {"name": "pods/status", "singularName": "", "namespaced": True, "kind": "Pod", "verbs": ["get"]},
    {"name": "events", "singularName": "event", "namespaced": True, "kind": "Event", "verbs": ["list", "watch"],
     "shortNames": ["ev"]},
    {"name": "serviceaccounts", "singularName": "serviceaccount", "namespaced": True, "kind": "ServiceAccount",
     "verbs": _VERBS_RW, "shortNames": ["sa"]},
    {"name": "serviceaccounts/token", "singularName": "", "namespaced": True, "kind": "TokenRequest",
     "group": "authentication.k8s.io", "version": "v1", "verbs": ["create"]},
]
NETWORKING_RESOURCES: list[dict[str, Any]] = [
    {"name": "networkpolicies", "singularName": "networkpolicy", "namespaced": True, "kind": "NetworkPolicy",
     "verbs": _VERBS_RW, "shortNames": ["netpol"]},
]
BATCH_RESOURCES: list[dict[str, Any]] = [
    {"name": "jobs", "singularName": "job", "namespaced": True, "kind": "Job", "verbs": _VERBS_RW,
     "categories": ["all"]},
    {"name": "jobs/status", "singularName": "", "namespaced": True, "kind": "Job", "verbs": ["get"]},
]
RBAC_RESOURCES: list[dict[str, Any]] = [
    {"name": "roles", "singularName": "role", "namespaced": True, "kind": "Role", "verbs": _VERBS_RW},
    {"name": "rolebindings", "singularName": "rolebinding", "namespaced": True, "kind": "RoleBinding",
     "verbs": _VERBS_RW},
]
AUTHORIZATION_RESOURCES: list[dict[str, Any]] = [
    {"name": "selfsubjectaccessreviews", "singularName": "selfsubjectaccessreview", "namespaced": False,
     "kind": "SelfSubjectAccessReview", "verbs": ["create"]},
]
GROUPS = {"networking.k8s.io": ("v1", NETWORKING_RESOURCES), "batch": ("v1", BATCH_RESOURCES),
          "rbac.authorization.k8s.io": ("v1", RBAC_RESOURCES),
          "authorization.k8s.io": ("v1", AUTHORIZATION_RESOURCES)}
"""API groups beyond the core one: group -> (version, resources). Extensions (batch/v1...) add here."""


def api_versions() -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}


def api_group_list() -> dict[str, Any]:
    groups = []
    for name, (version, _) in GROUPS.items():
        gv = {"groupVersion": f"{name}/{version}", "version": version}
        groups.append({"name": name, "versions": [gv], "preferredVersion": gv})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def resource_list(group_version: str, resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
            "resources": resources}


def now_rfc3339(at: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if at is None else at))


class ApiError(Exception):
    """Answered as a ``Status`` document, the way the official clients parse errors."""

    def __init__(self, code: int, reason: str, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = dict(details or {})

    def status(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                               "message": self.message, "reason": self.reason, "code": self.code}
        if self.details:
            doc["details"] = self.details
        return doc


def not_found(kind: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{kind} "{name}" not found', {"name": name, "kind": kind})


def already_exists(kind: str, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{kind} "{name}" already exists', {"name": name, "kind": kind})


def invalid(kind: str, name: str, message: str) -> ApiError:
    return ApiError(422, "Invalid", f'{kind} "{name}" is invalid: {message}', {"name": name, "kind": kind})


_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def check_name(kind: str, name: Any) -> str:
    if not isinstance(name, str) or not name or len(name) > 253 or not _NAME.match(name):
        raise invalid(kind, str(name), f"metadata.name: Invalid value: {name!r}: a lowercase RFC 1123 "
                                       "subdomain must consist of lower case alphanumeric characters or '-'")
    return name


# -- quantities -----------------------------------------------------------------------------------

_SUFFIX = {"": 1.0, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 1024.0, "Mi": 1024.0 ** 2,
           "Gi": 1024.0 ** 3, "Ti": 1024.0 ** 4}
_QUANTITY = re.compile(r"^([0-9.]+(?:e[0-9]+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")


def quantity(value: Any, field: str) -> float:
    """A resource quantity ("500m", "2", "256Mi") as a number of units (cores, bytes)."""
    if isinstance(value, (int, float)):
        return float(value)
    match = _QUANTITY.match(str(value).strip())
    if not match:
        raise ApiError(422, "Invalid", f"{field}: Invalid value: {value!r}: quantities must match "
                                       "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
    return float(match.group(1)) * _SUFFIX[match.group(2) or ""]


# -- label selectors ------------------------------------------------------------------------------

def parse_selector(text: str | None) -> list[tuple[str, str, list[str]]]:
    """``a=b,c!=d,e,!f,g in (x,y),h notin (z)`` -> (key, op, values) clauses, ANDed."""
    clauses: list[tuple[str, str, list[str]]] = []
    if not text:
        return clauses
    parts = re.findall(r"[^,(]+(?:\([^)]*\))?", text)
    for raw in parts:
        part = raw.strip().strip(",").strip()
        if not part:
            continue
        set_match = re.match(r"^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$", part)
        if set_match:
            values = [v.strip() for v in set_match.group(3).split(",") if v.strip()]
            clauses.append((set_match.group(1), set_match.group(2), values))
        elif "!=" in part:
            key, _, value = part.partition("!=")
            clauses.append((key.strip(), "!=", [value.strip()]))
        elif "=" in part:
            key, _, value = part.replace("==", "=").partition("=")
            clauses.append((key.strip(), "=", [value.strip()]))
        elif part.startswith("!"):
            clauses.append((part[1:].strip(), "!exists", []))
        else:
            clauses.append((part, "exists", []))
    return clauses


def selector_matches(clauses: list[tuple[str, str, list[str]]], labels: Mapping[str, str]) -> bool:
    for key, op, values in clauses:
        present = key in labels
        if op == "=" and labels.get(key) != values[0]:
            return False
        if op == "!=" and present and labels.get(key) == values[0]:
            return False
        if op == "exists" and not present:
            return False
        if op == "!exists" and present:
            return False
        if op == "in" and labels.get(key) not in values:
            return False
        if op == "notin" and present and labels.get(key) in values:
            return False
    return True


def field_matches(text: str | None, obj: Mapping[str, Any]) -> bool:
    """``metadata.name=x,involvedObject.name=y,status.phase!=Failed``: dotted paths, = and !=."""
    if not text:
        return True
    for part in text.split(","):
        negate = "!=" in part
        path, _, want = part.replace("!=", "=").replace("==", "=").partition("=")
        value: Any = obj
        for key in path.strip().split("."):
            value = value.get(key) if isinstance(value, Mapping) else None
        got = "" if value is None else str(value)
        if (got == want.strip()) == negate:
            return False
    return True


def object_list(kind: str, api_version: str, items: list[dict[str, Any]], resource_version: int) -> dict[str, Any]:
    return {"kind": f"{kind}List", "apiVersion": api_version,
            "metadata": {"resourceVersion": str(resource_version)}, "items": items}
