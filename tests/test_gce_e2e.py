"""End to end: ``pytest --cloud=gce -n N`` against the shipped GCE emulator, whose VMs are Docker
containers with sshd on 127.0.0.N. Each test runs pytest in a subprocess, as a user would.

Needs Docker; fails (does not skip) without it unless CLOUDEVAL_SKIP_DOCKER=1.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.live import LiveProcess

if os.environ.get("CLOUDEVAL_SKIP_DOCKER") == "1":
    pytest.skip("CLOUDEVAL_SKIP_DOCKER=1", allow_module_level=True)

from pytest_cloudeval.testing.gce_emulator import GceEmulator
from pytest_cloudeval.testing.gce_emulator.docker_vms import container_name
from tests.waiting import eventually

pytestmark = [pytest.mark.docker, pytest.mark.cloud]

REPO = Path(__file__).resolve().parent.parent
PROJECT = "emu-project"
ZONE = "us-central1-a"
ADD = "a, b = map(int, input().split())\nprint(a + b)\n"
SLOW_AGENT = '''import time

SOLUTION = {solution!r}


def run(input, **kwargs):
    (task_id,) = input
    # A marker on the VM, so a test knows when this task is in flight there.
    open(f"/tmp/cloudeval-agent-started-{{task_id}}", "w").close()
    time.sleep(float(kwargs.get("sleep", 0)))
    return {{task_id: SOLUTION}}
'''


@pytest.fixture(scope="module")
def emulator() -> Iterator[GceEmulator]:
    emu = GceEmulator(zones=[ZONE, "us-central1-b", "europe-west4-a"]).start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A rootdir with the shipped USACO benchmark, a small 'add' benchmark and a slow agent."""
    root = tmp_path_factory.mktemp("proj")
    (root / "pytest.ini").write_text("[pytest]\n")
    shutil.copytree(REPO / "benchmarks" / "usaco", root / "usaco", ignore=shutil.ignore_patterns("tools"))
    bench = root / "add"
    problems = {}
    for i in range(6):
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


def cloud_args(emulator: GceEmulator, run_id: str | None, results: Path) -> list[str]:
    args = ["-p", "no:cacheprovider", "--cloud=gce", f"--gce-api-endpoint={emulator.endpoint}",
            f"--gce-project={PROJECT}", f"--gce-zone={ZONE}", f"--results-dir={results}"]
    return args + ([f"--run-id={run_id}"] if run_id else [])


def pytest_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", *args]


def run(cwd: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(pytest_cmd(*args), cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=_env())
    return proc


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTEST_XDIST_WORKER", None)
    return env


class Live(LiveProcess):
    """A pytest subprocess whose output is read line by line in the background."""

    def __init__(self, cwd: Path, *args: str) -> None:
        super().__init__(pytest_cmd(*args), cwd, _env())


def run_instances(emulator: GceEmulator, run_id: str) -> list[dict[str, Any]]:
    return [i for i in emulator.instances() if run_id in i["name"]]


def agent_started_on(vm: str) -> list[str]:
    """Task ids whose agent started on the VM (markers in its container's /tmp)."""
    import importlib

    docker = importlib.import_module("docker")
    client = docker.from_env()
    try:
        container = client.containers.get(container_name(ZONE, vm))
        code, out = container.exec_run(["sh", "-c", "ls /tmp | grep cloudeval-agent-started- || true"])
        return [line.replace("cloudeval-agent-started-", "") for line in out.decode().split()]
    except docker.errors.NotFound:
        return []
    finally:
        client.close()


def results_of(results: Path, run_id: str, benchmark: str) -> dict[str, dict[str, Any]]:
    return {p.parent.name: json.loads(p.read_text()) for p in (results / run_id / benchmark).glob("*/result.json")}


def vm_of(worker: str) -> str:
    return worker.split("@", 1)[1]


# -- the tests ---------------------------------------------------------------------------------------
def test_shipped_usaco_benchmark_passes_on_four_vms(emulator: GceEmulator, project: Path, tmp_path: Path) -> None:
    results, junit = tmp_path / "results", tmp_path / "junit.xml"
    proc = run(project, "usaco", "--agent", "oracle", "-n", "4", f"--junitxml={junit}",
               *cloud_args(emulator, "e2e-usaco", results))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "12 passed" in out and "4 worker(s) on 4 VM(s) ready" in out
    assert "4 of 4 worker(s) start on the interpreter their code was shipped over" in out
    stored = results_of(results, "e2e-usaco", "usaco")
    assert len(stored) == 12 and all(r["outcome"] == "passed" for r in stored.values())
    vms = {vm_of(r["worker"]) for r in stored.values()}
    assert len(vms) >= 2 and all(vm.startswith("ce-e2e-usaco-") for vm in vms), vms
    for key in stored:  # the task folders came back from the VMs
        assert (results / "e2e-usaco" / "usaco" / key / "answer.txt").is_file()
    run_json = json.loads((results / "e2e-usaco" / "run.json").read_text())
    assert run_json["cloud"]["vm_seconds"] > 0 and run_json["cloud"]["workers"] == 4
    assert run_json["cloud"]["estimated_cost_usd"] > 0
    assert any("VM-seconds" in note for note in run_json["summary"]["notes"])
    cases = ET.parse(junit).getroot().findall(".//testcase")
    assert len(cases) == 12 and all(c.get("name") for c in cases)
    assert not run_instances(emulator, "e2e-usaco"), "every VM is deleted after the run"


def test_a_lost_vm_loses_no_task(emulator: GceEmulator, project: Path, tmp_path: Path) -> None:
    results, junit = tmp_path / "results", tmp_path / "junit.xml"
    run_id = "e2e-lost"
    live = Live(project, "add", "--agent", "agents/slow.py:run", "-A", "sleep=3", "-n", "3", "-rA",
                f"--junitxml={junit}", *cloud_args(emulator, run_id, results))
    try:
        live.wait_for(r"3 worker\(s\) on 3 VM\(s\) ready", timeout=120)
        victim = f"ce-{run_id}-1"
        started = eventually(lambda: agent_started_on(victim), timeout=60)
        assert started, "no task started on the victim VM"
        emulator.drop_instance(victim)
        code = live.finish()
    finally:
        live.kill()
    out = live.output
    assert code == 0, out
    assert "6 passed" in out and "1 rerun" in out, out
    assert f"VM {victim} is gone" in out
    stored = results_of(results, run_id, "add")
    assert len(stored) == 6 and all(r["outcome"] == "passed" for r in stored.values())
    # The task in flight on the victim ran again elsewhere as attempt 2 (a queued one just moved).
    rerun = [stored[task] for task in started if stored[task]["attempt"] == 2]
    assert len(rerun) == 1 and vm_of(rerun[0]["worker"]) != victim, [stored[task] for task in started]
    cases = ET.parse(junit).getroot().findall(".//testcase")
    assert len(cases) == 6 and all(c.get("name") for c in cases), "one named testcase per task"
    assert not run_instances(emulator, run_id)


def test_losing_every_vm_ends_with_errors_not_a_hang(emulator: GceEmulator, project: Path, tmp_path: Path) -> None:
    results, run_id = tmp_path / "results", "e2e-alllost"
    live = Live(project, "add", "--agent", "agents/slow.py:run", "-A", "sleep=2", "-n", "1",
                *cloud_args(emulator, run_id, results))
    try:
        live.wait_for(r"1 worker\(s\) on 1 VM\(s\) ready", timeout=120)
        assert eventually(lambda: agent_started_on(f"ce-{run_id}-0"), timeout=60)
        emulator.drop_instance(f"ce-{run_id}-0")
        code = live.finish(timeout=120)
    finally:
        live.kill()
    out = live.output
    assert code == 1, out
    assert "INTERNALERROR" not in out and "no live VM is left" in out
    run_json = json.loads((results / run_id / "run.json").read_text())
    tasks = run_json["tasks"]
    assert len(tasks) == 6, "every collected task is accounted for"
    lost = [t for t in tasks.values() if t["verdict"] == "LOST"]
    assert lost and all(t["outcome"] == "error" for t in lost)
    assert run_json["summary"]["passed"] + len(lost) == 6
    assert not run_instances(emulator, run_id)


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_interrupt_mid_run_leaves_no_instance(emulator: GceEmulator, project: Path, tmp_path: Path,
                                              signame: str) -> None:
    run_id = f"e2e-{signame.lower()}"
    live = Live(project, "add", "--agent", "agents/slow.py:run", "-A", "sleep=60", "-n", "2",
                *cloud_args(emulator, run_id, tmp_path / "results"))
    try:
        live.wait_for(r"2 worker\(s\) on 2 VM\(s\) ready", timeout=120)
        assert eventually(lambda: agent_started_on(f"ce-{run_id}-0"), timeout=60), "tasks never started"
        assert len(run_instances(emulator, run_id)) == 2
        live.proc.send_signal(getattr(signal, signame))
        t0 = time.monotonic()
        gone = eventually(lambda: not run_instances(emulator, run_id), timeout=30)
        elapsed = time.monotonic() - t0
        assert gone, f"instances left 30 s after {signame}: {run_instances(emulator, run_id)}"
        assert live.finish(timeout=60) != 0
    finally:
        live.kill()
    assert "deleted 2 VM(s)" in live.output, live.output
    print(f"no instance left {elapsed:.1f} s after {signame}")


def test_a_zone_out_of_capacity_falls_back(emulator: GceEmulator, project: Path, tmp_path: Path) -> None:
    emulator.fail_inserts(ZONE, "ZONE_RESOURCE_POOL_EXHAUSTED")
    try:
        proc = run(project, "add", "--agent", "oracle", "-n", "2", *cloud_args(emulator, "e2e-zone", tmp_path / "r"),
                   f"--gce-zone={ZONE},europe-west4-a")
    finally:
        emulator.reset_faults()
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert f"zone {ZONE} refused" in out and "ZONE_RESOURCE_POOL_EXHAUSTED" in out
    assert len(re.findall(r"running in europe-west4-a", out)) == 2, out
    assert "6 passed" in out
    assert not run_instances(emulator, "e2e-zone")


def test_keep_workers_reuses_the_pool_and_cleanup_sweeps(emulator: GceEmulator, project: Path,
                                                         tmp_path: Path) -> None:
    pool = f"p{os.getpid() % 10000}"
    common = ["add", "--agent", "oracle", "-n", "2", f"--keep-workers={pool}"]
    first = run(project, *common, *cloud_args(emulator, "e2e-pool-1", tmp_path / "r"))
    assert first.returncode == 0, first.stdout + first.stderr
    before = {i["name"]: i["containerId"] for i in run_instances(emulator, f"ce-pool-{pool}-")}
    assert len(before) == 2, "the pool is kept after the run"
    second = run(project, *common, *cloud_args(emulator, "e2e-pool-2", tmp_path / "r"))
    out = second.stdout + second.stderr
    assert second.returncode == 0, out
    assert "reused 2 VM(s) of the pool" in out and "code already there" in out
    after = {i["name"]: i["containerId"] for i in run_instances(emulator, f"ce-pool-{pool}-")}
    assert after == before, "the second run created no instance"

    status = run(project, "--cloud-status", *cloud_args(emulator, None, tmp_path / "r"))
    assert status.returncode == 0 and f"ce-pool-{pool}-0" in status.stdout and pool in status.stdout

    # A VM left by a killed run (our labels, no controller) and one that is not ours.
    from google.cloud import compute_v1

    from pytest_cloudeval.testing.gce_emulator import compute_clients, fast_polling

    instances, _ = compute_clients(emulator.endpoint)
    for name, labels in (("ce-leftover-0", {"cloudeval": "true", "cloudeval-run": "killed"}),
                         ("not-ours-0", {"team": "other"})):
        instances.insert(project=PROJECT, zone=ZONE, instance_resource=compute_v1.Instance(
            name=name, machine_type=f"zones/{ZONE}/machineTypes/e2-small", labels=labels,
        )).result(timeout=60, polling=fast_polling())
    try:
        # --run-id narrows the sweep to that run's VMs.
        narrow = run(project, "--cleanup", *cloud_args(emulator, "killed", tmp_path / "r"))
        assert narrow.returncode == 0, narrow.stdout + narrow.stderr
        left = {i["name"] for i in emulator.instances()}
        assert "ce-leftover-0" not in left and f"ce-pool-{pool}-0" in left, left
        instances.insert(project=PROJECT, zone=ZONE, instance_resource=compute_v1.Instance(
            name="ce-leftover-1", machine_type=f"zones/{ZONE}/machineTypes/e2-small",
            labels={"cloudeval": "true", "cloudeval-run": "killed-too"},
        )).result(timeout=60, polling=fast_polling())
        sweep = run(project, "--cleanup", *cloud_args(emulator, None, tmp_path / "r"))
        assert sweep.returncode == 0, sweep.stdout + sweep.stderr
        left = {i["name"] for i in emulator.instances()}
        assert "ce-leftover-1" not in left and f"ce-pool-{pool}-0" not in left, left
        assert "not-ours-0" in left, "cleanup touches only VMs with our marker label"
    finally:
        instances.delete(project=PROJECT, zone=ZONE, instance="not-ours-0").result(timeout=60,
                                                                                  polling=fast_polling())


def test_idle_watchdog_powers_off_a_vm_without_controller(emulator: GceEmulator, tmp_path: Path) -> None:
    """The VM-side watchdog: an open SSH session keeps a VM up; without one it powers off."""
    import execnet

    from pytest_cloudeval.backends.base import BootConfig
    from pytest_cloudeval.backends.gce import GceBackend
    from pytest_cloudeval.backends.gce.config import GceConfig
    from pytest_cloudeval.backends.ssh import ensure_key, make_gateway, wait_for_sshd, write_ssh_config
    from pytest_cloudeval.backends.watchdog import startup_script
    from pytest_cloudeval.settings import Settings

    cfg = GceConfig(project=PROJECT, zones=(ZONE,), machine_type="e2-small", spot=False, image="img", disk_gb=10,
                    api_endpoint=emulator.endpoint, service_account=None, ssh_user="cloudeval", idle_minutes=0.05,
                    ready_timeout_s=60)
    backend = GceBackend(cfg, Settings(run_id="e2e-idle"))
    key = ensure_key(tmp_path / "key", "test")
    boot = BootConfig(startup_script(4, "cloudeval", want_docker=False),
                      access={"user": "cloudeval", "public_key": key.public})
    plan = backend.plan("e2e-idle", 2, 1, None)
    group = execnet.Group()
    try:
        result = backend.provision(plan, boot, lambda line: None, threading.Event())
        idle, busy = sorted(result.vms, key=lambda vm: vm.name)
        conf = tmp_path / "busy.conf"
        write_ssh_config(conf, "busy", busy.address, 22, "cloudeval", key.private)
        wait_for_sshd(busy.address, 22, time.monotonic() + 30)
        gateway = make_gateway(group, "busy", conf, "python3", time.monotonic() + 30)

        def status(vm: Any) -> str:
            return next((i["status"] for i in emulator.instances() if i["name"] == vm.name), "GONE")

        assert eventually(lambda: status(idle) == "TERMINATED", timeout=40), status(idle)
        assert status(busy) == "RUNNING", "an open SSH session counts as a controller"
        gateway.exit()
        assert eventually(lambda: status(busy) == "TERMINATED", timeout=40), status(busy)
    finally:
        group.terminate(timeout=5)
        backend.teardown(lambda line: None)
    assert not run_instances(emulator, "e2e-idle")


def test_cloud_run_uploads_every_task_to_the_bucket(emulator: GceEmulator, project: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """VMs carry no store credentials: their shipped task folders are uploaded by the controller."""
    from pytest_cloudeval.testing.gcs import GcsEmulator

    with GcsEmulator(buckets=["evals"]) as gcs:
        for key, value in gcs.env().items():
            monkeypatch.setenv(key, value)
        results = tmp_path / "results"
        proc = run(project, "add", "--agent", "oracle", "-n", "2", "--artifacts-url", "gs://evals/ci",
                   *cloud_args(emulator, "e2e-gcs", results))
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out
        names = set(gcs.objects("evals"))
        tasks = sorted(results_of(results, "e2e-gcs", "add"))
        assert len(tasks) == 6
        for key in tasks:
            assert f"ci/e2e-gcs/add/{key}/result.json" in names and f"ci/e2e-gcs/add/{key}/answer.txt" in names
        assert "ci/e2e-gcs/run.json" in names
        assert "UPLOAD FAILED" not in out
        assert not run_instances(emulator, "e2e-gcs")


LEAK_CHECK_AGENT = '''import os

SOLUTION = {solution!r}


def run(input, **kwargs):
    """Solves the task only if the VM's disk carries no secrets file, no second benchmark copy and
    no file with the secret in it (the secret reaches this agent in its environment)."""
    (task_id,) = input
    secret = os.environ.get("CE_PIN", "")
    found = []
    for folder, dirs, names in os.walk("/var/tmp/cloudeval", followlinks=True):
        dirs[:] = [d for d in dirs if d != "results"]  # this run's own (redacted) outputs
        for name in names:
            path = os.path.join(folder, name)
            if name == "secrets.env" or (name == "benchmark.toml" and "_cloudeval_agent" in path):
                found.append(path)
            elif secret and os.path.getsize(path) < 1 << 20 and "/src/" in path:
                with open(path, "rb") as f:
                    if secret.encode() in f.read():
                        found.append(path)
    if found or not secret:
        return {{task_id: "print(" + repr("on the VM: " + repr(found) + " secret seen: " + str(bool(secret))) + ")"}}
    return {{task_id: SOLUTION}}
'''


def add_benchmark(folder: Path, count: int) -> None:
    problems = {}
    for i in range(count):
        pid = f"{200 + i}_bronze_add_{i}"
        # A generous time limit: this test is about what is shipped and collected, not speed, and
        # the shared CI machine can be slow.
        problems[pid] = {"name": f"Add {i}", "problem_id": pid, "problem_level": "bronze",
                         "description": "Print a+b.", "runtime_limit": 30, "memory_limit": 256, "num_tests": 1,
                         "solution_python3": ADD}
        (folder / "tests" / pid).mkdir(parents=True)
        (folder / "tests" / pid / "1.in").write_text(f"{i} {10 * i}\n")
        (folder / "tests" / pid / "1.out").write_text(f"{11 * i}\n")
    (folder / "problems.json").write_text(json.dumps(problems))
    (folder / "benchmark.toml").write_text('format = "usaco"\ndataset = "problems.json"\ntests_dir = "tests"\n')


def test_benchmark_and_agent_side_by_side_outside_the_project(emulator: GceEmulator, project: Path,
                                                              tmp_path: Path) -> None:
    """Issue 9.2: ``pytest /data/bench --agent /data/my_agent.py:run --cloud=gce -n 3`` from the
    project checkout. The agent's folder holds the benchmark, a secrets file and an old results
    folder: the VMs must collect the same 10 tasks as a local run (not 20), and get no secrets file
    and no second copy of the benchmark on their disk."""
    import tempfile

    # Under /var/tmp, so the only common ancestor with the project (under /tmp) is "/": pytest then
    # takes the benchmark folder as rootdir and the agent's folder is outside it, as in the report.
    data = Path(tempfile.mkdtemp(prefix="ce-side-by-side-", dir="/var/tmp"))
    try:
        add_benchmark(data / "bench", 10)
        (data / "my_agent.py").write_text(LEAK_CHECK_AGENT.format(solution=ADD))
        secret = "pin-7f3a9c2e5b"
        (data / "secrets.env").write_text(f"CE_PIN={secret}\n")
        old = data / "results" / "old-run"
        add_benchmark(old / "bench", 2)  # looks like a benchmark, but it is an earlier run's folder
        (old / "run.json").write_text("{}")
        # The secrets file comes from the environment: on the command line, its folder would count
        # in pytest's choice of rootdir, and the report's layout (rootdir = the benchmark) is the
        # one where the agent's folder, outside the rootdir, holds the benchmark.
        env = {**_env(), "CLOUDEVAL_SECRETS_ENV": str(data / "secrets.env")}
        args = [str(data / "bench"), "--agent", f"{data}/my_agent.py:run", "-p", "no:cacheprovider"]
        local = subprocess.run(pytest_cmd(*args, "--collect-only", "-q"), cwd=project, capture_output=True,
                               text=True, timeout=120, env=env)
        assert local.returncode == 0, local.stdout + local.stderr
        assert "10 tests collected" in local.stdout, local.stdout
        results = tmp_path / "results"
        proc = subprocess.run(pytest_cmd(*args, "-n", "3", *cloud_args(emulator, "e2e-side", results)),
                              cwd=project, capture_output=True, text=True, timeout=300, env=env)
        out = proc.stdout + proc.stderr
        assert f"rootdir: {data / 'bench'}" in out, out
        assert proc.returncode == 0, out
        assert "10 passed" in out and "20" not in re.findall(r"(\d+) passed", out), out
        assert sorted(p.name for p in (results / "e2e-side").iterdir() if p.is_dir()) == ["bench"]
        stored = results_of(results, "e2e-side", "bench")
        assert len(stored) == 10 and all(r["outcome"] == "passed" for r in stored.values()), stored
        assert not run_instances(emulator, "e2e-side")
    finally:
        shutil.rmtree(data, ignore_errors=True)
