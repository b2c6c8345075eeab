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
