"""``--cloud-check`` for ``--cloud=gke``: every permission the run needs, asked of the API server with
SelfSubjectAccessReviews before anything is created, each missing one named with what needs it."""

from __future__ import annotations

from dataclasses import dataclass

from .manifests import SANDBOX_RULES


@dataclass(frozen=True)
class Permission:
    verb: str
    resource: str
    group: str = ""
    subresource: str = ""
    why: str = ""

    def __str__(self) -> str:
        resource = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        group = f".{self.group}" if self.group else ""
        return f"{self.verb} {resource}{group}"


def needed(sandbox: str | None) -> list[Permission]:
    """What a ``--cloud=gke`` run does in its namespace (with ``--sandbox=k8s``: RBAC for task pods too)."""
    workers = "worker pods"
    perms = [Permission(v, "jobs", "batch", why=workers) for v in ("create", "get", "list", "delete")]
    # Worker pods are deleted by label (a delete-collection call), besides one by one.
    perms += [Permission(v, "pods", why=workers) for v in ("get", "list", "delete", "deletecollection")]
    perms.append(Permission("create", "pods", subresource="exec", why="the workers' exec streams"))
    perms.append(Permission("list", "events", why="explaining a worker pod that does not start"))
    if sandbox == "k8s":
        rbac = "the task pods' ServiceAccount (--sandbox=k8s)"
        perms += [Permission(v, "serviceaccounts", why=rbac) for v in ("create", "delete")]
        perms += [Permission(v, r, "rbac.authorization.k8s.io", why=rbac)
                  for r in ("roles", "rolebindings") for v in ("create", "delete")]
        perms += [Permission(v, "networkpolicies", "networking.k8s.io", why="tasks without network (--sandbox=k8s)")
                  for v in ("create", "delete")]
        # Creating a Role needs every permission it grants (Kubernetes' RBAC escalation check, unless
        # the caller may ``escalate``): every rule of the workers' Role, verb by verb.
        perms += [Permission(verb, resource.partition("/")[0], rule["apiGroups"][0], resource.partition("/")[2],
                             why="granted to the workers' Role (--sandbox=k8s)")
                  for rule in SANDBOX_RULES for resource in rule["resources"] for verb in rule["verbs"]]
    unique: dict[str, Permission] = {}
    for perm in perms:
        unique.setdefault(str(perm), perm)  # the first reason given for a permission is kept
    return list(unique.values())


def review(authz: Permission, namespace: str) -> dict[str, object]:
    """The SelfSubjectAccessReview body for one permission in ``namespace``."""
    attrs: dict[str, str] = {"namespace": namespace, "verb": authz.verb, "resource": authz.resource}
    if authz.group:
        attrs["group"] = authz.group
    if authz.subresource:
        attrs["subresource"] = authz.subresource
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attrs}}
