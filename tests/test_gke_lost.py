"""``--cloud=gke``: a worker pod deleted under a running task, and a worker's exec stream cut under a
running task, lose no task: the task runs again (attempt 2), the run exits 0. Emulator + real kubectl.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

if os.environ.get("CLOUDEVAL_SKIP_DOCKER") == "1":
    pytest.skip("CLOUDEVAL_SKIP_DOCKER=1", allow_module_level=True)

from tests.gke_support import (
    Live,
    agent_started_on,
    gke_args,
    kubectl,
    leftovers,
    make_project,
    pod_of,
    pod_of_result,
    results_of,
)
from tests.k8s_support import emulator
from tests.waiting import eventually

pytestmark = [pytest.mark.docker, pytest.mark.cloud]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    emulator()
    return make_project(tmp_path_factory.mktemp("proj"))


def exec_clients(pod: str) -> list[int]:
    """Pids of the local ``kubectl exec -i POD`` clients (one per worker stream into ``pod``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in argv if a]
        if words and words[0].endswith("kubectl") and "exec" in words and "-i" in words and pod in words:
            found.append(int(entry.name))
    return found


def test_a_deleted_worker_pod_loses_no_task_and_is_replaced(project: Path, tmp_path: Path) -> None:
    results, run_id = tmp_path / "results", "gke-lost"
    live = Live(project, "add", "--agent", "agents/slow.py:run", "-A", "sleep=3", "-n", "3", "-rA",
                *gke_args(run_id, results))
    try:
        live.wait_for(r"3 worker\(s\) on 3 pod\(s\) ready", timeout=180)
        victim = f"cew-{run_id}-1"
        started = eventually(lambda: agent_started_on(victim), timeout=60)
        assert started, "no task started in the victim pod"
        pod = pod_of(victim)
        assert pod is not None
        deleted = kubectl("delete", "pod", pod, "--grace-period=0", "--force", "--wait=false")
        assert deleted.returncode == 0, deleted.stderr
        code = live.finish()
    finally:
        live.kill()
    out = live.output
    assert code == 0, out
    assert "6 passed" in out and "1 rerun" in out, out
    assert f"pod {victim} is gone" in out and f"{victim}-r1 replaces the lost worker pod {victim}" in out, out
    stored = results_of(results, run_id, "add")
    assert len(stored) == 6 and all(r["outcome"] == "passed" for r in stored.values())
    rerun = [stored[task] for task in started if stored[task]["attempt"] == 2]
    assert len(rerun) == 1 and not pod_of_result(rerun[0]).startswith(pod), [stored[t] for t in started]
    assert eventually(lambda: not leftovers(run_id), timeout=30), leftovers(run_id)


@pytest.mark.parametrize("side", ["server", "client"])
def test_a_dropped_exec_stream_loses_no_task(project: Path, tmp_path: Path, side: str) -> None:
    """The stream is cut by the API server (the emulator closes the pod's open exec connections) or on
    the controller's side (its kubectl client dies): the pod still runs, so the worker restarts there."""
    results, run_id = tmp_path / "results", f"gke-drop-{side}"
    live = Live(project, "add", "--agent", "agents/slow.py:run", "-A", "sleep=3", "-n", "2", "-rA",
                *gke_args(run_id, results))
    try:
        live.wait_for(r"2 worker\(s\) on 2 pod\(s\) ready", timeout=180)
        victim = f"cew-{run_id}-0"
        started = eventually(lambda: agent_started_on(victim), timeout=60)
        assert started, "no task started in the victim pod"
        pod = pod_of(victim)
        assert pod is not None
        if side == "server":
            assert emulator().drop_exec_streams(pod) >= 1, "the worker's exec stream was open"
        else:
            clients = eventually(lambda: exec_clients(pod), timeout=10)
            assert len(clients) == 1, clients
            os.kill(clients[0], signal.SIGKILL)
        code = live.finish()
    finally:
        live.kill()
    out = live.output
    assert code == 0, out
    assert "6 passed" in out and "1 rerun" in out, out
    assert "is gone" not in out, "the pod still runs: the worker restarts there, nothing is replaced"
    stored = results_of(results, run_id, "add")
    assert len(stored) == 6 and all(r["outcome"] == "passed" for r in stored.values())
    assert [t for t in started if stored[t]["attempt"] == 2], [stored[t] for t in started]
    assert eventually(lambda: not leftovers(run_id), timeout=30), leftovers(run_id)
