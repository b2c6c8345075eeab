"""``--cloud=gke``: nothing is left behind (Ctrl+C, SIGTERM, ``kill -9`` + the pods' deadline,
``--cleanup``), ``--cloud-check`` names a missing permission, a warm pool is kept and reused, and
worker pods run ``--sandbox=k8s`` task pods with their own ServiceAccount. Emulator + real kubectl.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

if os.environ.get("CLOUDEVAL_SKIP_DOCKER") == "1":
    pytest.skip("CLOUDEVAL_SKIP_DOCKER=1", allow_module_level=True)

from tests.gke_support import (
    Live,
    gke_args,
    leftovers,
    make_project,
    results_of,
    run,
    run_pods,
)
from tests.k8s_support import access_log_lines, emulator
from tests.waiting import eventually

pytestmark = [pytest.mark.docker, pytest.mark.cloud]


def task_pods(run_id: str) -> list[str]:
    """The run's running --sandbox=k8s task pods (made by the workers)."""
    return [p["metadata"]["name"] for p in emulator().pods("default")
            if (p["metadata"].get("labels") or {}).get("cloudeval") == "true"
            and (p["metadata"].get("labels") or {}).get("cloudeval.run") == run_id
            and (p.get("status") or {}).get("phase") == "Running"]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    emulator()
    return make_project(tmp_path_factory.mktemp("proj"))


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_interrupt_mid_run_leaves_nothing_within_30_s(project: Path, tmp_path: Path, signame: str) -> None:
    run_id = f"gke-{signame.lower()}"
    live = Live(project, "add", "--agent", "agents/slow.py:run", "-A", "sleep=60", "-n", "2", "--sandbox=k8s",
                *gke_args(run_id, tmp_path / "results"))
    try:
        live.wait_for(r"2 worker\(s\) on 2 pod\(s\) ready", timeout=180)
        assert eventually(lambda: task_pods(run_id), timeout=90), "no task pod was started"
        before = leftovers(run_id)
        assert len([x for x in before if x.startswith("pod/")]) >= 2, before
        assert any(x.startswith("serviceaccount/") for x in before), before
        live.proc.send_signal(getattr(signal, signame))
        t0 = time.monotonic()
        gone = eventually(lambda: not leftovers(run_id), timeout=30, interval=0.5)
        elapsed = time.monotonic() - t0
        assert gone, f"left 30 s after {signame}: {leftovers(run_id)}"
        assert live.finish(timeout=60) != 0
    finally:
        live.kill()
    assert "deleted 2 pod(s)" in live.output, live.output
    print(f"nothing left {elapsed:.1f} s after {signame}")


def test_killed_controller_pods_end_by_deadline_and_cleanup_sweeps(project: Path, tmp_path: Path) -> None:
    run_id = "gke-killed"
    live = Live(project, "add", "--agent", "agents/slow.py:run", "-A", "sleep=60", "-n", "2",
                "--k8s-max-run-minutes=1", *gke_args(run_id, tmp_path / "results"))
    try:
        live.wait_for(r"2 worker\(s\) on 2 pod\(s\) ready", timeout=180)
        os.kill(live.proc.pid, signal.SIGKILL)
        live.proc.wait()
    finally:
        live.kill()
    running = lambda: run_pods(run_id, running_only=True)  # noqa: E731
    assert running(), "the killed controller's pods are still up right after the kill"
    # Nobody deletes them: their deadline (60 s from the start) ends them.
    assert eventually(lambda: not running(), timeout=90, interval=0.5), running()
    # The pod's own deadline or its Job's (which deletes the pod) ended it, whichever came first.
    ended = [p for p in run_pods(run_id) if (p.get("status") or {}).get("reason") == "DeadlineExceeded"]
    ended += [j for j in emulator().jobs("default") if run_id in j["metadata"]["name"]
              and any(c.get("reason") == "DeadlineExceeded" for c in (j.get("status") or {}).get("conditions") or [])]
    assert ended, (run_pods(run_id), emulator().jobs("default"))
    # What is still listed (the ended Jobs) is swept by label, and only this run's.
    swept = run(project, "--cleanup", *gke_args(run_id, tmp_path / "r"))
    assert swept.returncode == 0, swept.stdout + swept.stderr
    assert "cloudeval --cleanup: gke: deleted" in swept.stdout, swept.stdout
    assert eventually(lambda: not leftovers(run_id), timeout=30), leftovers(run_id)
    again = run(project, "--cleanup", *gke_args(run_id, tmp_path / "r"))
    assert "no worker Jobs, pods or ServiceAccounts" in again.stdout, again.stdout


def test_cloud_check_names_a_missing_permission_and_creates_nothing(project: Path, tmp_path: Path) -> None:
    emu = emulator()
    ok = run(project, "add", "-n", "2", "--sandbox=k8s", "--cloud-check", *gke_args("gke-check", tmp_path / "r"))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "cloudeval --cloud-check: OK" in ok.stdout
    emu.faults.set({"deny": ["create pods/exec", "create rbac.authorization.k8s.io/roles"]})
    try:
        before = len(access_log_lines())
        proc = run(project, "add", "-n", "2", "--sandbox=k8s", "--cloud-check", *gke_args("gke-check", tmp_path / "r"))
        posts = [e["path"] for e in access_log_lines()[before:] if e["method"] == "POST"]
    finally:
        emu.faults.set({"deny": []})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "missing permission: create pods/exec in namespace default (needed for the workers' exec streams)" in out
    assert "missing permission: create roles.rbac.authorization.k8s.io" in out, out
    assert "2 problem(s); nothing was created" in out
    assert posts and all("selfsubjectaccessreviews" in p for p in posts), posts


def test_keep_workers_reuses_the_pool_and_cleanup_sweeps_it(project: Path, tmp_path: Path) -> None:
    pool = "gkepool"
    args = ["add", "--agent", "oracle", "-n", "2", "--keep-workers", pool]
    first = run(project, *args, *gke_args("gke-pool-1", tmp_path / "results"))
    assert first.returncode == 0, first.stdout + first.stderr
    assert "kept 2 pool pod(s)" in first.stdout, first.stdout
    kept = lambda: [p["metadata"]["name"] for p in emulator().pods("default")  # noqa: E731
                    if (p["metadata"].get("labels") or {}).get("cloudeval.pool") == pool
                    and (p.get("status") or {}).get("phase") == "Running"]
    pods = kept()
    assert len(pods) == 2, pods
    second = run(project, *args, *gke_args("gke-pool-2", tmp_path / "results"))
    out = second.stdout + second.stderr
    assert second.returncode == 0, out
    assert "reused 2 pod(s) of the pool" in out and "code already there" in out and "6 passed" in out, out
    assert sorted(kept()) == sorted(pods), "the second run used the same pods"
    stored = results_of(tmp_path / "results", "gke-pool-2", "add")
    assert {r["worker"].split("@", 1)[1] for r in stored.values()} <= set(pods), "results name the pool's pods"
    swept = run(project, "--cleanup", "--keep-workers", pool, *gke_args(None, tmp_path / "r"))
    assert swept.returncode == 0 and "deleted" in swept.stdout, swept.stdout + swept.stderr
    assert eventually(lambda: not kept(), timeout=30), kept()


def test_worker_pods_run_tasks_in_sibling_k8s_pods(project: Path, tmp_path: Path) -> None:
    results, run_id = tmp_path / "results", "gke-k8s"
    before = len(access_log_lines())
    proc = run(project, "add", "--agent", "oracle", "-n", "2", "--sandbox=k8s", *gke_args(run_id, results),
               timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "6 passed" in out
    stored = results_of(results, run_id, "add")
    assert len(stored) == 6 and all(r["outcome"] == "passed" for r in stored.values())
    log = access_log_lines()[before:]
    task_pods = [e for e in log if e["method"] == "POST" and e["path"].startswith("/api/v1/namespaces/default/pods")]
    assert len(task_pods) >= 6, "each task ran in a pod the worker made through the API"
    created = [e["path"] for e in log if e["method"] == "POST"]
    assert any("/serviceaccounts" in p for p in created) and any("/rolebindings" in p for p in created)
    assert eventually(lambda: not leftovers(run_id), timeout=30), leftovers(run_id)
