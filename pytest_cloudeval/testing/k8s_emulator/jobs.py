"""batch/v1 Jobs and their controller: each Job runs its pod template until one pod succeeds.

What is emulated (``completions``/``parallelism`` 1, the shape pytest-cloudeval's worker pods use):

- create: ``spec.template`` must be a one-container pod with ``restartPolicy`` ``Never`` or ``OnFailure``
  (containers are never restarted, so ``OnFailure`` behaves like ``Never``); the API fills
  ``spec.selector`` (``batch.kubernetes.io/controller-uid``), the template's labels (``job-name``,
  ``controller-uid`` and their ``batch.kubernetes.io/`` forms), ``backoffLimit`` (6) and the rest.
- the controller (one thread, every 0.25 s) keeps at most one active pod named ``<job>-<5 chars>``
  with an ``ownerReference`` to the Job (``controller: true``). A pod that ends ``Failed``, or that is
  deleted before it succeeded, counts as failed; past ``backoffLimit`` failures the Job ends
  ``Failed``/``BackoffLimitExceeded``, else a new pod is made at once (no back-off delay). One
  ``Succeeded`` pod completes the Job (``Complete``, ``completionTime``). ``activeDeadlineSeconds``
  (from ``startTime``) deletes the active pod and ends the Job ``Failed``/``DeadlineExceeded``.
  ``ttlSecondsAfterFinished`` deletes the Job and its pods that long after it finished.
  ``status.active/ready/succeeded/failed/terminating``, ``conditions`` and events (``SuccessfulCreate``,
  ``SuccessfulDelete``, ``Completed``, ``BackoffLimitExceeded``, ``DeadlineExceeded``) as the real one.
- delete with ``propagationPolicy``: ``Background`` (the Job goes, then its pods), ``Foreground``
  (the Job stays with a ``deletionTimestamp`` until its pods are gone), ``Orphan`` (pods stay, their
  ``ownerReferences`` removed). Like the real API, a Job deleted WITHOUT a policy orphans its pods
  (batch/v1's legacy default; ``kubectl delete`` asks for ``Background``).
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_cloudeval.testing.k8s_emulator.resources import ApiError, invalid, now_rfc3339

API_VERSION = "batch/v1"
RESOURCE = "jobs"
TICK_S = 0.25
POLICIES = ("Background", "Foreground", "Orphan")


@dataclass
class JobState:
    """The controller's bookkeeping for one Job (by uid): its pods and how each was counted."""

    pods: dict[str, str] = field(default_factory=dict)
    """Pod name -> ``active`` | ``succeeded`` | ``failed``."""
    started: float = 0.0
    finished: float | None = None


class JobController:
    """Stores Jobs in ``cluster.objects["jobs"]`` and reconciles them in a background thread."""

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster
        self.states: dict[str, JobState] = {}
        self._thread = threading.Thread(target=self._run, name="k8s-emu-jobs", daemon=True)
        self._thread.start()

    # -- API verbs ---------------------------------------------------------------------------------
    def create(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        cluster = self.cluster
        name = (body.get("metadata") or {}).get("name") or (body.get("metadata") or {}).get("generateName", "")
        cluster.faults.check_create(RESOURCE, name)
        spec = copy.deepcopy(body.get("spec") or {})
        template = spec.get("template")
        if not isinstance(template, Mapping) or not isinstance(template.get("spec"), Mapping):
            raise invalid("Job", str(name), "spec.template.spec: Required value")
        pod_spec = template["spec"]
        containers = pod_spec.get("containers") or []
        if len(containers) != 1 or not (containers[0] or {}).get("image"):
            raise invalid("Job", str(name), "spec.template.spec.containers: the emulator runs exactly one "
                                            "container with an image per pod")
        restart = pod_spec.get("restartPolicy")
        if restart not in ("Never", "OnFailure"):
            raise invalid("Job", str(name), f'spec.template.spec.restartPolicy: Required value: valid values: '
                                            f'"OnFailure", "Never" (got {restart!r})')
        for key in ("completions", "parallelism"):
            if spec.get(key, 1) != 1:
                raise invalid("Job", str(name), f"spec.{key}: the emulator runs Jobs of one pod (got {spec[key]!r})")
        for key in ("backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished"):
            value = spec.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0
                                      or (key == "activeDeadlineSeconds" and value == 0)):
                raise invalid("Job", str(name), f"spec.{key}: Invalid value: {value!r}: must be "
                                                f"{'greater than' if key == 'activeDeadlineSeconds' else 'greater than or equal to'} 0")
        with cluster.lock:
            cluster.require_namespace(namespace)
            meta = cluster._new_meta("Job", body.get("metadata") or {}, namespace)
            if (namespace, meta["name"]) in cluster.objects.get(RESOURCE, {}):
                raise ApiError(409, "AlreadyExists", f'jobs.batch "{meta["name"]}" already exists',
                               {"name": meta["name"], "group": "batch", "kind": "jobs"})
            uid = meta["uid"]
            owned = {"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": meta["name"],
                     "controller-uid": uid, "job-name": meta["name"]}
            template = copy.deepcopy(dict(template))
            template.setdefault("metadata", {})
            template["metadata"]["labels"] = {**(template["metadata"].get("labels") or {}), **owned}
            spec["template"] = template
            spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
            spec.setdefault("backoffLimit", 6)
            spec.setdefault("completions", 1)
            spec.setdefault("parallelism", 1)
            spec.setdefault("completionMode", "NonIndexed")
            spec.setdefault("suspend", False)
            spec.setdefault("manualSelector", False)
            spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
            meta["labels"] = {**meta["labels"], "batch.kubernetes.io/controller-uid": uid,
                              "batch.kubernetes.io/job-name": meta["name"], "controller-uid": uid,
                              "job-name": meta["name"]}
            obj = {"kind": "Job", "apiVersion": API_VERSION, "metadata": meta, "spec": spec,
                   "status": {"active": 0, "ready": 0, "succeeded": 0, "failed": 0, "terminating": 0,
                              "uncountedTerminatedPods": {}}}
            cluster.objects.setdefault(RESOURCE, {})[(namespace, meta["name"])] = obj
            self.states[uid] = JobState()
            cluster._bump(RESOURCE, "ADDED", obj)
            self._reconcile(obj)
            return copy.deepcopy(obj)

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        with self.cluster.lock:
            obj = self.cluster.objects.get(RESOURCE, {}).get((namespace, name))
            if obj is None:
                raise _job_not_found(name)
            return copy.deepcopy(obj)

    def list_jobs(self, namespace: str | None) -> list[dict[str, Any]]:
        return self.cluster.list_objects(RESOURCE, namespace)

    def delete(self, namespace: str, name: str, policy: str | None) -> dict[str, Any]:
        """Delete with ``propagationPolicy`` (None: Orphan, batch/v1's default for API clients)."""
        policy = policy or "Orphan"
        if policy not in POLICIES:
            raise ApiError(400, "BadRequest", f"propagationPolicy: Unsupported value: {policy!r}: supported "
                                              f"values: {', '.join(repr(p) for p in POLICIES)}")
        cluster = self.cluster
        with cluster.lock:
            obj = cluster.objects.get(RESOURCE, {}).get((namespace, name))
            if obj is None:
                raise _job_not_found(name)
            uid = obj["metadata"]["uid"]
            pods = self._owned(uid)
            if policy == "Foreground":
                obj["metadata"].setdefault("deletionTimestamp", now_rfc3339())
                obj["metadata"]["deletionGracePeriodSeconds"] = 0
                obj["metadata"]["finalizers"] = ["foregroundDeletion"]
                cluster._bump(RESOURCE, "MODIFIED", obj)
                answer = copy.deepcopy(obj)
            else:
                answer = self._forget(obj)
            if policy == "Orphan":
                for record in pods:
                    meta = record.obj["metadata"]
                    meta["ownerReferences"] = [o for o in meta.get("ownerReferences") or [] if o.get("uid") != uid]
                    if not meta["ownerReferences"]:
                        del meta["ownerReferences"]
                    cluster._bump("pods", "MODIFIED", record.obj)
                return answer
        for record in pods:
            self._delete_pod(record)
        return answer

    # -- the controller ----------------------------------------------------------------------------
    def _run(self) -> None:
        stopping = self.cluster._stopping
        while not stopping.wait(TICK_S):
            try:
                with self.cluster.lock:
                    jobs = list(self.cluster.objects.get(RESOURCE, {}).values())
                for obj in jobs:
                    with self.cluster.lock:
                        self._reconcile(obj)
                    self._expire(obj)
            except Exception as e:  # noqa: BLE001 - one bad Job must not stop the controller
                self.cluster.log(f"k8s emulator job controller: {e}")

    def _owned(self, uid: str) -> list[Any]:
        return [r for r in self.cluster.pods.values()
                if any(o.get("uid") == uid for o in r.obj["metadata"].get("ownerReferences") or [])]

    def _reconcile(self, obj: dict[str, Any]) -> None:
        """One pass over a Job (cluster lock held): count its pods, finish it or start a pod."""
        cluster = self.cluster
        meta, spec, status = obj["metadata"], obj["spec"], obj["status"]
        key = (meta["namespace"], meta["name"])
        if cluster.objects.get(RESOURCE, {}).get(key) is not obj:
            return
        state = self.states.setdefault(meta["uid"], JobState())
        before = copy.deepcopy(status)
        if not state.started:
            state.started = time.time()
            status["startTime"] = now_rfc3339(state.started)
        for name, counted in list(state.pods.items()):
            if counted != "active":
                continue
            record = cluster.pods.get((meta["namespace"], name))
            phase = record.obj["status"].get("phase") if record is not None else None
            if phase == "Succeeded":
                state.pods[name] = "succeeded"
            elif phase == "Failed" or record is None or record.deleted:
                state.pods[name] = "failed"
        active = [n for n, c in state.pods.items() if c == "active"]
        succeeded = sum(1 for c in state.pods.values() if c == "succeeded")
        failed = sum(1 for c in state.pods.values() if c == "failed")
        terminating = sum(1 for r in self._owned(meta["uid"]) if r.deleted
                          and r.obj["status"].get("phase") not in ("Succeeded", "Failed"))
        ready = 0
        for name in active:
            record = cluster.pods.get((meta["namespace"], name))
            if record is not None and any(c.get("type") == "Ready" and c.get("status") == "True"
                                          for c in record.obj["status"].get("conditions") or []):
                ready += 1
        status.update(active=len(active), ready=ready, succeeded=succeeded, failed=failed, terminating=terminating)
        if meta.get("deletionTimestamp"):
            if not self._owned(meta["uid"]):
                self._forget(obj)
                return
        elif state.finished is None:
            deadline = spec.get("activeDeadlineSeconds")
            if succeeded >= 1:
                self._finish(obj, state, "Complete", "CompletionsReached", "Reached expected number of succeeded pods")
                cluster.event(obj, "Completed", "Job completed", component="job-controller")
            elif failed > int(spec.get("backoffLimit", 6)):
                self._finish(obj, state, "Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
            elif deadline is not None and time.time() - state.started >= float(deadline):
                self._finish(obj, state, "Failed", "DeadlineExceeded", "Job was active longer than specified deadline")
            elif not active and not spec.get("suspend"):
                self._start_pod(obj, state)
                status["active"] = 1
        if status != before:
            cluster._bump(RESOURCE, "MODIFIED", obj)

    def _finish(self, obj: dict[str, Any], state: JobState, kind: str, reason: str, message: str) -> None:
        cluster = self.cluster
        status = obj["status"]
        state.finished = time.time()
        stamp = now_rfc3339(state.finished)
        interim = "SuccessCriteriaMet" if kind == "Complete" else "FailureTarget"
        status["conditions"] = [
            {"type": t, "status": "True", "reason": reason, "message": message, "lastProbeTime": stamp,
             "lastTransitionTime": stamp} for t in (interim, kind)]
        if kind == "Complete":
            status["completionTime"] = stamp
        else:
            cluster.event(obj, reason, message, warning=True, component="job-controller")
        for name, counted in state.pods.items():
            if counted == "active":
                state.pods[name] = "failed"
                record = cluster.pods.get((obj["metadata"]["namespace"], name))
                if record is not None and not record.deleted:
                    threading.Thread(target=self._delete_pod, args=(record,), daemon=True).start()
                    cluster.event(obj, "SuccessfulDelete", f"Deleted pod: {name}", component="job-controller")
        status["failed"] = sum(1 for c in state.pods.values() if c == "failed")
        status["active"] = status["ready"] = 0

    def _start_pod(self, obj: dict[str, Any], state: JobState) -> None:
        cluster = self.cluster
        meta, template = obj["metadata"], obj["spec"]["template"]
        pod_meta = copy.deepcopy(template.get("metadata") or {})
        pod_meta.pop("name", None)
        pod_meta["generateName"] = f"{meta['name']}-"
        pod_meta["ownerReferences"] = [{"apiVersion": API_VERSION, "kind": "Job", "name": meta["name"],
                                        "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}]
        for _ in range(5):
            try:
                pod = cluster.create_pod(meta["namespace"], {"metadata": pod_meta, "spec": template["spec"]},
                                         refusable=False)
                break
            except ApiError as e:
                if e.code != 409:
                    cluster.event(obj, "FailedCreate", f"Error creating: {e.message}", warning=True,
                                  component="job-controller")
                    return
        else:
            return
        state.pods[pod["metadata"]["name"]] = "active"
        cluster.event(obj, "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}", component="job-controller")

    def _expire(self, obj: dict[str, Any]) -> None:
        ttl = obj["spec"].get("ttlSecondsAfterFinished")
        state = self.states.get(obj["metadata"]["uid"])
        if ttl is None or state is None or state.finished is None or obj["metadata"].get("deletionTimestamp"):
            return
        if time.time() - state.finished >= float(ttl):
            try:
                self.delete(obj["metadata"]["namespace"], obj["metadata"]["name"], "Background")
            except ApiError:
                pass

    def _forget(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Remove the Job object (lock held); its pods are the caller's business."""
        meta = obj["metadata"]
        store = self.cluster.objects.get(RESOURCE, {})
        if store.get((meta["namespace"], meta["name"])) is obj:
            del store[(meta["namespace"], meta["name"])]
            self.cluster._bump(RESOURCE, "DELETED", obj)
        self.states.pop(meta["uid"], None)
        return copy.deepcopy(obj)

    def _delete_pod(self, record: Any) -> None:
        meta = record.obj["metadata"]
        try:
            self.cluster.delete_pod(meta["namespace"], meta["name"], None)
        except ApiError:
            pass


def _job_not_found(name: str) -> ApiError:
    return ApiError(404, "NotFound", f'jobs.batch "{name}" not found', {"name": name, "group": "batch", "kind": "jobs"})


def job_table_row(job: Mapping[str, Any]) -> list[str]:
    """``kubectl get jobs`` cells after the name: Status, Completions, Duration."""
    status = job.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or [] if c.get("status") == "True"}
    if job["metadata"].get("deletionTimestamp"):
        shown = "Terminating"
    elif "Complete" in conditions:
        shown = "Complete"
    elif "Failed" in conditions:
        shown = "Failed"
    elif "FailureTarget" in conditions:
        shown = "FailureTarget"
    else:
        shown = "Running"
    completions = f"{status.get('succeeded', 0)}/{(job.get('spec') or {}).get('completions', 1)}"
    return [shown, completions, _duration(status)]


def _duration(status: Mapping[str, Any]) -> str:
    import calendar

    def seconds(stamp: str | None) -> float | None:
        if not stamp:
            return None
        return float(calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")))

    start = seconds(status.get("startTime"))
    if start is None:
        return ""
    end = seconds(status.get("completionTime")) or time.time()
    return f"{int(end - start)}s"
