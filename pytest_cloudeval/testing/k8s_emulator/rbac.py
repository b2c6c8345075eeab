"""Who is asking and may they: bearer tokens, ServiceAccounts, Roles, RoleBindings, access reviews.

Identities: the kubeconfig's token is the admin (``emulator-admin``), allowed everything except the
permissions the ``deny`` fault lists; a ServiceAccount's token (issued by the emulator when the
ServiceAccount is made, revoked when it is deleted; what its pods get mounted, and what
``POST .../serviceaccounts/NAME/token`` hands out) is ``system:serviceaccount:NS:NAME``, allowed what
the Roles bound to it by RoleBindings in the request's namespace grant (verbs, apiGroups, resources
with ``resource/subresource`` forms and ``*``, optional resourceNames; ClusterRoles are not emulated).
An unknown token: 401. No credential at all: the admin on the plain-HTTP listener (kubectl sends
no bearer token over plain HTTP; that listener is the host loopback's, which pods cannot reach),
401 on the TLS one. Discovery (``/version``, ``/api``, ``/apis``...) and
SelfSubjectAccessReviews are open to every authenticated identity; ``/emulator/v1`` control needs
the admin.

Every namespace gets a ``default`` ServiceAccount like a real cluster, but pods get a token mounted
only when their spec names ``serviceAccountName`` (see ``cluster.py``).
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pytest_cloudeval.testing.k8s_emulator.resources import GROUPS, ApiError, invalid, not_found

ADMIN_USER = "emulator-admin"
SA_TOKEN_PREFIX = "emu-sa."
RBAC_API = "rbac.authorization.k8s.io/v1"
SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
CORE_RESOURCE_NAMES = {"pods", "namespaces", "events", "serviceaccounts", "secrets", "configmaps", "services",
                       "nodes", "persistentvolumeclaims", "endpoints", "resourcequotas"}
SUBRESOURCE_VERBS = {"exec": "create", "attach": "create", "portforward": "create"}
"""Websocket upgrades (GET) of these subresources are authorized as ``create`` (Kubernetes >= 1.31)."""


@dataclass(frozen=True)
class Attributes:
    """What a request does, in RBAC's terms (``group`` "" is the core group)."""

    verb: str
    group: str
    resource: str
    subresource: str = ""
    namespace: str = ""
    name: str = ""

    def describe(self) -> str:
        resource = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        where = f' in the namespace "{self.namespace}"' if self.namespace else " at the cluster scope"
        return f'cannot {self.verb} resource "{resource}" in API group "{self.group}"{where}'


@dataclass(frozen=True)
class Identity:
    user: str
    service_account: tuple[str, str] | None = None
    """(namespace, name) for a ServiceAccount token."""

    @property
    def admin(self) -> bool:
        return self.service_account is None


def parse_permission(text: str) -> tuple[str, str, str, str]:
    """``"create batch/jobs"``, ``"create pods/exec"``, ``"list pods"`` -> (verb, group, resource, subresource).

    ``X/Y`` is group/resource when X is an API group the emulator serves (or has a dot), else
    resource/subresource; ``group/resource/subresource`` is accepted too. ``*`` matches any verb.
    """
    parts = text.split()
    if len(parts) != 2 or not parts[1].strip("/"):
        raise ValueError(f"deny: {text!r} is not 'VERB [GROUP/]RESOURCE[/SUBRESOURCE]' (e.g. 'create batch/jobs')")
    verb, path = parts[0].lower(), parts[1].strip("/").split("/")
    if len(path) == 3:
        return verb, path[0], path[1], path[2]
    if len(path) == 2 and (path[0] in GROUPS or "." in path[0]) and path[0] not in CORE_RESOURCE_NAMES:
        return verb, path[0], path[1], ""
    if len(path) == 2:
        return verb, "", path[0], path[1]
    return verb, "", path[0], ""


def request_attributes(method: str, path: str, watch: bool) -> Attributes | None:
    """The RBAC attributes of a REST request; None for non-resource paths (discovery, control)."""
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, rest = "", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, rest = parts[1], parts[3:]
    else:
        return None
    if not rest:
        return None
    namespace = ""
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    elif rest[0] == "namespaces" and len(rest) == 2:
        namespace = rest[1]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if method == "GET":
        verb = ("watch" if watch else "list") if not name else "get"
    elif method == "POST":
        verb = "create"
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    elif method == "PUT":
        verb = "update"
    elif method == "PATCH":
        verb = "patch"
    else:
        verb = method.lower()
    verb = SUBRESOURCE_VERBS.get(subresource, verb)
    return Attributes(verb, group, resource, subresource, namespace, name)


class Rbac:
    """ServiceAccounts (core), Roles and RoleBindings (in ``cluster.objects``), tokens and decisions."""

    def __init__(self, cluster: Any, admin_token: str) -> None:
        self.cluster = cluster
        self.admin_token = admin_token
        self.tokens: dict[str, tuple[str, str, str]] = {}
        """Token -> (namespace, ServiceAccount name, ServiceAccount uid)."""
        self.issued: dict[str, str] = {}
        """ServiceAccount uid -> its token (the one mounted into its pods)."""

    def on_namespace(self, name: str) -> None:
        if (name, "default") not in self.cluster.objects.get("serviceaccounts", {}):
            self.create_service_account(name, {"metadata": {"name": "default"}})

    # -- ServiceAccounts ---------------------------------------------------------------------------
    def create_service_account(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        fields = {k: copy.deepcopy(body[k]) for k in ("automountServiceAccountToken", "imagePullSecrets", "secrets")
                  if k in body}
        with self.cluster.lock:
            obj = self.cluster.add_object("serviceaccounts", "ServiceAccount", "v1", namespace, body, fields)
            token = SA_TOKEN_PREFIX + secrets.token_urlsafe(24)
            self.tokens[token] = (namespace, obj["metadata"]["name"], obj["metadata"]["uid"])
            self.issued[obj["metadata"]["uid"]] = token
            return obj

    def delete_service_account(self, namespace: str, name: str) -> dict[str, Any]:
        with self.cluster.lock:
            obj = self.cluster.remove_object("serviceaccounts", namespace, name)
            token = self.issued.pop(obj["metadata"]["uid"], None)
            self.tokens.pop(token or "", None)
            return obj

    def token_for(self, namespace: str, name: str) -> str:
        """The token of an existing ServiceAccount (404 ``serviceaccounts "NAME" not found`` otherwise)."""
        with self.cluster.lock:
            obj = self.cluster.objects.get("serviceaccounts", {}).get((namespace, name))
            if obj is None:
                raise not_found("serviceaccounts", name)
            return self.issued[obj["metadata"]["uid"]]

    # -- Roles and RoleBindings --------------------------------------------------------------------
    def create_role(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        name = str((body.get("metadata") or {}).get("name", ""))
        rules = body.get("rules") or []
        if not isinstance(rules, list):
            raise invalid("Role", name, "rules: must be a list")
        for index, rule in enumerate(rules):
            if not isinstance(rule, Mapping) or not rule.get("verbs"):
                raise invalid("Role", name, f"rules[{index}].verbs: Required value")
            if not rule.get("apiGroups"):
                raise invalid("Role", name, f"rules[{index}].apiGroups: Required value: resource rules must "
                                            "supply at least one api group")
            if not rule.get("resources"):
                raise invalid("Role", name, f"rules[{index}].resources: Required value (nonResourceURLs are "
                                            "not emulated)")
        return self.cluster.add_object("roles", "Role", RBAC_API, namespace, body, {"rules": copy.deepcopy(rules)})

    def create_binding(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        name = str((body.get("metadata") or {}).get("name", ""))
        ref = body.get("roleRef")
        if not isinstance(ref, Mapping) or not ref.get("name") or ref.get("kind") not in ("Role", "ClusterRole"):
            raise invalid("RoleBinding", name, "roleRef: Required value (kind Role or ClusterRole, name)")
        subjects = body.get("subjects") or []
        for index, subject in enumerate(subjects):
            if not isinstance(subject, Mapping) or not subject.get("kind") or not subject.get("name"):
                raise invalid("RoleBinding", name, f"subjects[{index}]: kind and name are required")
        ref = {"apiGroup": "rbac.authorization.k8s.io", **ref}
        return self.cluster.add_object("rolebindings", "RoleBinding", RBAC_API, namespace, body,
                                       {"roleRef": ref, "subjects": copy.deepcopy(subjects)})

    # -- pods' ServiceAccounts (admission and the token volume) ------------------------------------
    def admit_pod(self, namespace: str, name: str, spec: dict[str, Any]) -> str | None:
        """The ServiceAccount admission (cluster lock held): it must exist; its token is mounted unless opted out.

        Returns the account whose token the pod gets (None: no token). Only pods that NAME a
        ServiceAccount get one (and the API proxy): the emulator's sandbox pods stay without.
        """
        account = spec.get("serviceAccountName") or spec.get("serviceAccount")
        if not account:
            return None
        found = self.cluster.objects.get("serviceaccounts", {}).get((namespace, account))
        if found is None:
            raise ApiError(403, "Forbidden", f'pods "{name}" is forbidden: error looking up service account '
                                             f'{namespace}/{account}: serviceaccount "{account}" not found',
                           {"name": name, "kind": "pods"})
        spec["serviceAccountName"] = spec["serviceAccount"] = account
        automount = spec.get("automountServiceAccountToken")
        if automount is None:
            automount = found.get("automountServiceAccountToken") is not False
        if not automount:
            return None
        volume = f"kube-api-access-{secrets.token_hex(3)[:5]}"
        spec.setdefault("volumes", []).append({"name": volume, "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1",
                                                                          "fieldPath": "metadata.namespace"}}]}}]}})
        spec["containers"][0].setdefault("volumeMounts", []).append(
            {"name": volume, "readOnly": True, "mountPath": SA_MOUNT})
        return str(account)

    def pod_credentials(self, namespace: str, account: str | None, access: Any) -> tuple[dict[str, str], dict[str, bytes]]:
        """(env, files) that give a pod its ServiceAccount token and the API's in-pod address.

        ``access`` is the cluster's ``InClusterAccess`` (its CA); None leaves out ``ca.crt`` and the variables.
        """
        if account is None:
            return {}, {}
        files = {f"{SA_MOUNT}/token": self.token_for(namespace, account).encode(),
                 f"{SA_MOUNT}/namespace": namespace.encode()}
        if access is None:
            return {}, files
        from pytest_cloudeval.testing.k8s_emulator.api_proxy import PORT_IN_POD

        files[f"{SA_MOUNT}/ca.crt"] = access.ca_pem
        port = str(PORT_IN_POD)
        return ({"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": port,
                 "KUBERNETES_SERVICE_PORT_HTTPS": port}, files)

    # -- decisions ---------------------------------------------------------------------------------
    def identify(self, authorization: str | None) -> Identity:
        """The identity behind an ``Authorization`` header; ApiError 401 for none or an unknown token."""
        token = ""
        if authorization and authorization.lower().startswith("bearer "):
            token = authorization[7:].strip()
        if token and secrets.compare_digest(token, self.admin_token):
            return Identity(ADMIN_USER)
        with self.cluster.lock:
            found = self.tokens.get(token) if token else None
        if found is None:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        return Identity(f"system:serviceaccount:{found[0]}:{found[1]}", (found[0], found[1]))

    def decide(self, identity: Identity, attrs: Attributes) -> tuple[bool, str]:
        """(allowed, reason) for ``identity`` doing ``attrs``."""
        if identity.admin:
            for permission in self.cluster.faults.deny:
                verb, group, resource, sub = parse_permission(permission)
                if verb in ("*", attrs.verb) and (group, resource, sub) == (attrs.group, attrs.resource,
                                                                            attrs.subresource):
                    return False, f"denied by the emulator's deny fault ({permission!r})"
            return True, "the kubeconfig's user is the emulator's admin"
        assert identity.service_account is not None
        sa_namespace, sa_name = identity.service_account
        if not attrs.namespace:
            return False, "ServiceAccounts get namespaced Roles only (no ClusterRoles in the emulator)"
        with self.cluster.lock:
            bindings = [b for (ns, _), b in self.cluster.objects.get("rolebindings", {}).items()
                        if ns == attrs.namespace]
            roles = self.cluster.objects.get("roles", {})
            for binding in bindings:
                if not any(s.get("kind") == "ServiceAccount" and s.get("name") == sa_name
                           and s.get("namespace", binding["metadata"]["namespace"]) == sa_namespace
                           for s in binding.get("subjects") or []):
                    continue
                ref = binding["roleRef"]
                role = roles.get((attrs.namespace, ref["name"])) if ref.get("kind") == "Role" else None
                for rule in (role or {}).get("rules") or []:
                    if _rule_allows(rule, attrs):
                        return True, (f'RBAC: allowed by RoleBinding "{binding["metadata"]["name"]}/'
                                      f'{attrs.namespace}" of Role "{ref["name"]}" to ServiceAccount '
                                      f'"{sa_name}/{sa_namespace}"')
        return False, ""

    def forbidden(self, identity: Identity, attrs: Attributes) -> ApiError:
        """The 403 ``Status`` the real API server answers (kind, name and message in its words)."""
        resource = attrs.resource if not attrs.group else f"{attrs.resource}.{attrs.group}"
        subject = f'{resource} "{attrs.name}"' if attrs.name else resource
        message = f'{subject} is forbidden: User "{identity.user}" {attrs.describe()}'
        details: dict[str, Any] = {"kind": attrs.resource}
        if attrs.name:
            details["name"] = attrs.name
        if attrs.group:
            details["group"] = attrs.group
        return ApiError(403, "Forbidden", message, details)

    def review(self, identity: Identity, body: Mapping[str, Any]) -> dict[str, Any]:
        """Answer a SelfSubjectAccessReview (``spec.resourceAttributes`` or ``nonResourceAttributes``)."""
        spec = body.get("spec") or {}
        wanted = spec.get("resourceAttributes")
        if wanted:
            attrs = Attributes(str(wanted.get("verb") or ""), str(wanted.get("group") or ""),
                               str(wanted.get("resource") or ""), str(wanted.get("subresource") or ""),
                               str(wanted.get("namespace") or ""), str(wanted.get("name") or ""))
            if not attrs.verb or not attrs.resource:
                raise invalid("SelfSubjectAccessReview", "", "spec.resourceAttributes: verb and resource are required")
            allowed, reason = self.decide(identity, attrs)
        elif spec.get("nonResourceAttributes"):
            allowed, reason = True, "non-resource URLs are open to every authenticated user in the emulator"
        else:
            raise invalid("SelfSubjectAccessReview", "", "spec: exactly one of resourceAttributes or "
                                                         "nonResourceAttributes is required")
        status: dict[str, Any] = {"allowed": allowed}
        if reason:
            status["reason"] = reason
        if not allowed and identity.admin and reason:
            status["denied"] = True
        return {"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
                "metadata": {"creationTimestamp": None}, "spec": copy.deepcopy(dict(spec)), "status": status}


def _rule_allows(rule: Mapping[str, Any], attrs: Attributes) -> bool:
    verbs = rule.get("verbs") or []
    if "*" not in verbs and attrs.verb not in verbs:
        return False
    groups = rule.get("apiGroups") or [""]
    if "*" not in groups and attrs.group not in groups:
        return False
    wanted = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    resources = rule.get("resources") or []
    if not ("*" in resources or wanted in resources
            or (attrs.subresource and f"*/{attrs.subresource}" in resources)):
        return False
    names = rule.get("resourceNames") or []
    return not names or (bool(attrs.name) and attrs.name in names)
