"""batch/v1 Jobs on the shipped Kubernetes emulator, through the official client and the real kubectl.

Attacks: a Job that completes but keeps its pods past its TTL; a failed pod retried past
``backoffLimit``; a deleted pod silently replaced when ``backoffLimit`` is 0; a pod outliving
``activeDeadlineSeconds``; a propagation policy that leaves (or wrongly removes) pods; a refused create
that still makes a Job.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.docker_support import RUNNER_IMAGE
from tests.k8s_support import emulator

pytestmark = pytest.mark.docker


@pytest.fixture
def api() -> Any:
    """(namespace, CoreV1Api, BatchV1Api) on a fresh namespace of the emulator."""
    from kubernetes import client, config

    emu = emulator()
    api_client = config.new_client_from_config(str(emu.kubeconfig))
    core: Any = client.CoreV1Api(api_client)
    batch: Any = client.BatchV1Api(api_client)
    namespace = f"jobs-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": namespace}})
    yield namespace, core, batch
    for job in batch.list_namespaced_job(namespace).items:
        batch.delete_namespaced_job(job.metadata.name, namespace, propagation_policy="Background")
    for pod in core.list_namespaced_pod(namespace).items:
        core.delete_namespaced_pod(pod.metadata.name, namespace, grace_period_seconds=0)


def job(name: str, script: str, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "labels": labels or {}},
            "spec": {"template": {"metadata": {"labels": {"role": "worker"}},
                                  "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                                           "containers": [{"name": "main", "image": RUNNER_IMAGE,
                                                           "command": ["sh", "-c", script]}]}},
                     **spec}}


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = probe()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def condition(batch: Any, namespace: str, name: str) -> tuple[str, str] | None:
    found = batch.read_namespaced_job(name, namespace)
    for c in found.status.conditions or []:
        if c.type in ("Complete", "Failed") and c.status == "True":
            return c.type, c.reason
    return None


def pods_of(core: Any, namespace: str, name: str) -> list[Any]:
    return core.list_namespaced_pod(namespace, label_selector=f"job-name={name}").items


def test_job_runs_one_owned_pod_to_completion_and_its_ttl_removes_both(api: Any) -> None:
    namespace, core, batch = api
    created = batch.create_namespaced_job(namespace, job("done", "echo hello", {"run": "r1"}, backoffLimit=0,
                                                         ttlSecondsAfterFinished=2))
    assert created.spec.selector.match_labels == {"batch.kubernetes.io/controller-uid": created.metadata.uid}
    assert created.spec.template.metadata.labels["job-name"] == "done"
    assert wait_for("Complete", lambda: condition(batch, namespace, "done")) == ("Complete", "CompletionsReached")
    finished = batch.read_namespaced_job("done", namespace)
    assert (finished.status.succeeded, finished.status.failed, finished.status.active) == (1, 0, 0)
    assert finished.status.start_time and finished.status.completion_time
    (pod,) = pods_of(core, namespace, "done")
    assert pod.metadata.name.startswith("done-") and len(pod.metadata.name) == len("done-") + 5
    assert pod.metadata.labels["batch.kubernetes.io/controller-uid"] == created.metadata.uid
    assert pod.metadata.labels["role"] == "worker" and pod.status.phase == "Succeeded"
    (owner,) = pod.metadata.owner_references
    assert (owner.kind, owner.name, owner.uid, owner.controller) == ("Job", "done", created.metadata.uid, True)
    assert core.read_namespaced_pod_log(pod.metadata.name, namespace) == "hello\n"
    reasons = {e.reason for e in core.list_namespaced_event(namespace).items if e.involved_object.kind == "Job"}
    assert {"SuccessfulCreate", "Completed"} <= reasons
    wait_for("the TTL to remove the Job and its pod",
             lambda: not batch.list_namespaced_job(namespace).items and not core.list_namespaced_pod(namespace).items,
             timeout=15)


def test_backoff_limit_counts_failed_pods_then_fails_the_job(api: Any) -> None:
    namespace, core, batch = api
    batch.create_namespaced_job(namespace, job("flaky", "exit 3", backoffLimit=1))
    assert wait_for("Failed", lambda: condition(batch, namespace, "flaky")) == ("Failed", "BackoffLimitExceeded")
    failed = batch.read_namespaced_job("flaky", namespace)
    assert (failed.status.failed, failed.status.succeeded, failed.status.active) == (2, 0, 0)
    pods = pods_of(core, namespace, "flaky")
    assert len(pods) == 2 and {p.status.phase for p in pods} == {"Failed"}
    time.sleep(1.0)
    assert len(pods_of(core, namespace, "flaky")) == 2, "a pod was started after the Job failed"


def test_deleting_the_pod_of_a_job_with_backoff_limit_0_fails_it(api: Any) -> None:
    namespace, core, batch = api
    batch.create_namespaced_job(namespace, job("worker", "sleep 60", backoffLimit=0))
    pod = wait_for("a running pod", lambda: [p for p in pods_of(core, namespace, "worker")
                                            if p.status.phase == "Running"])[0]
    core.delete_namespaced_pod(pod.metadata.name, namespace, grace_period_seconds=0)
    assert wait_for("Failed", lambda: condition(batch, namespace, "worker")) == ("Failed", "BackoffLimitExceeded")
    time.sleep(1.0)
    assert not pods_of(core, namespace, "worker"), "the Job made a new pod although backoffLimit is 0"
    assert batch.read_namespaced_job("worker", namespace).status.failed == 1


def test_active_deadline_kills_the_pod_and_fails_the_job(api: Any) -> None:
    namespace, core, batch = api
    started = time.monotonic()
    batch.create_namespaced_job(namespace, job("slow", "sleep 60", backoffLimit=0, activeDeadlineSeconds=2))
    assert wait_for("Failed", lambda: condition(batch, namespace, "slow")) == ("Failed", "DeadlineExceeded")
    assert 1.5 < time.monotonic() - started < 15
    wait_for("the pod to go", lambda: not pods_of(core, namespace, "slow"), timeout=15)
    events = [e for e in core.list_namespaced_event(namespace).items if e.involved_object.name == "slow"]
    assert any(e.reason == "DeadlineExceeded" and e.type == "Warning" for e in events)


def test_delete_propagation_orphan_background_foreground(api: Any) -> None:
    namespace, core, batch = api
    for name in ("orphan", "background", "foreground"):
        batch.create_namespaced_job(namespace, job(name, "sleep 60", {"set": "prop"}, backoffLimit=0))
    for name in ("orphan", "background", "foreground"):
        wait_for(f"{name}'s pod running", lambda n=name: [p for p in pods_of(core, namespace, n)  # type: ignore[misc]
                                                          if p.status.phase == "Running"])
    batch.delete_namespaced_job("orphan", namespace, propagation_policy="Orphan")
    (kept,) = pods_of(core, namespace, "orphan")
    assert not kept.metadata.owner_references and kept.status.phase == "Running"
    batch.delete_namespaced_job("background", namespace, propagation_policy="Background")
    assert [j.metadata.name for j in batch.list_namespaced_job(namespace).items] == ["foreground"]
    wait_for("background's pod to go", lambda: not pods_of(core, namespace, "background"), timeout=15)
    answer = batch.delete_namespaced_job("foreground", namespace, propagation_policy="Foreground")
    # The API answers the Job itself (the client, expecting a Status, hands it over as a dict).
    assert answer["metadata"]["deletionTimestamp"] and answer["metadata"]["finalizers"] == ["foregroundDeletion"]
    wait_for("the foreground Job to go after its pod",
             lambda: not batch.list_namespaced_job(namespace).items and not pods_of(core, namespace, "foreground"),
             timeout=15)
    assert [p.metadata.name for p in core.list_namespaced_pod(namespace).items] == [kept.metadata.name]


def test_job_watch_and_refused_create(api: Any) -> None:
    from kubernetes import watch
    from kubernetes.client.exceptions import ApiException

    namespace, _core, batch = api
    emu = emulator()
    emu.faults.set({"refuseCreates": 1, "refuseCode": 403})
    try:
        with pytest.raises(ApiException) as refused:
            batch.create_namespaced_job(namespace, job("refused", "true"))
    finally:
        emu.faults.set({"reset": True})
    assert refused.value.status == 403
    assert json.loads(str(refused.value.body))["message"].startswith('jobs.batch "refused" is forbidden')
    assert not batch.list_namespaced_job(namespace).items
    batch.create_namespaced_job(namespace, job("watched", "true", backoffLimit=0))
    seen = []
    for event in watch.Watch().stream(batch.list_namespaced_job, namespace, timeout_seconds=20):
        seen.append(event["type"])
        conditions = event["object"].status.conditions or []
        if any(c.type == "Complete" for c in conditions):
            break
    assert seen[0] == "ADDED" and "MODIFIED" in seen


def test_kubectl_gets_describes_and_deletes_jobs(api: Any) -> None:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is missing: scripts/setup-dev.sh installs one (bash scripts/setup-dev.sh)"
    namespace, core, batch = api
    env = dict(os.environ, KUBECONFIG=str(emulator().kubeconfig))

    def kc(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([kubectl, "-n", namespace, *args], capture_output=True, text=True, env=env, timeout=60)

    batch.create_namespaced_job(namespace, job("kc-a", "sleep 60", {"pool": "p1"}, backoffLimit=0))
    batch.create_namespaced_job(namespace, job("kc-b", "true", {"pool": "p2"}, backoffLimit=0))
    wait_for("kc-b Complete", lambda: condition(batch, namespace, "kc-b"))
    listed = kc("get", "jobs", "-l", "pool=p1")
    assert listed.returncode == 0, listed.stderr
    assert "kc-a" in listed.stdout and "kc-b" not in listed.stdout and "Running" in listed.stdout
    assert "Complete" in kc("get", "jobs", "kc-b").stdout
    described = kc("describe", "job", "kc-b")
    assert described.returncode == 0, described.stderr
    assert "Pods Statuses:" in described.stdout and "SuccessfulCreate" in described.stdout, described.stdout
    deleted = kc("delete", "jobs", "-l", "pool=p1")
    assert deleted.returncode == 0 and "kc-a" in deleted.stdout, deleted.stderr
    assert [j.metadata.name for j in batch.list_namespaced_job(namespace).items] == ["kc-b"]
    # kubectl deletes with propagationPolicy=Background: the pod goes too.
    wait_for("kc-a's pod to go", lambda: not pods_of(core, namespace, "kc-a"), timeout=15)
