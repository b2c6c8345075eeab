"""``pytest --cleanup`` with a run id from any source removes that run's sandboxes and spares the others
(issue 9, item 12: ``CLOUDEVAL_RUN_ID=X pytest --cleanup`` and ``--cleanup --resume X`` swept every run)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.docker_support import BASE_IMAGE, docker_api, new_run_id, run_containers  # noqa: F401

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parent.parent


def run_pytest(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pytest", *args, "-p", "no:cacheprovider", "-q", "-W", "ignore"]
    full_env = {k: v for k, v in os.environ.items() if k != "CLOUDEVAL_RUN_ID"} | (env or {})
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), full_env.get("PYTHONPATH")]))
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120, env=full_env)


@pytest.mark.parametrize("source", ["env", "resume", "ini", "cli"])
def test_cleanup_sweeps_only_the_named_run(tmp_path: Path, source: str, docker_api: Any) -> None:  # noqa: F811
    target, other = new_run_id("mine"), new_run_id("bystander")
    ids = []
    try:
        for rid in (target, target, other):
            created = docker_api.create_container(BASE_IMAGE, command=["sleep", "infinity"],
                                                  labels={"cloudeval": "true", "cloudeval.run": rid},
                                                  host_config=docker_api.create_host_config(init=True))
            docker_api.start(created["Id"])
            ids.append(created["Id"])
        args: list[str] = ["--cleanup"]
        env: dict[str, str] = {}
        if source == "env":
            env["CLOUDEVAL_RUN_ID"] = target
        elif source == "resume":
            args += ["--resume", target]
        elif source == "cli":
            args += ["--run-id", target]
        else:
            (tmp_path / "pytest.ini").write_text(f"[pytest]\ncloudeval_run_id = {target}\n")
        res = run_pytest(tmp_path, *args, env=env)
        assert res.returncode == 0, res.stdout + res.stderr
        assert f"run {target}" in res.stdout, res.stdout
        assert run_containers(docker_api, target) == [], "the named run's sandboxes must go"
        assert len(run_containers(docker_api, other)) == 1, f"--cleanup with the run id from {source} swept another run"
    finally:
        for cid in ids:
            try:
                docker_api.remove_container(cid, force=True)
            except Exception:  # noqa: BLE001 - already gone
                pass


def test_cleanup_with_disagreeing_run_ids_is_a_usage_error(tmp_path: Path) -> None:
    res = run_pytest(tmp_path, "--cleanup", "--resume", "run-a", env={"CLOUDEVAL_RUN_ID": "run-b"})
    assert res.returncode == pytest.ExitCode.USAGE_ERROR, res.stdout + res.stderr
    assert "disagree" in res.stderr


def test_cleanup_says_which_sandboxes_it_did_not_sweep(tmp_path: Path) -> None:
    """Without --sandbox=k8s no cluster is named: the account must say k8s was not swept (it said "swept")."""
    run_id = new_run_id("cleanup-account")
    res = run_pytest(tmp_path, "--cleanup", "--run-id", run_id)
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert f"cloudeval --cleanup: docker sandboxes swept (run {run_id}'s)" in lines, res.stdout
    k8s = [line for line in lines if line.startswith("cloudeval --cleanup: k8s ")]
    assert len(k8s) == 1 and "k8s sandboxes not swept: no cluster named" in k8s[0] and "--sandbox=k8s" in k8s[0], \
        res.stdout


def test_cloud_sweep_without_a_run_id_spares_the_local_engines_sandboxes(tmp_path: Path,
                                                                          docker_api: Any) -> None:  # noqa: F811
    """``--cleanup --cloud=gke [--keep-workers P]`` with no run id sweeps the cloud, not every run's
    containers on this machine (it did: a concurrent run's sandbox was killed mid-task)."""
    bystander = new_run_id("bystander")
    created = docker_api.create_container(BASE_IMAGE, command=["sleep", "infinity"],
                                          labels={"cloudeval": "true", "cloudeval.run": bystander},
                                          host_config=docker_api.create_host_config(init=True))
    docker_api.start(created["Id"])
    try:
        kubeconfig = tmp_path / "kubeconfig"  # no cluster: the cloud part fails, and says so
        res = run_pytest(tmp_path, "--cleanup", "--cloud=gke", f"--kubeconfig={kubeconfig}", "--keep-workers", "pool1")
        assert "docker sandboxes not swept: --cloud=gke without a run id" in res.stdout, res.stdout + res.stderr
        assert len(run_containers(docker_api, bystander)) == 1, "a cloud sweep removed a local sandbox of another run"
        # (``--sandbox=docker`` would name the local sweep of every run: not run here, it would empty the
        # engine under the other tests running in parallel.)
    finally:
        try:
            docker_api.remove_container(created["Id"], force=True)
        except Exception:  # noqa: BLE001 - already gone
            pass
