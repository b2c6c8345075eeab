"""Talking to the cluster: clients from a kubeconfig, the task pod's manifest, start-up waits that
explain themselves with the pod's events, the run's deny-all NetworkPolicy, and label sweeps.

The ``kubernetes`` SDK is imported lazily (the ``k8s`` extra). One ``Configuration`` per process and
one ``ApiClient`` (``k8s_rest.Rest``: JSON in and out, no generated API classes) per process for
plain requests; exec streams open websockets of their own (``k8s_exec``), patching no shared client.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import SandboxError
from .k8s_config import K8sConfig
from .k8s_rest import Rest

LABEL = "cloudeval"
RUN_LABEL = "cloudeval.run"
POLICY_NAME_PREFIX = "cloudeval-deny-all-"
NO_NETWORK_LABEL = "cloudeval.network"
KEEPALIVE = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"
"""PID 1 of a task pod: exits at once on SIGTERM, and its ``wait`` reaps orphans re-parented to it.
Given as ``args`` (the image's ENTRYPOINT, e.g. a boot script that execs "$@", still runs), the way the
Docker sandbox overrides only the image's CMD."""

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
_lock = threading.Lock()
_configs: dict[tuple[str | None, str | None], tuple[Any, str]] = {}


def configuration(cfg: K8sConfig) -> tuple[Any, str]:
    """The SDK Configuration for the kubeconfig/context, and the context's namespace (cached)."""
    key = (cfg.kubeconfig, cfg.context)
    with _lock:
        found = _configs.get(key)
        if found is not None:
            return found
    from kubernetes import client, config

    conf = client.Configuration()
    if in_cluster(cfg):
        try:
            config.load_incluster_config(client_configuration=conf)
            namespace = Path(SERVICE_ACCOUNT_DIR, "namespace").read_text(encoding="utf-8").strip() or "default"
        except Exception as e:  # noqa: BLE001 - ConfigException, unreadable token
            raise SandboxError(f"cannot use the pod's in-cluster Kubernetes access: {e}") from e
        with _lock:
            _configs[key] = (conf, namespace)
        return conf, namespace
    try:
        config.load_kube_config(config_file=cfg.kubeconfig, context=cfg.context, client_configuration=conf)
        _contexts, active = config.list_kube_config_contexts(config_file=cfg.kubeconfig)
        if cfg.context:
            active = next((c for c in _contexts if c.get("name") == cfg.context), active)
        namespace = ((active or {}).get("context") or {}).get("namespace") or "default"
    except Exception as e:  # noqa: BLE001 - ConfigException, missing file, bad YAML
        where = cfg.kubeconfig or "$KUBECONFIG or ~/.kube/config"
        raise SandboxError(f"cannot load the kubeconfig {where}"
                           f"{f' (context {cfg.context})' if cfg.context else ''}: {e}") from e
    with _lock:
        _configs[key] = (conf, namespace)
    return conf, namespace


def in_cluster(cfg: K8sConfig) -> bool:
    """Whether to use the pod's own access (as ``kubectl`` and the client do): no kubeconfig named, none
    at $KUBECONFIG or ~/.kube/config, and the ServiceAccount token and ``KUBERNETES_SERVICE_HOST``
    present (a ``--cloud=gke`` worker pod running ``--sandbox=k8s``)."""
    if cfg.kubeconfig or cfg.context or os.environ.get("KUBECONFIG") or Path("~/.kube/config").expanduser().exists():
        return False
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and Path(SERVICE_ACCOUNT_DIR, "token").is_file()


def api_client(cfg: K8sConfig) -> Any:
    from kubernetes import client

    return client.ApiClient(configuration(cfg)[0])


_rests: dict[tuple[str | None, str | None], Rest] = {}


def rest(cfg: K8sConfig) -> Rest:
    """The process's REST client for the kubeconfig/context (one pooled ``ApiClient``, shared by threads)."""
    key = (cfg.kubeconfig, cfg.context)
    with _lock:
        found = _rests.get(key)
    if found is None:
        made = Rest(api_client(cfg))
        with _lock:
            found = _rests.setdefault(key, made)
    return found


def namespace_of(cfg: K8sConfig) -> str:
    return cfg.namespace or configuration(cfg)[1]


def label_value(text: str) -> str:
    """A valid label value (63 chars of [A-Za-z0-9_.-], alphanumeric ends) from any text."""
    value = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:63].strip("-_.")
    return value or "x"


def pod_name(name: str) -> str:
    value = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    if len(value) > 63:
        import hashlib

        value = value[:54].rstrip("-") + "-" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return value or "cloudeval"


def describe_error(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    status = getattr(exc, "status", None)
    if body:
        import json

        try:
            message = json.loads(body).get("message")
        except (ValueError, AttributeError):
            message = None
        return f"{status} {message or body!s}"[:800]
    return str(exc)[:800] or type(exc).__name__


def call(what: str, fn: Any, *, passthrough_404: bool = False, retries: int = 3) -> Any:
    """An API call retried on connection trouble and 5xx/429; other refusals -> SandboxError."""
    from kubernetes.client.exceptions import ApiException

    delay = 0.2
    for attempt in range(retries + 1):
        try:
            return fn()
        except ApiException as e:
            if e.status == 404 and passthrough_404:
                raise
            if attempt < retries and (e.status in (429, 500, 502, 503, 504) or e.status == 0):
                time.sleep(delay)
                delay *= 3
                continue
            raise SandboxError(f"Kubernetes API: {what} failed: {describe_error(e)}") from e
        except (OSError, Exception) as e:  # urllib3 errors (connection refused, timeouts)
            if type(e).__module__.startswith("kubernetes"):
                raise
            if attempt < retries:
                time.sleep(delay)
                delay *= 3
                continue
            raise SandboxError(f"Kubernetes API: {what} failed (is the cluster reachable?): {e}") from e
    raise AssertionError("unreachable")


def pod_manifest(*, name: str, image: str, labels: Mapping[str, str], annotations: Mapping[str, str],
                 cpus: float | None, memory_mb: int | None, gpus: int, workdir: str | None,
                 deadline_s: int, cfg: K8sConfig) -> dict[str, Any]:
    """The task pod: every security setting spelled out, no environment (secrets go by exec stdin)."""
    limits: dict[str, str] = {}
    if cpus:
        limits["cpu"] = f"{int(round(cpus * 1000))}m"
    if memory_mb:
        limits["memory"] = f"{int(memory_mb)}Mi"
    if gpus:
        limits["nvidia.com/gpu"] = str(int(gpus))
    container: dict[str, Any] = {
        "name": "task", "image": image, "args": ["sh", "-c", KEEPALIVE],
        "imagePullPolicy": "IfNotPresent", "stdin": False, "tty": False,
        "resources": {"requests": dict(limits), "limits": dict(limits)},
        "securityContext": {"privileged": False, "allowPrivilegeEscalation": False},
    }
    if workdir:
        container["workingDir"] = workdir
    spec: dict[str, Any] = {
        "restartPolicy": "Never", "automountServiceAccountToken": False, "enableServiceLinks": False,
        "hostNetwork": False, "hostPID": False, "hostIPC": False, "terminationGracePeriodSeconds": 5,
        "activeDeadlineSeconds": int(deadline_s), "containers": [container],
    }
    if cfg.node_selector:
        spec["nodeSelector"] = dict(cfg.node_selector)
    if cfg.tolerations:
        spec["tolerations"] = [dict(t) for t in cfg.tolerations]
    if cfg.runtime_class:
        spec["runtimeClassName"] = cfg.runtime_class
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": dict(labels), "annotations": dict(annotations)}, "spec": spec}


def deny_all_policy(run_id: str) -> dict[str, Any]:
    run = label_value(run_id)
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": pod_name(POLICY_NAME_PREFIX + run), "labels": {LABEL: "true", RUN_LABEL: run}},
            "spec": {"podSelector": {"matchLabels": {RUN_LABEL: run, NO_NETWORK_LABEL: "none"}},
                     "policyTypes": ["Ingress", "Egress"], "ingress": [], "egress": []}}


_policies: set[tuple[str, str]] = set()
_policy_lock = threading.Lock()


def ensure_deny_all(cfg: K8sConfig, namespace: str, run_id: str) -> None:
    """Create the run's deny-all policy once per process (idempotent across workers: 409 is fine)."""
    from kubernetes.client.exceptions import ApiException

    key = (namespace, run_id)
    with _policy_lock:
        if key in _policies:
            return
        body = deny_all_policy(run_id)
        api = rest(cfg)
        try:
            call("create the deny-all NetworkPolicy",
                 lambda: api.create_network_policy(namespace, body), passthrough_404=True)
        except SandboxError as e:
            cause = e.__cause__
            if not (isinstance(cause, ApiException) and cause.status == 409):
                raise
        _policies.add(key)


def pod_events(cfg: K8sConfig, namespace: str, name: str) -> list[str]:
    try:
        events = rest(cfg).list_events(namespace, f"involvedObject.name={name}")
    except Exception:  # noqa: BLE001 - best effort, for an error message
        return []
    events.sort(key=lambda e: str(e.get("lastTimestamp") or e.get("firstTimestamp") or ""))
    return [f"{e.get('type')} {e.get('reason')}: {e.get('message')}" for e in events]


def explain_pending(pod: Mapping[str, Any]) -> str:
    """What keeps a pod from running, from its status (waiting reasons, scheduling conditions)."""
    status = pod.get("status") or {}
    parts = []
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            parts.append(f"unschedulable: {cond.get('message') or cond.get('reason')}")
    for cs in status.get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason") not in (None, "ContainerCreating"):
            parts.append(f"{waiting.get('reason')}: {waiting.get('message') or ''}".strip())
    if status.get("reason"):
        parts.append(f"{status['reason']}: {status.get('message') or ''}")
    return "; ".join(parts) or f"phase {status.get('phase')}"


def sweep(cfg: K8sConfig, run_id: str | None) -> tuple[int, list[str]]:
    """Delete (grace 0) the pods and policies labelled for ``run_id`` (every cloudeval one if None)."""
    namespace = namespace_of(cfg)
    selector = f"{LABEL}=true" + (f",{RUN_LABEL}={label_value(run_id)}" if run_id else "")
    api = rest(cfg)
    problems: list[str] = []
    pods = call("list pods", lambda: api.list_pods(namespace, selector))
    for pod in pods:
        name = pod["metadata"]["name"]
        try:
            api.delete_pod(namespace, name, grace_period_seconds=0)
        except Exception as e:  # noqa: BLE001
            if getattr(e, "status", None) != 404:
                problems.append(f"pod {name}: {describe_error(e)}")
    policies = call("list NetworkPolicies", lambda: api.list_network_policies(namespace, selector))
    for policy in policies:
        name = policy["metadata"]["name"]
        try:
            api.delete_network_policy(namespace, name)
        except Exception as e:  # noqa: BLE001
            if getattr(e, "status", None) != 404:
                problems.append(f"NetworkPolicy {name}: {describe_error(e)}")
    with _policy_lock:
        _policies.difference_update({k for k in _policies if run_id is None or k[1] == run_id})
    return len(pods) + len(policies) - len(problems), problems
