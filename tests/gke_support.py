"""End-to-end helpers for ``--cloud=gke`` on the Kubernetes emulator: a project with benchmarks and
a slow agent, pytest subprocesses read line by line, and what the cluster holds for a run.

The emulator is the test process's (``tests/k8s_support.emulator()``); its pods are Docker
containers, so these tests need Docker and fail (not skip) without it unless CLOUDEVAL_SKIP_DOCKER=1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.k8s_support import emulator
from tests.live import LiveProcess

REPO = Path(__file__).resolve().parent.parent
ADD = "a, b = map(int, input().split())\nprint(a + b)\n"
SLOW_AGENT = '''import time

SOLUTION = {solution!r}


def run(input, **kwargs):
    (task_id,) = input
    # A marker in the worker pod, so a test knows when this task is in flight there.
    open(f"/tmp/cloudeval-agent-started-{{task_id}}", "w").close()
    time.sleep(float(kwargs.get("sleep", 0)))
    return {{task_id: SOLUTION}}
'''


def make_project(root: Path, tasks: int = 6) -> Path:
    """A rootdir with the shipped USACO benchmark, a small 'add' benchmark and a slow agent."""
    (root / "pytest.ini").write_text("[pytest]\n")
    shutil.copytree(REPO / "benchmarks" / "usaco", root / "usaco", ignore=shutil.ignore_patterns("tools"))
    bench = root / "add"
    problems = {}
    for i in range(tasks):
        pid = f"{100 + i}_bronze_add_{i}"
        problems[pid] = {"name": f"Add {i}", "problem_id": pid, "problem_level": "bronze",
                         "description": "Print a+b.", "runtime_limit": 2, "memory_limit": 256, "num_tests": 1,
                         "solution_python3": ADD}
        (bench / "tests" / pid).mkdir(parents=True)
        (bench / "tests" / pid / "1.in").write_text(f"{i} {10 * i}\n")
        (bench / "tests" / pid / "1.out").write_text(f"{11 * i}\n")
    (bench / "problems.json").write_text(json.dumps(problems))
    (bench / "benchmark.toml").write_text('format = "usaco"\ndataset = "problems.json"\ntests_dir = "tests"\n')
    (root / "agents").mkdir()
    (root / "agents" / "slow.py").write_text(SLOW_AGENT.format(solution=ADD))
    return root


def gke_args(run_id: str | None, results: Path, *extra: str) -> list[str]:
    """The options of a ``--cloud=gke`` run on the emulator (small pods: 50 fit its node)."""
    args = ["-p", "no:cacheprovider", "--cloud=gke", f"--kubeconfig={emulator().kubeconfig}",
            "--worker-cpu=250m", "--worker-memory=512Mi", f"--results-dir={results}", *extra]
    return args + ([f"--run-id={run_id}"] if run_id else [])


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("KUBECONFIG", None)
    return env


def run(cwd: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=_env())


class Live(LiveProcess):
    """A pytest subprocess whose output is read line by line in the background."""

    def __init__(self, cwd: Path, *args: str) -> None:
        super().__init__([sys.executable, "-m", "pytest", *args], cwd, _env())


def kubectl(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """The real kubectl against the emulator."""
    return subprocess.run(["kubectl", f"--kubeconfig={emulator().kubeconfig}", *args], capture_output=True,
                          text=True, timeout=timeout, check=False, env=_env())


def run_pods(run_id: str, running_only: bool = False) -> list[dict[str, Any]]:
    """The emulator's worker pods of ``run_id`` (what ``kubectl get pods -l`` shows)."""
    pods = [p for p in emulator().pods("default")
            if (p["metadata"].get("labels") or {}).get("cloudeval.run") == run_id
            and (p["metadata"].get("labels") or {}).get("cloudeval.workers") == "true"]
    if running_only:
        pods = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"
                and not p["metadata"].get("deletionTimestamp")]
    return pods


def leftovers(run_id: str) -> list[str]:
    """Every Job, pod, ServiceAccount, Role and RoleBinding of ``run_id`` still in the emulator
    (pods that ended by themselves count only while their container is still there)."""
    found = [f"pod/{p['metadata']['name']}" for p in emulator().pods("default")
             if (p["metadata"].get("labels") or {}).get("cloudeval.run") == run_id
             and (p.get("status") or {}).get("phase") in ("Pending", "Running")]  # workers' and task pods
    selector = f"cloudeval.workers=true,cloudeval.run={run_id}"
    for kind in ("jobs", "serviceaccounts", "roles", "rolebindings"):
        proc = kubectl("get", kind, "-l", selector, "-o", "name")
        if proc.returncode == 0:
            found += [line for line in proc.stdout.split() if line]
    return found


def pod_of(worker: str) -> str | None:
    """The pod of the worker Job ``worker`` (the ``cloudeval.worker`` label)."""
    for p in emulator().pods("default"):
        if (p["metadata"].get("labels") or {}).get("cloudeval.worker") == worker \
                and (p.get("status") or {}).get("phase") == "Running":
            return str(p["metadata"]["name"])
    return None


def agent_started_on(worker: str) -> list[str]:
    """Task ids whose agent started in the worker's pod (markers in its /tmp)."""
    pod = pod_of(worker)
    if pod is None:
        return []
    proc = kubectl("exec", pod, "-c", "worker", "--", "sh", "-c", "ls /tmp | grep cloudeval-agent-started- || true")
    return [line.replace("cloudeval-agent-started-", "") for line in proc.stdout.split()]


def results_of(results: Path, run_id: str, benchmark: str) -> dict[str, dict[str, Any]]:
    return {p.parent.name: json.loads(p.read_text()) for p in (results / run_id / benchmark).glob("*/result.json")}


def pod_of_result(result: dict[str, Any]) -> str:
    return str(result["worker"]).split("@", 1)[1]

