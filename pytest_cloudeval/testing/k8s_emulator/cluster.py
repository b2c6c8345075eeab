"""The emulated cluster's state: namespaces, pods (each a Docker container), events, NetworkPolicies.

One lock guards every object; a history of changes (for watches) bumps one resourceVersion counter.
A pod is brought up by its own thread (start delay, scheduling against the node's capacity, image
pull with back-off, container create) and watched by one monitor thread (container exits,
``activeDeadlineSeconds``). The node is one: ``emulator-node``, with a configurable capacity.
"""

from __future__ import annotations

import copy
import random
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_cloudeval.testing.k8s_emulator import api_proxy, docker_pods
from pytest_cloudeval.testing.k8s_emulator.faults import Faults
from pytest_cloudeval.testing.k8s_emulator.resources import (
    already_exists,
    check_name,
    invalid,
    not_found,
    now_rfc3339,
    quantity,
    selector_matches,
)

NODE_NAME = "emulator-node"
NODE_LABELS = {"kubernetes.io/hostname": NODE_NAME, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
PULL_BACKOFF_S = (1.0, 2.0, 4.0, 8.0)
MONITOR_S = 0.25


@dataclass
class PodRecord:
    obj: dict[str, Any]
    container_id: str | None = None
    network: bool = True
    deleted: bool = False
    scheduled_at: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    token_of: str | None = None
    """The ServiceAccount whose token (and the in-cluster address) the pod gets, if any."""
    proxy_id: str | None = None
    """The pod's API proxy container (``api_proxy.py``), when it has one."""


@dataclass(frozen=True)
class InClusterAccess:
    """How pods reach the API: ``https://127.0.0.1:443`` in the pod, through ``api_proxy`` to the TLS listener."""

    ca_pem: bytes
    socket_path: Path
    proxy_image: str



@dataclass(frozen=True)
class NodeCapacity:
    cpu: float = 64.0
    memory: float = 256 * 1024.0 ** 3
    gpus: int = 0


class Cluster:
    def __init__(self, state_label: str, capacity: NodeCapacity | None = None, faults: Faults | None = None,
                 log: Callable[[str], None] | None = None, admin_token: str | None = None) -> None:
        self.state_label = state_label
        self.capacity = capacity or NodeCapacity()
        self.faults = faults or Faults()
        self.log = log or (lambda line: None)
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.version = 1
        self.history: deque[tuple[int, str, str, dict[str, Any]]] = deque(maxlen=5000)
        self.namespaces: dict[str, dict[str, Any]] = {}
        self.pods: dict[tuple[str, str], PodRecord] = {}
        self.policies: dict[tuple[str, str], dict[str, Any]] = {}
        self.events: dict[tuple[str, str], dict[str, Any]] = {}
        self.objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        self.streams: dict[tuple[str, str], list[Callable[[], None]]] = {}
        self.in_cluster: InClusterAccess | None = None
        """Set by the emulator once its TLS listener runs."""
        """Open exec streams by pod: each entry cuts its stream (the drop-exec-streams fault)."""
        """Plain namespaced objects by resource (jobs, serviceaccounts, roles, rolebindings)."""
        self._stopping = threading.Event()
        self.extensions: list[Any] = []
        """Controllers and stores added by ``extend`` (jobs, RBAC): each may define ``on_namespace``."""
        for name in ("default", "kube-system"):
            self.create_namespace({"metadata": {"name": name}})
        from pytest_cloudeval.testing.k8s_emulator.jobs import JobController
        from pytest_cloudeval.testing.k8s_emulator.rbac import Rbac

        self.rbac = Rbac(self, admin_token or secrets.token_hex(16))
        self.extend(self.rbac)
        self.jobs = JobController(self)
        self._monitor = threading.Thread(target=self._watch_containers, name="k8s-emu-monitor", daemon=True)
        self._monitor.start()

    # -- bookkeeping -----------------------------------------------------------------------------
    def _bump(self, kind: str, kind_event: str, obj: dict[str, Any]) -> None:
        """Record a change (lock held): new resourceVersion, history entry, wake watchers."""
        self.version += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self.version)
        self.history.append((self.version, kind, kind_event, copy.deepcopy(obj)))
        self.changed.notify_all()

    def _new_meta(self, kind: str, meta: Mapping[str, Any], namespace: str | None) -> dict[str, Any]:
        name = meta.get("name")
        if not name and meta.get("generateName"):
            name = f"{meta['generateName']}{random_suffix()}"
        name = check_name(kind, name)
        labels = meta.get("labels") or {}
        if not isinstance(labels, Mapping) or not all(isinstance(v, str) for v in labels.values()):
            raise invalid(kind, name, "metadata.labels: values must be strings")
        out: dict[str, Any] = {"name": name, "uid": str(uuid.uuid4()), "creationTimestamp": now_rfc3339(),
                               "labels": dict(labels), "annotations": dict(meta.get("annotations") or {})}
        if namespace is not None:
            out["namespace"] = namespace
        for key in ("generateName", "ownerReferences", "finalizers"):
            if meta.get(key):
                out[key] = copy.deepcopy(meta[key])
        return out

    def require_namespace(self, namespace: str) -> None:
        if namespace not in self.namespaces:
            raise not_found("namespaces", namespace)

    # -- namespaces ------------------------------------------------------------------------------
    def create_namespace(self, body: Mapping[str, Any]) -> dict[str, Any]:
        with self.lock:
            meta = self._new_meta("Namespace", body.get("metadata") or {}, None)
            if meta["name"] in self.namespaces:
                raise already_exists("namespaces", meta["name"])
            obj = {"kind": "Namespace", "apiVersion": "v1", "metadata": meta, "spec": {"finalizers": ["kubernetes"]},
                   "status": {"phase": "Active"}}
            self.namespaces[meta["name"]] = obj
            self._bump("namespaces", "ADDED", obj)
            for extension in self.extensions:
                getattr(extension, "on_namespace", lambda name: None)(meta["name"])
            return copy.deepcopy(obj)

    def extend(self, extension: Any) -> None:
        """Add a controller or store (it sees the namespaces that exist, then each new one)."""
        with self.lock:
            self.extensions.append(extension)
            for name in list(self.namespaces):
                getattr(extension, "on_namespace", lambda name: None)(name)

    # -- plain namespaced objects (no controller of their own) -----------------------------------
    def add_object(self, resource: str, kind: str, api_version: str, namespace: str, body: Mapping[str, Any],
                   fields: Mapping[str, Any]) -> dict[str, Any]:
        """Store a new object of ``resource`` (lock held by the caller or not); ``fields`` are its body."""
        with self.lock:
            self.require_namespace(namespace)
            meta = self._new_meta(kind, body.get("metadata") or {}, namespace)
            store = self.objects.setdefault(resource, {})
            if (namespace, meta["name"]) in store:
                raise already_exists(resource, meta["name"])
            obj = {"kind": kind, "apiVersion": api_version, "metadata": meta, **copy.deepcopy(dict(fields))}
            store[(namespace, meta["name"])] = obj
            self._bump(resource, "ADDED", obj)
            return copy.deepcopy(obj)

    def get_object(self, resource: str, namespace: str, name: str) -> dict[str, Any]:
        with self.lock:
            obj = self.objects.get(resource, {}).get((namespace, name))
            if obj is None:
                raise not_found(resource, name)
            return copy.deepcopy(obj)

    def list_objects(self, resource: str, namespace: str | None) -> list[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(o) for (ns, _), o in self.objects.get(resource, {}).items()
                    if namespace in (None, ns)]

    def remove_object(self, resource: str, namespace: str, name: str) -> dict[str, Any]:
        with self.lock:
            obj = self.objects.get(resource, {}).pop((namespace, name), None)
            if obj is None:
                raise not_found(resource, name)
            self._bump(resource, "DELETED", obj)
            return copy.deepcopy(obj)

    def touch(self, resource: str, obj: dict[str, Any]) -> None:
        """Record a change made in place to a stored object (lock held)."""
        self._bump(resource, "MODIFIED", obj)

    def list_kind(self, resource: str, namespace: str | None) -> list[dict[str, Any]]:
        """Current objects of a watched resource (what a watch without resourceVersion starts with)."""
        if resource == "pods":
            return self.list_pods(namespace)
        if resource == "events":
            return self.list_events(namespace)
        if resource == "networkpolicies":
            return self.list_policies(namespace)
        if resource == "namespaces":
            with self.lock:
                return [copy.deepcopy(n) for n in self.namespaces.values()]
        return self.list_objects(resource, namespace)

    # -- events ----------------------------------------------------------------------------------
    def event(self, pod: Mapping[str, Any], reason: str, message: str, warning: bool = False,
              component: str | None = None) -> None:
        """Record an event about ``pod`` (or another object: its ``kind``/``apiVersion`` are used)."""
        meta = pod["metadata"]
        with self.lock:
            key = (meta["namespace"], f"{meta['uid']}:{reason}:{message}")
            stamp = now_rfc3339()
            found = self.events.get(key)
            if found is not None:
                found["count"] += 1
                found["lastTimestamp"] = stamp
                self._bump("events", "MODIFIED", found)
                return
            name = f"{meta['name']}.{uuid.uuid4().hex[:16]}"
            obj = {"kind": "Event", "apiVersion": "v1",
                   "metadata": {"name": name, "namespace": meta["namespace"], "uid": str(uuid.uuid4()),
                                "creationTimestamp": stamp},
                   "involvedObject": {"kind": pod.get("kind", "Pod"), "namespace": meta["namespace"],
                                      "name": meta["name"], "uid": meta["uid"],
                                      "apiVersion": pod.get("apiVersion", "v1")},
                   "reason": reason, "message": message, "type": "Warning" if warning else "Normal",
                   "source": {"component": component or ("kubelet" if reason not in ("Scheduled", "FailedScheduling")
                                                         else "default-scheduler"), "host": NODE_NAME},
                   "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
                   "reportingComponent": component or "kubelet", "reportingInstance": NODE_NAME}
            self.events[key] = obj
            self._bump("events", "ADDED", obj)

    def list_events(self, namespace: str | None) -> list[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(e) for (ns, _), e in self.events.items() if namespace in (None, ns)]

    # -- network policies ------------------------------------------------------------------------
    def create_policy(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.require_namespace(namespace)
            meta = self._new_meta("NetworkPolicy", body.get("metadata") or {}, namespace)
            if (namespace, meta["name"]) in self.policies:
                raise already_exists("networkpolicies.networking.k8s.io", meta["name"])
            spec = copy.deepcopy(body.get("spec") or {})
            if "podSelector" not in spec:
                raise invalid("NetworkPolicy", meta["name"], "spec.podSelector: Required value")
            obj = {"kind": "NetworkPolicy", "apiVersion": "networking.k8s.io/v1", "metadata": meta, "spec": spec}
            self.policies[(namespace, meta["name"])] = obj
            self._bump("networkpolicies", "ADDED", obj)
            return copy.deepcopy(obj)

    def get_policy(self, namespace: str, name: str) -> dict[str, Any]:
        with self.lock:
            obj = self.policies.get((namespace, name))
            if obj is None:
                raise not_found("networkpolicies.networking.k8s.io", name)
            return copy.deepcopy(obj)

    def list_policies(self, namespace: str | None) -> list[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(p) for (ns, _), p in self.policies.items() if namespace in (None, ns)]

    def delete_policy(self, namespace: str, name: str) -> dict[str, Any]:
        with self.lock:
            obj = self.policies.pop((namespace, name), None)
            if obj is None:
                raise not_found("networkpolicies.networking.k8s.io", name)
            self._bump("networkpolicies", "DELETED", obj)
            return copy.deepcopy(obj)

    def _isolated(self, namespace: str, labels: Mapping[str, str]) -> bool:
        """True when a policy selecting the pod denies all egress (containers then run ``network none``).

        Policies that allow some traffic are not enforced (an emulator of the deny-all case only).
        """
        for (ns, _), policy in self.policies.items():
            if ns != namespace:
                continue
            spec = policy["spec"]
            selector = spec.get("podSelector") or {}
            clauses = [(k, "=", [v]) for k, v in (selector.get("matchLabels") or {}).items()]
            for expr in selector.get("matchExpressions") or []:
                op = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}.get(
                    expr.get("operator"), "in")
                clauses.append((expr.get("key", ""), op, list(expr.get("values") or [])))
            if not selector_matches(clauses, labels):
                continue
            types = spec.get("policyTypes") or (["Ingress", "Egress"] if "egress" in spec else ["Ingress"])
            if "Egress" in types and not spec.get("egress"):
                return True
        return False

    # -- pods ------------------------------------------------------------------------------------
    def create_pod(self, namespace: str, body: Mapping[str, Any], refusable: bool = True) -> dict[str, Any]:
        """Admit and store a pod, then bring it up in its own thread.

        ``refusable=False`` for pods a controller (the Job controller) makes: the refuse-creates fault
        acts on API clients' creates.
        """
        if refusable:
            self.faults.check_create("pods", (body.get("metadata") or {}).get("name", ""))
        spec = copy.deepcopy(body.get("spec") or {})
        with self.lock:
            self.require_namespace(namespace)
            meta = self._new_meta("Pod", body.get("metadata") or {}, namespace)
            if (namespace, meta["name"]) in self.pods:
                raise already_exists("pods", meta["name"])
            containers = spec.get("containers") or []
            if len(containers) != 1 or not isinstance(containers[0], Mapping) or not containers[0].get("image"):
                raise invalid("Pod", meta["name"], "spec.containers: the emulator runs exactly one container "
                                                   "with an image per pod")
            if spec.get("initContainers"):
                raise invalid("Pod", meta["name"], "spec.initContainers: not supported by the emulator")
            for key in ("requests", "limits"):
                for res, value in ((containers[0].get("resources") or {}).get(key) or {}).items():
                    quantity(value, f"spec.containers[0].resources.{key}.{res}")
            container: dict[str, Any] = containers[0]  # type: ignore[assignment]
            container.setdefault("name", "main")
            container.setdefault("imagePullPolicy", "Always" if str(container["image"]).endswith(":latest")
                                 or ":" not in str(container["image"]).rsplit("/", 1)[-1] else "IfNotPresent")
            token_of = self.rbac.admit_pod(namespace, meta["name"], spec)
            spec.setdefault("restartPolicy", "Always")
            spec.setdefault("terminationGracePeriodSeconds", 30)
            spec.setdefault("dnsPolicy", "ClusterFirst")
            spec.setdefault("schedulerName", "default-scheduler")
            if spec["restartPolicy"] != "Never":
                # Only run-once pods are emulated (no restarts): say so instead of pretending.
                meta["annotations"]["emulator.cloudeval/restartPolicy"] = "containers are never restarted"
            obj = {"kind": "Pod", "apiVersion": "v1", "metadata": meta, "spec": spec,
                   "status": {"phase": "Pending", "qosClass": _qos(container), "conditions": [],
                              "containerStatuses": [_waiting(container, "ContainerCreating")]}}
            record = PodRecord(obj, token_of=token_of)
            self.pods[(namespace, meta["name"])] = record
            self._bump("pods", "ADDED", obj)
            answer = copy.deepcopy(obj)
        threading.Thread(target=self._bring_up, args=(record,), name=f"k8s-emu-pod-{meta['name']}",
                         daemon=True).start()
        return answer

    def get_pod(self, namespace: str, name: str) -> dict[str, Any]:
        with self.lock:
            record = self.pods.get((namespace, name))
            if record is None:
                raise not_found("pods", name)
            return copy.deepcopy(record.obj)

    def patch_pod(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """A merge patch of what a running pod lets change: labels, annotations, and
        ``spec.activeDeadlineSeconds`` (set, or lowered: never raised), as the API server allows."""
        meta, spec = patch.get("metadata") or {}, patch.get("spec") or {}
        if set(patch) - {"metadata", "spec", "apiVersion", "kind"} or set(meta) - {"labels", "annotations"} or \
                set(spec) - {"activeDeadlineSeconds"}:
            raise invalid("Pod", name, "spec: Forbidden: pod updates may not change fields other than "
                          "`spec.containers[*].image`, `spec.activeDeadlineSeconds`, labels and annotations "
                          "(the emulator patches these: metadata.labels, metadata.annotations, "
                          "spec.activeDeadlineSeconds)")
        with self.lock:
            record = self.pods.get((namespace, name))
            if record is None:
                raise not_found("pods", name)
            if "activeDeadlineSeconds" in spec:
                new, old = spec["activeDeadlineSeconds"], record.obj["spec"].get("activeDeadlineSeconds")
                if not isinstance(new, int) or isinstance(new, bool) or new <= 0:
                    raise invalid("Pod", name, "spec.activeDeadlineSeconds: Invalid value: must be a positive integer")
                if old is not None and new > old:
                    raise invalid("Pod", name, f"spec.activeDeadlineSeconds: Invalid value: {new}: must be less "
                                  f"than or equal to previous value ({old})")
                record.obj["spec"]["activeDeadlineSeconds"] = new
            for key in ("labels", "annotations"):
                for k, v in (meta.get(key) or {}).items():
                    if v is None:
                        record.obj["metadata"].setdefault(key, {}).pop(k, None)
                    elif not isinstance(v, str):
                        raise invalid("Pod", name, f"metadata.{key}: values must be strings")
                    else:
                        record.obj["metadata"].setdefault(key, {})[k] = v
            self._bump("pods", "MODIFIED", record.obj)
            return copy.deepcopy(record.obj)

    def record(self, namespace: str, name: str) -> PodRecord:
        with self.lock:
            record = self.pods.get((namespace, name))
            if record is None:
                raise not_found("pods", name)
            return record

    def list_pods(self, namespace: str | None) -> list[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(r.obj) for (ns, _), r in self.pods.items() if namespace in (None, ns)]

    def _update(self, record: PodRecord, **status: Any) -> None:
        with self.lock:
            if record.deleted and "phase" not in status:
                return
            record.obj["status"].update(status)
            self._bump("pods", "MODIFIED", record.obj)

    def _bring_up(self, record: PodRecord) -> None:
        obj = record.obj
        container = obj["spec"]["containers"][0]
        delay = self.faults.start_delay_s
        if delay:
            time.sleep(delay)
        if not self._schedule(record):
            return
        self._update(record, startTime=now_rfc3339(), hostIP="127.0.0.1")
        backoff = 0
        while not record.deleted and obj["status"]["phase"] == "Pending":
            self.event(obj, "Pulling", f'Pulling image "{container["image"]}"')
            try:
                docker_pods.ensure_image(container["image"], container.get("imagePullPolicy", "IfNotPresent"))
                break
            except docker_pods.PullFailed as e:
                message = f'Failed to pull image "{container["image"]}": {e}'
                self.event(obj, "Failed", message, warning=True)
                self.event(obj, "Failed", "Error: ErrImagePull", warning=True)
                self._update(record, containerStatuses=[_waiting(container, "ErrImagePull", message)])
                time.sleep(PULL_BACKOFF_S[min(backoff, len(PULL_BACKOFF_S) - 1)])
                backoff += 1
                if record.deleted or obj["status"]["phase"] != "Pending":
                    return
                self.event(obj, "BackOff", f'Back-off pulling image "{container["image"]}"', warning=True)
                self._update(record, containerStatuses=[_waiting(container, "ImagePullBackOff",
                                                                 f'Back-off pulling image "{container["image"]}"')])
        if record.deleted or obj["status"]["phase"] != "Pending":
            return
        self.event(obj, "Pulled", f'Container image "{container["image"]}" already present on machine')
        meta = obj["metadata"]
        with self.lock:
            record.network = not self._isolated(meta["namespace"], meta["labels"])
        labels = {docker_pods.LABEL: "k8s", docker_pods.STATE_LABEL: self.state_label,
                  "cloudeval.k8s.namespace": meta["namespace"], "cloudeval.k8s.pod": meta["name"],
                  "cloudeval.k8s.uid": meta["uid"]}
        name = docker_pods.container_name(meta["namespace"], meta["name"], meta["uid"])
        try:
            env, files = self.rbac.pod_credentials(meta["namespace"], record.token_of, self.in_cluster)
            network_mode = None
            if env and record.network and self.in_cluster is not None:
                proxy = api_proxy.start_sidecar(f"{name}-api", labels, record.network, meta["name"],
                                                self.in_cluster.socket_path, self.in_cluster.proxy_image)
                with record.lock:
                    record.proxy_id = proxy
                network_mode = f"container:{proxy}"
            with record.lock:
                if record.deleted:
                    self._remove_proxy(record)
                    return
                record.container_id = docker_pods.create(name, container, obj, labels, record.network,
                                                         network_mode=network_mode, env=env, files=files)
        except Exception as e:  # noqa: BLE001 - the engine's words become the pod's status
            self._remove_proxy(record)
            message = str(getattr(e, "explanation", None) or e)
            self.event(obj, "Failed", f"Error: {message}", warning=True)
            self._update(record, phase="Failed", reason="CreateContainerError", message=message,
                         containerStatuses=[_waiting(container, "CreateContainerError", message)])
            return
        self.event(obj, "Created", f"Created container {container['name']}")
        self.event(obj, "Started", f"Started container {container['name']}")
        status = {"running": {"startedAt": now_rfc3339()}}
        self._update(record, phase="Running", podIP="127.0.0.1",
                     conditions=_conditions(True, True),
                     containerStatuses=[_status(container, status, ready=True, cid=record.container_id)])
        if record.deleted:
            docker_pods.remove(record.container_id, None)
            self._remove_proxy(record)

    def _remove_proxy(self, record: PodRecord) -> None:
        """Remove the pod's API proxy (after its container: they share its network namespace)."""
        proxy, record.proxy_id = record.proxy_id, None
        if proxy:
            try:
                docker_pods.remove(proxy, None)
            except Exception as e:  # noqa: BLE001
                self.log(f"k8s emulator: could not remove API proxy {proxy[:12]}: {e}")

    def _schedule(self, record: PodRecord) -> bool:
        """Wait until the pod fits the node (FailedScheduling events meanwhile); False if it went away."""
        obj = record.obj
        while not record.deleted and not self._stopping.is_set():
            with self.lock:
                why = self._misfit(record)
                if why is None:
                    record.scheduled_at = time.time()
                    obj["spec"]["nodeName"] = NODE_NAME
                    obj["status"]["conditions"] = _conditions(True, False)
                    self._bump("pods", "MODIFIED", obj)
            if why is None:
                self.event(obj, "Scheduled", f"Successfully assigned {obj['metadata']['namespace']}/"
                                             f"{obj['metadata']['name']} to {NODE_NAME}")
                return True
            message = f"0/1 nodes are available: {why}. preemption: 0/1 nodes are available: " \
                      "1 No preemption victims found for incoming pod."
            self.event(obj, "FailedScheduling", message, warning=True)
            with self.lock:
                if obj["status"].get("phase") != "Pending":
                    return False
                obj["status"]["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                                "message": message, "lastTransitionTime": now_rfc3339()}]
                self._bump("pods", "MODIFIED", obj)
            time.sleep(1.0)
        return False

    def _misfit(self, record: PodRecord) -> str | None:
        spec = record.obj["spec"]
        selector = spec.get("nodeSelector") or {}
        if any(NODE_LABELS.get(k) != v for k, v in selector.items()):
            return "1 node(s) didn't match Pod's node affinity/selector"
        want = _requests(spec["containers"][0])
        used = {"cpu": 0.0, "memory": 0.0, "nvidia.com/gpu": 0.0}
        for other in self.pods.values():
            if other is record or other.scheduled_at is None or other.deleted:
                continue
            if other.obj["status"].get("phase") not in ("Pending", "Running"):
                continue
            for key, value in _requests(other.obj["spec"]["containers"][0]).items():
                used[key] = used.get(key, 0.0) + value
        capacity = {"cpu": self.capacity.cpu, "memory": self.capacity.memory, "nvidia.com/gpu": self.capacity.gpus}
        short = [f"1 Insufficient {key}" for key, value in want.items() if used.get(key, 0) + value > capacity.get(key, 0)]
        return ", ".join(short) or None

    # -- deletion and failures -------------------------------------------------------------------
    def delete_pod(self, namespace: str, name: str, grace_s: float | None) -> dict[str, Any]:
        with self.lock:
            record = self.pods.get((namespace, name))
            if record is None:
                raise not_found("pods", name)
            obj = record.obj
            if grace_s is None:
                grace_s = float(obj["spec"].get("terminationGracePeriodSeconds", 30))
            if obj["status"].get("phase") in ("Succeeded", "Failed") or record.container_id is None:
                grace_s = 0
            record.deleted = True
            obj["metadata"]["deletionTimestamp"] = now_rfc3339(time.time() + grace_s)
            obj["metadata"]["deletionGracePeriodSeconds"] = int(grace_s)
            self._bump("pods", "MODIFIED", obj)
            answer = copy.deepcopy(obj)
        if not grace_s:
            # Forced: the object goes at once (like the API server), the kubelet's kill follows.
            with self.lock:
                if self.pods.get((namespace, name)) is record:
                    del self.pods[(namespace, name)]
                    self._bump("pods", "DELETED", record.obj)
        threading.Thread(target=self._finish_delete, args=(record, grace_s), daemon=True).start()
        return answer

    def _finish_delete(self, record: PodRecord, grace_s: float) -> None:
        with record.lock:
            cid = record.container_id
        if cid:
            try:
                docker_pods.remove(cid, grace_s)
            except Exception as e:  # noqa: BLE001
                self.log(f"k8s emulator: could not remove container {cid[:12]}: {e}")
        self._remove_proxy(record)
        meta = record.obj["metadata"]
        with self.lock:
            if self.pods.get((meta["namespace"], meta["name"])) is record:
                del self.pods[(meta["namespace"], meta["name"])]
                self._bump("pods", "DELETED", record.obj)

    def open_stream(self, namespace: str, name: str, cut: Callable[[], None]) -> Callable[[], None]:
        """Register an open exec stream of a pod; returns the function that unregisters it."""
        with self.lock:
            self.streams.setdefault((namespace, name), []).append(cut)

        def closed() -> None:
            with self.lock:
                found = self.streams.get((namespace, name), [])
                if cut in found:
                    found.remove(cut)
                if not found:
                    self.streams.pop((namespace, name), None)
        return closed

    def drop_exec_streams(self, namespace: str, name: str) -> int:
        """Cut every open exec stream of a pod now (like a node's kubelet or a proxy going away)."""
        with self.lock:
            cuts = list(self.streams.get((namespace, name), []))
        for cut in cuts:
            cut()
        return len(cuts)

    def evict(self, namespace: str, name: str, message: str = "The node was low on resource: memory.") -> None:
        """What a kubelet does under node pressure: kill the container, the pod Failed/Evicted."""
        record = self.record(namespace, name)
        self._terminate(record, "Evicted", message, exit_code=137)

    def _terminate(self, record: PodRecord, reason: str, message: str, exit_code: int) -> None:
        obj = record.obj
        cid = record.container_id
        container = obj["spec"]["containers"][0]
        state = {"terminated": {"exitCode": exit_code, "reason": "Error", "finishedAt": now_rfc3339()}}
        # The phase first, so no new exec is let in while the container goes.
        self._update(record, phase="Failed", reason=reason, message=message, conditions=_conditions(True, False),
                     containerStatuses=[_status(container, state, ready=False, cid=cid)])
        self.event(obj, reason, message, warning=True)
        with record.lock:
            if record.container_id:
                docker_pods.remove(record.container_id, None)
        self._remove_proxy(record)

    def _watch_containers(self) -> None:
        while not self._stopping.wait(MONITOR_S):
            try:
                self._check_containers()
            except Exception as e:  # noqa: BLE001 - an engine hiccup must not kill the monitor
                self.log(f"k8s emulator monitor: {e}")

    def _check_containers(self) -> None:
        with self.lock:
            live = [r for r in self.pods.values() if not r.deleted and r.obj["status"].get("phase") in
                    ("Pending", "Running")]
        if not live:
            return
        now = time.time()
        states: dict[str, dict[str, Any]] | None = None
        for record in live:
            deadline = record.obj["spec"].get("activeDeadlineSeconds")
            if deadline is not None and record.scheduled_at is not None and now - record.scheduled_at > float(deadline):
                self._terminate(record, "DeadlineExceeded",
                                f"Pod was active on the node longer than the specified deadline ({deadline}s)", 137)
                continue
            if record.container_id is None or record.obj["status"].get("phase") != "Running":
                continue
            if states is None:
                states = docker_pods.states(self.state_label)
            state = states.get(record.container_id)
            if state is not None and state["state"] == "running":
                continue
            if docker_pods.running(record.container_id):
                # The tick's listing is older than this container's start (it said "created" or
                # nothing): only the engine's current word that it stopped is an exit.
                continue
            code, oom, finished = docker_pods.exit_info(record.container_id)
            container = record.obj["spec"]["containers"][0]
            reason = "OOMKilled" if oom else ("Completed" if code == 0 else "Error")
            terminated = {"terminated": {"exitCode": code, "reason": reason, "finishedAt": finished or now_rfc3339(),
                                         "containerID": f"docker://{record.container_id}"}}
            self._update(record, phase="Succeeded" if code == 0 else "Failed", conditions=_conditions(True, False),
                         containerStatuses=[_status(container, terminated, ready=False, cid=record.container_id)])
            self._remove_proxy(record)

    def stop(self, remove_containers: bool = True) -> None:
        self._stopping.set()
        with self.lock:
            for record in self.pods.values():
                record.deleted = True
        if remove_containers:
            docker_pods.sweep(self.state_label)


def _requests(container: Mapping[str, Any]) -> dict[str, float]:
    resources = container.get("resources") or {}
    out: dict[str, float] = {}
    for key in ("cpu", "memory", "nvidia.com/gpu"):
        value = (resources.get("requests") or {}).get(key, (resources.get("limits") or {}).get(key))
        if value is not None:
            out[key] = quantity(value, f"resources.requests.{key}")
    return out


def _qos(container: Mapping[str, Any]) -> str:
    resources = container.get("resources") or {}
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    if not requests and not limits:
        return "BestEffort"
    if limits.get("cpu") and limits.get("memory") and requests.get("cpu", limits["cpu"]) == limits["cpu"] \
            and requests.get("memory", limits["memory"]) == limits["memory"]:
        return "Guaranteed"
    return "Burstable"


def _waiting(container: Mapping[str, Any], reason: str, message: str = "") -> dict[str, Any]:
    waiting: dict[str, Any] = {"reason": reason}
    if message:
        waiting["message"] = message
    return _status(container, {"waiting": waiting}, ready=False, cid=None)


def _status(container: Mapping[str, Any], state: dict[str, Any], ready: bool, cid: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": container["name"], "image": container["image"], "imageID": "", "ready": ready,
                           "restartCount": 0, "started": "running" in state, "state": state}
    if cid:
        out["containerID"] = f"docker://{cid}"
    return out


def _conditions(scheduled: bool, ready: bool) -> list[dict[str, Any]]:
    stamp = now_rfc3339()
    flag = "True" if ready else "False"
    return [{"type": "PodScheduled", "status": "True" if scheduled else "False", "lastTransitionTime": stamp},
            {"type": "Initialized", "status": "True", "lastTransitionTime": stamp},
            {"type": "ContainersReady", "status": flag, "lastTransitionTime": stamp},
            {"type": "Ready", "status": flag, "lastTransitionTime": stamp}]


_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def random_suffix(length: int = 5) -> str:
    """The five characters the API server appends to a ``generateName`` (same alphabet)."""
    return "".join(random.choice(_SUFFIX_ALPHABET) for _ in range(length))
