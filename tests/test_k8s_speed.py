"""What keeps the k8s sandbox fast (issue 11, performance), on the shipped emulator.

A worker that imports the generated ``CoreV1Api`` and its models pays ~4.5 s of CPU before its
first pod: the sandbox must not import them. Pod start waits on a watch of the pod (not a poll
loop), and still starts where watches are refused (polls then).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.docker_support import new_run_id
from tests.k8s_support import access_log_lines, emulator
from tests.test_k8s_sandbox import make_box

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parent.parent


def test_a_whole_attempt_imports_no_generated_api_class(tmp_path: Path) -> None:
    """Start, exec with files, read, copy out, close, sweep in a fresh process: no CoreV1Api, no models."""
    script = f"""
import sys
from pathlib import Path
from pytest_cloudeval.model import Task
from pytest_cloudeval.sandbox import k8s_config
from pytest_cloudeval.sandbox.base import SandboxOptions, SandboxSpec
from pytest_cloudeval.sandbox.k8s import K8sSandbox

k8s_config.use({{"kubeconfig": {str(emulator().kubeconfig)!r}, "start_timeout_s": 60.0}})
tmp = Path({str(tmp_path)!r})
task = Task(benchmark="b", task_id="t1", format="test", source=tmp, root=tmp, instruction="", agent_input={{}})
run_id = {new_run_id("k8s-imports")!r}
box = K8sSandbox(SandboxSpec(task=task, run_id=run_id, name=run_id + "-box", network=False,
                             options=SandboxOptions(run_id=run_id, output_cap_bytes=4096)))
box.start()
try:
    box.write_file("in.txt", "hello")
    assert box.exec(["cat", "in.txt"], timeout=30).stdout == "hello"
    assert box.read_file("in.txt") == b"hello"
    assert box.copy_out_report("in.txt", tmp / "out.txt") is not None
finally:
    box.close()
K8sSandbox.session_cleanup(run_id)
assert "kubernetes" in sys.modules, "the official client was not used at all"
heavy = sorted(m for m in sys.modules if m.startswith(("kubernetes.client.api.", "kubernetes.client.models.")))
print("HEAVY", heavy)
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "HEAVY []" in out.stdout, out.stdout[-2000:]
    assert (tmp_path / "out.txt").read_text() == "hello"


def _pod_requests(name: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(watches of the pod, GETs of the pod) in the emulator's access log."""
    watches, reads = [], []
    for line in access_log_lines():
        split = urlsplit(line["path"])
        query = parse_qs(split.query)
        if line["method"] != "GET":
            continue
        if split.path.endswith("/pods") and query.get("watch") == ["true"] and \
                query.get("fieldSelector") == [f"metadata.name={name}"]:
            watches.append(line)
        elif split.path.endswith(f"/pods/{name}"):
            reads.append(line)
    return watches, reads


def test_pod_start_waits_on_a_watch(tmp_path: Path) -> None:
    emulator().faults.set({"startDelaySeconds": 1.5})  # long enough for a poll loop to show
    box = make_box(tmp_path, new_run_id("k8s-watch"))
    try:
        box.start()
        assert box.exec(["true"], timeout=30).ok
        watches, reads = _pod_requests(str(box.pod))
        assert watches, "the start did not watch the pod"
        # One read after create, one per watch window or change: not one every 0.1 s for 1.5 s.
        assert len(reads) <= 4, [r["path"] for r in reads]
    finally:
        emulator().faults.set({"reset": True})
        box.close()


def test_pod_start_polls_where_watches_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kubernetes.client.exceptions import ApiException

    from pytest_cloudeval.sandbox.k8s_rest import Rest

    refused: list[str] = []

    def refuse(self: Rest, namespace: str, name: str, *args: Any) -> Any:
        refused.append(name)
        raise ApiException(status=403, reason="watch is forbidden")

    monkeypatch.setattr(Rest, "watch_pod", refuse)
    box = make_box(tmp_path, new_run_id("k8s-nowatch"))
    try:
        box.start()
        assert refused == [box.pod], "the start never tried to watch"
        assert box.exec(["sh", "-c", "echo up"], timeout=30).stdout == "up\n"
    finally:
        box.close()


def test_a_task_image_with_a_workdir_starts_without_asking_the_pod(tmp_path: Path) -> None:
    """As the Docker sandbox: a task's own image runs as its user (or [agent] user) in [environment]
    workdir, so the start needs no exec; the runner's ``agent`` user is not looked up in it."""
    from pytest_cloudeval.model import TaskEnvironment
    from tests.docker_support import BASE_IMAGE

    box = make_box(tmp_path, new_run_id("k8s-ownimage"),
                   environment=TaskEnvironment(image=BASE_IMAGE, workdir="/work/here"))
    try:
        box.start()
        execs = [line for line in access_log_lines() if f"/pods/{box.pod}/exec" in line["path"]]
        assert execs == [], "the start ran commands in the pod"
        assert box.user is None and box.workdir == "/work/here"
        result = box.exec(["sh", "-c", "pwd; id -u"], timeout=30)
        assert result.stdout.split() == ["/work/here", "0"], result.stdout + result.stderr
    finally:
        box.close()


# -- pods made ahead (``prepare``) --------------------------------------------------------------------
def _spec_of(pod: str) -> dict[str, Any]:
    found = [p for p in emulator().pods() if p["metadata"]["name"] == pod]
    assert found, f"pod {pod} is not in the emulator"
    return dict(found[0]["spec"])


def test_a_pod_made_ahead_gets_the_usual_deadline_when_its_attempt_starts(tmp_path: Path) -> None:
    """A pod made ahead waits for the attempt before it, so it is made with a longer deadline; the
    attempt's start lowers it to the usual one (counted from then), which a forgotten pod then meets."""
    from pytest_cloudeval.sandbox import k8s

    box = make_box(tmp_path, new_run_id("k8s-ahead"))
    try:
        box.prepare()
        usual = box._deadline_s
        assert _spec_of(str(box.pod))["activeDeadlineSeconds"] == usual + k8s.AHEAD_DEADLINE_S
        box.start()
        lowered = _spec_of(str(box.pod))["activeDeadlineSeconds"]
        assert usual < lowered <= usual + 60, (usual, lowered)
        assert box.exec(["sh", "-c", "echo ok"], timeout=30).stdout == "ok\n"
        assert "deadline" not in box.limits, box.limits
    finally:
        box.close()


def test_a_pod_made_ahead_and_lost_while_waiting_is_replaced(tmp_path: Path) -> None:
    """Evicted or deleted between ``prepare`` and ``start``: the attempt gets a fresh pod, not an error."""
    box = make_box(tmp_path, new_run_id("k8s-ahead-lost"))
    try:
        box.prepare()
        first = str(box.pod)
        emulator().cluster.evict("default", first)
        box.start()
        assert box.pod != first
        assert box.exec(["sh", "-c", "echo fresh"], timeout=30).stdout == "fresh\n"
        assert "replaced" in box.limits.get("prepared_ahead", ""), box.limits
    finally:
        box.close()
    assert all(p["metadata"]["name"] not in (first, box.pod) or p["metadata"].get("deletionTimestamp")
               or p["status"].get("phase") in ("Failed", "Succeeded") for p in emulator().pods())


def test_the_emulator_lowers_a_deadline_and_refuses_the_rest(tmp_path: Path) -> None:
    """As the API server: a running pod's deadline may be lowered, never raised; other spec fields stay."""
    from pytest_cloudeval.errors import SandboxError
    from pytest_cloudeval.sandbox import k8s_api

    box = make_box(tmp_path, new_run_id("k8s-patch"))
    try:
        box.start()
        api = k8s_api.rest(box.cfg)
        deadline = _spec_of(str(box.pod))["activeDeadlineSeconds"]
        for refused in ({"spec": {"activeDeadlineSeconds": deadline + 1}},
                        {"spec": {"containers": [{"name": "task", "image": "other"}]}},
                        {"spec": {"activeDeadlineSeconds": 0}}):
            with pytest.raises(SandboxError, match="422|Invalid"):
                k8s_api.call("patch", lambda body=refused: api.patch_pod(box.namespace, str(box.pod), body))
        api.patch_pod(box.namespace, str(box.pod), {"metadata": {"labels": {"seen": "yes"}},
                                                    "spec": {"activeDeadlineSeconds": deadline - 5}})
        assert _spec_of(str(box.pod))["activeDeadlineSeconds"] == deadline - 5
        assert box.exec(["true"], timeout=30).ok
    finally:
        box.close()


def test_the_pod_knows_when_commands_run_as_root(tmp_path: Path) -> None:
    """As the Docker sandbox: ``default_user_is_root`` lets the Harbor verifier make its fresh folder
    and run test.sh in one exec. True for an image whose user is root (learned in the pod, or from the
    local engine when nothing is asked), False for the runner image's ``agent`` user."""
    from pytest_cloudeval.model import TaskEnvironment
    from tests.docker_support import BASE_IMAGE

    cases: list[tuple[dict[str, Any], bool]] = [({"environment": TaskEnvironment(image=BASE_IMAGE)}, True),
             ({"environment": TaskEnvironment(image=BASE_IMAGE, workdir="/w")}, True),
             ({}, False),
             ({"environment": TaskEnvironment(image=BASE_IMAGE), "user": "nobody"}, False)]
    for spec, root in cases:
        box = make_box(tmp_path, new_run_id("k8s-root"), **spec)
        try:
            box.start()
            assert box.default_user_is_root is root, (spec, box.user)
            uid = box.exec(["id", "-u"], timeout=30).stdout.strip()
            assert (uid == "0") is root, (spec, uid)
        finally:
            box.close()
