"""What the GKE provider asks the cluster for: names, labels, the worker Job, and the
ServiceAccount/Role/RoleBinding that lets worker pods make ``--sandbox=k8s`` task pods.

Pure functions (no client, no I/O), unit-tested. Worker objects carry ``cloudeval.workers=true``,
never the sandbox's ``cloudeval=true``: a sandbox sweep (``--cleanup --sandbox=k8s``, the end of a
worker's session) can then never delete the pod it runs in.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

MARKER_LABEL = "cloudeval.workers"
MARKER_VALUE = "true"
RUN_LABEL = "cloudeval.run"
POOL_LABEL = "cloudeval.pool"
WORKER_LABEL = "cloudeval.worker"
CONTAINER = "worker"
MAX_JOB_NAME = 52
"""A Job's pods are named ``<job>-<5 random>``; 52 keeps every name a valid 63-character label."""
KEEPALIVE = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"
"""PID 1 of a worker pod: exits at once on SIGTERM (fast deletes), and reaps orphans."""
SPOT_KEY = "cloud.google.com/gke-spot"


def label_value(text: str) -> str:
    """A valid label value (63 characters of [A-Za-z0-9_.-], alphanumeric ends) from any text."""
    value = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)
    if len(value) > 63:
        value = value[:54] + "-" + hashlib.sha256(text.encode()).hexdigest()[:8]
    return value.strip("-_.") or "x"


def dns_name(prefix: str, ident: str, suffix: str, limit: int = MAX_JOB_NAME) -> str:
    """``<prefix>-<ident><suffix>`` as a DNS-1123 label of at most ``limit`` characters."""
    base = re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]+", "-", f"{prefix}-{ident}".lower())).strip("-")
    room = limit - len(suffix)
    if len(base) > room:
        base = base[: room - 7].rstrip("-") + "-" + hashlib.sha256(ident.encode()).hexdigest()[:6]
    return base + suffix


def worker_names(run_id: str, count: int, pool: str | None = None) -> list[str]:
    """The Jobs of a run (``cew-<run id>-<i>``) or of a warm pool (``cew-pool-<pool>-<i>``)."""
    if pool:
        return [dns_name("cew-pool", pool, f"-{i}") for i in range(count)]
    return [dns_name("cew", run_id, f"-{i}") for i in range(count)]


def replacement_name(name: str, generation: int) -> str:
    """The Job that replaces the lost worker ``name`` (``cew-run-3`` -> ``cew-run-3-r1``)."""
    suffix = f"-r{generation}"
    base = re.sub(r"-r\d+$", "", name)
    return base[: MAX_JOB_NAME - len(suffix)].rstrip("-") + suffix


def rbac_name(run_id: str) -> str:
    """The ServiceAccount, Role and RoleBinding of a run's worker pods (``--sandbox=k8s``)."""
    return dns_name("cew-sandbox", run_id, "", limit=63)


def run_labels(run_id: str, pool: str | None) -> dict[str, str]:
    labels = {MARKER_LABEL: MARKER_VALUE, RUN_LABEL: label_value(run_id)}
    if pool:
        labels[POOL_LABEL] = label_value(pool)
    return labels


def selector(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def worker_job(*, name: str, image: str, labels: Mapping[str, str], cpu: str, memory: str,
               deadline_s: int, ttl_s: int, node_selector: Mapping[str, str] = {},
               tolerations: Sequence[Mapping[str, Any]] = (), spot: bool = False,
               service_account: str | None = None, runtime_class: str | None = None) -> dict[str, Any]:
    """The batch/v1 Job of one worker pod: never restarted (``backoffLimit 0``, ``restartPolicy
    Never``), ended by ``activeDeadlineSeconds`` even if nobody deletes it, removed by the cluster
    ``ttl_s`` after it ended. Never privileged; a ServiceAccount token is mounted only when
    ``service_account`` is given (the worker then makes ``--sandbox=k8s`` pods). No environment:
    secrets reach workers with their settings over the exec stream, never through the API server."""
    pod_labels = {**labels, WORKER_LABEL: name}
    selector_map = dict(node_selector)
    toleration_list = [dict(t) for t in tolerations]
    if spot:
        selector_map[SPOT_KEY] = "true"
        if not any(t.get("key") == SPOT_KEY for t in toleration_list):
            toleration_list.append({"key": SPOT_KEY, "operator": "Equal", "value": "true", "effect": "NoSchedule"})
    container: dict[str, Any] = {
        "name": CONTAINER, "image": image, "args": ["sh", "-c", KEEPALIVE], "imagePullPolicy": "IfNotPresent",
        "stdin": False, "tty": False,
        "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory}},
        "securityContext": {"privileged": False, "allowPrivilegeEscalation": False},
    }
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never", "enableServiceLinks": False, "hostNetwork": False, "hostPID": False,
        "hostIPC": False, "terminationGracePeriodSeconds": 5, "activeDeadlineSeconds": int(deadline_s),
        "automountServiceAccountToken": service_account is not None, "containers": [container],
    }
    if service_account:
        pod_spec["serviceAccountName"] = service_account
    if selector_map:
        pod_spec["nodeSelector"] = selector_map
    if toleration_list:
        pod_spec["tolerations"] = toleration_list
    if runtime_class:
        pod_spec["runtimeClassName"] = runtime_class
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "labels": dict(pod_labels)},
        "spec": {"backoffLimit": 0, "completions": 1, "parallelism": 1,
                 "activeDeadlineSeconds": int(deadline_s), "ttlSecondsAfterFinished": int(ttl_s),
                 "template": {"metadata": {"labels": pod_labels}, "spec": pod_spec}},
    }


SANDBOX_RULES: tuple[dict[str, Any], ...] = (
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "get", "list", "watch", "patch",
                                                         "delete", "deletecollection"]},
    {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create", "get"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"],
     "verbs": ["create", "get", "list", "delete"]},
)
"""What a worker pod's ServiceAccount may do in the namespace: run task pods (and read why one did
not start), and the run's deny-all NetworkPolicy for tasks without network. Nothing else."""


def sandbox_rbac(run_id: str, labels: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(ServiceAccount, Role, RoleBinding) for the worker pods of ``--sandbox=k8s`` runs."""
    name = rbac_name(run_id)
    meta = {"name": name, "labels": dict(labels)}
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": dict(meta)}
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": dict(meta),
            "rules": [dict(rule) for rule in SANDBOX_RULES]}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": dict(meta),
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
               "subjects": [{"kind": "ServiceAccount", "name": name}]}
    return account, role, binding
