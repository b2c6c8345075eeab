"""End to end: ``pytest --cloud=gke -n N`` against the shipped Kubernetes emulator, whose worker pods
are Docker containers reached by the real ``kubectl exec``. Each test runs pytest in a subprocess,
as a user would. Needs Docker; fails (does not skip) without it unless CLOUDEVAL_SKIP_DOCKER=1.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

if os.environ.get("CLOUDEVAL_SKIP_DOCKER") == "1":
    pytest.skip("CLOUDEVAL_SKIP_DOCKER=1", allow_module_level=True)

from tests.gke_support import Live, gke_args, kubectl, leftovers, make_project, pod_of_result, results_of, run
from tests.k8s_support import access_log_lines, emulator
from tests.waiting import eventually

pytestmark = [pytest.mark.docker, pytest.mark.cloud]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    emulator()
    return make_project(tmp_path_factory.mktemp("proj"))


def test_shipped_usaco_benchmark_passes_on_four_worker_pods(project: Path, tmp_path: Path) -> None:
    results, junit, run_id = tmp_path / "results", tmp_path / "junit.xml", "gke-usaco"
    live = Live(project, "usaco", "--agent", "oracle", "-n", "4", f"--junitxml={junit}", *gke_args(run_id, results))
    try:
        live.wait_for(r"4 worker\(s\) on 4 pod\(s\) ready", timeout=180)
        # While it runs, the real kubectl lists the run's worker pods by its label.
        shown = kubectl("get", "pods", "-l", f"cloudeval.run={run_id}", "--no-headers")
        code = live.finish()
    finally:
        live.kill()
    out = live.output
    assert code == 0, out
    assert shown.returncode == 0, shown.stderr
    listed = [line.split()[0] for line in shown.stdout.splitlines() if line.strip()]
    assert len(listed) == 4 and all(name.startswith(f"cew-{run_id}-") for name in listed), shown.stdout
    assert "12 passed" in out
    # One exec stream per pod: each pod's worker is the interpreter its code was shipped over.
    assert "4 of 4 worker(s) start on the interpreter their code was shipped over" in out, out
    stored = results_of(results, run_id, "usaco")
    assert len(stored) == 12 and all(r["outcome"] == "passed" for r in stored.values())
    pods = {pod_of_result(r) for r in stored.values()}
    assert len(pods) >= 2 and all(p.startswith(f"cew-{run_id}-") for p in pods), pods
    for key in stored:  # the task folders came back from the pods
        assert (results / run_id / "usaco" / key / "answer.txt").is_file()
    cloud = json.loads((results / run_id / "run.json").read_text())["cloud"]
    assert cloud["unit"] == "pod" and cloud["workers"] == 4 and cloud["vm_seconds"] > 0
    assert cloud["estimated_cost_usd"] > 0 and "GKE" in cloud["price_source"]
    assert "pod-seconds" in out
    cases = ET.parse(junit).getroot().findall(".//testcase")
    assert len(cases) == 12 and all(c.get("name") for c in cases)
    assert eventually(lambda: not leftovers(run_id), timeout=30), leftovers(run_id)


def test_dry_run_prints_the_plan_and_creates_nothing(project: Path, tmp_path: Path) -> None:
    log_before = len(access_log_lines())
    proc = run(project, "add", "-n", "5", "--workers-per-pod", "2", "--k8s-spot", "--cloud-dry-run",
               *gke_args("gke-dry", tmp_path / "results"))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "3 Spot worker pod(s) pod(500m cpu, 1024Mi)" in out, out
    assert "2 worker(s) per pod, 5 worker(s)" in out and "/pod-hour" in out and "nothing was provisioned" in out
    assert len(access_log_lines()) == log_before, "a dry run never calls the API server"


def test_docker_sandbox_is_refused_before_anything_is_created(project: Path, tmp_path: Path) -> None:
    log_before = len(access_log_lines())
    proc = run(project, "add", "-n", "2", "--sandbox=docker", *gke_args("gke-docker", tmp_path / "results"))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 4, out
    assert "--cloud=gke cannot run --sandbox=docker" in out and "--sandbox=local" in out
    created = [e for e in access_log_lines()[log_before:] if e["method"] == "POST"]
    assert not created, created


def test_cloud_status_lists_worker_pods_of_a_running_run(project: Path, tmp_path: Path) -> None:
    run_id, secret = "gke-status", "s3cr3t-gke-4711"
    secrets = tmp_path / "secrets.env"
    secrets.write_text(f"GKE_TEST_TOKEN={secret}\n")
    log_before = len(access_log_lines())
    live = Live(project, "add", "--agent", "agents/slow.py:run", "-A", "sleep=4", "-n", "2",
                f"--secrets-env={secrets}", *gke_args(run_id, tmp_path / "results"))
    try:
        live.wait_for(r"2 worker\(s\) on 2 pod\(s\) ready", timeout=180)
        status = run(project, "--cloud-status", *gke_args(None, tmp_path / "r"))
        jobs = json.dumps([j for j in emulator().jobs("default") if run_id in j["metadata"]["name"]])
        code = live.finish()
    finally:
        live.kill()
    assert code == 0, live.output
    assert status.returncode == 0, status.stdout + status.stderr
    seen = json.dumps(access_log_lines()[log_before:])
    assert secret not in seen and secret not in live.output, "a secret reached the API server or the log"
    assert run_id in jobs and secret not in jobs, "the worker Jobs' specs carry no secret"
    rows = [line for line in status.stdout.splitlines() if f"cew-{run_id}-" in line]
    assert len(rows) == 2 and all("Running" in row and run_id in row for row in rows), status.stdout
    assert eventually(lambda: not leftovers(run_id), timeout=30), leftovers(run_id)


def test_workers_per_pod_packs_two_xdist_workers_in_each_of_two_pods(project: Path, tmp_path: Path) -> None:
    """``-n 4 --workers-per-pod 2``: two worker pods (Jobs) with requests for two workers each, four
    distinct xdist workers on them, a USACO-format benchmark all passed with the oracle (the small
    'add' one: the shipped tasks' time limits fail under a loaded CI machine's CPU, which is not what
    this checks)."""
    results, run_id = tmp_path / "results", "gke-per-pod"
    live = Live(project, "add", "--agent", "oracle", "-n", "4", "--workers-per-pod", "2",
                *gke_args(run_id, results))
    try:
        live.wait_for(r"4 worker\(s\) on 2 pod\(s\) ready", timeout=180)
        jobs = [j for j in emulator().jobs("default")
                if (j["metadata"].get("labels") or {}).get("cloudeval.run") == run_id]
        code = live.finish()
    finally:
        live.kill()
    out = live.output
    assert code == 0, out
    assert "6 passed" in out, out
    # Each pod's first worker takes over the stream its code was shipped over; the second opens its own.
    assert "2 of 4 worker(s) start on the interpreter their code was shipped over" in out, out
    assert len(jobs) == 2, [j["metadata"]["name"] for j in jobs]
    for job in jobs:  # each pod asks for two workers' worth (2 x 250m cpu, 2 x 512Mi)
        requests = job["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]
        assert requests == {"cpu": "500m", "memory": "1024Mi"}, requests
    stored = results_of(results, run_id, "add")
    assert len(stored) == 6 and all(r["outcome"] == "passed" for r in stored.values()), stored
    workers = {str(r["worker"]) for r in stored.values()}
    pods = {pod_of_result(r) for r in stored.values()}
    assert all(p.startswith(f"cew-{run_id}-") for p in pods), pods
    assert len(pods) == 2, pods
    assert len(workers) == 4, workers  # gw0..gw3, two on each pod
    per_pod = {pod: {w.split("@", 1)[0] for w in workers if w.endswith("@" + pod)} for pod in pods}
    assert all(len(ids) == 2 for ids in per_pod.values()), per_pod
    assert eventually(lambda: not leftovers(run_id), timeout=30), leftovers(run_id)
