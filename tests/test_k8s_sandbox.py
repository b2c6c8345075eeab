"""The Kubernetes sandbox on the shipped emulator, and the emulator against the real kubectl.

Attacks: secrets in the pod spec, exec URLs or events (the emulator's access log is grepped); a
no-network pod with a network; limits not applied (read back from the pod's cgroup); pods or
policies left behind; start failures (unpullable image, unschedulable) that do not say why; an
evicted pod or a dropped exec stream taken for an answer. Also the Harbor benchmark end to end.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_cloudeval.errors import SandboxError
from pytest_cloudeval.model import Task
from pytest_cloudeval.sandbox.base import SandboxSpec
from tests.docker_support import new_run_id, task_results
from tests.k8s_support import access_log_lines, emulator, use_emulator

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parent.parent
SECRET = "s3cr3t-K8s-9d2e7b"


def make_box(tmp_path: Path, run_id: str, **spec: Any) -> Any:
    from pytest_cloudeval.sandbox.base import SandboxOptions
    from pytest_cloudeval.sandbox.k8s import K8sSandbox

    use_emulator(**spec.pop("k8s", {}))
    task = Task(benchmark="k8s-bench", task_id="t1", format="test", source=tmp_path, root=tmp_path,
                instruction="", agent_input={})
    values: dict[str, Any] = {"task": task, "run_id": run_id, "name": f"ce-{run_id}-{len(emulator().pods())}",
                              "options": SandboxOptions(run_id=run_id, output_cap_bytes=64 * 1024)}
    values.update(spec)
    return K8sSandbox(SandboxSpec(**values))


def test_secrets_never_reach_the_api_server_and_limits_apply(tmp_path: Path) -> None:
    run_id = new_run_id("k8s-sec")
    box = make_box(tmp_path, run_id, env={"API_KEY": SECRET}, cpus=0.5, memory_mb=200, network=False)
    box.start()
    try:
        result = box.exec('echo "$API_KEY"; echo "$EXTRA"', timeout=30, env={"EXTRA": SECRET + "-call"})
        assert result.stdout == f"{SECRET}\n{SECRET}-call\n"
        box.write_file("secret.txt", SECRET)
        assert box.read_file("secret.txt") == SECRET.encode()
        # Limits as the kernel sees them (cgroup v1 or v2).
        memory = box.exec("cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes",
                          timeout=30).stdout.strip()
        assert memory == str(200 * 1024 * 1024)
        cpu = box.exec("cat /sys/fs/cgroup/cpu.max 2>/dev/null || echo $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) "
                       "$(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)", timeout=30).stdout.split()
        assert int(cpu[0]) / int(cpu[1]) == pytest.approx(0.5)
        # No network: only the loopback interface exists.
        interfaces = box.exec("tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '", timeout=30).stdout.split()
        assert interfaces == ["lo"]
        pod = emulator().cluster.get_pod("default", box.pod)
        spec = pod["spec"]
        assert spec["automountServiceAccountToken"] is False and spec["enableServiceLinks"] is False
        assert spec["restartPolicy"] == "Never" and spec["activeDeadlineSeconds"] > 0
        assert spec["containers"][0]["securityContext"]["privileged"] is False
        assert pod["metadata"]["labels"]["cloudeval.run"] == run_id
        policies = emulator().cluster.list_policies("default")
        assert any(p["metadata"]["labels"].get("cloudeval.run") == run_id for p in policies)
        everything = json.dumps([pod, emulator().cluster.list_events(None), access_log_lines()])
        assert SECRET not in everything
    finally:
        box.close()
    from pytest_cloudeval.sandbox.k8s import K8sSandbox

    K8sSandbox.session_cleanup(run_id)
    assert not [p for p in emulator().pods() if p["metadata"]["labels"].get("cloudeval.run") == run_id]
    assert not [p for p in emulator().cluster.list_policies(None)
                if p["metadata"]["labels"].get("cloudeval.run") == run_id]


def test_unpullable_image_and_unschedulable_pod_say_why(tmp_path: Path) -> None:
    run_id = new_run_id("k8s-start")
    box = make_box(tmp_path, run_id, image="127.0.0.1:9/nothing/here:v1", k8s={"start_timeout_s": 4.0})
    with pytest.raises(SandboxError) as info:
        box.start()
    box.close()
    text = str(info.value)
    assert "127.0.0.1:9/nothing/here:v1" in text and ("ErrImagePull" in text or "ImagePullBackOff" in text), text
    big = make_box(tmp_path, run_id, cpus=500.0, k8s={"start_timeout_s": 2.0})
    with pytest.raises(SandboxError) as info:
        big.start()
    big.close()
    assert "Insufficient cpu" in str(info.value) and "unschedulable" in str(info.value), str(info.value)
    time.sleep(0.5)
    assert not [p for p in emulator().pods() if p["metadata"]["labels"].get("cloudeval.run") == run_id]


def test_evicted_pod_and_dropped_stream_are_sandbox_errors(tmp_path: Path) -> None:
    from pytest_cloudeval.sandbox.k8s_exec import SandboxLost

    run_id = new_run_id("k8s-lost")
    box = make_box(tmp_path, run_id)
    box.start()
    try:
        emulator().faults.set({"dropExecs": 1, "dropAfterSeconds": 0.5})
        with pytest.raises(SandboxLost):
            box.exec("sleep 5; echo late", timeout=30)
        assert box.exec("echo fine", timeout=30).stdout == "fine\n"
        emulator().evict(box.pod)
        with pytest.raises(SandboxLost):
            box.exec("echo after", timeout=30)
    finally:
        emulator().faults.set({"reset": True})
        box.close()


def run_pytest(cwd: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pytest", *args, "-p", "no:cacheprovider", "-q", "-W", "ignore", "-rA"]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.slow
@pytest.mark.parametrize("agent", ["oracle", "noop"])
def test_terminal_benchmark_on_k8s(tmp_path: Path, agent: str) -> None:
    emu = emulator()
    run_id = new_run_id(f"k8s-terminal-{agent}")
    (tmp_path / "secrets.env").write_text(f"CLOUDEVAL_TEST_SECRET={SECRET}\n")
    res = run_pytest(tmp_path, str(REPO / "benchmarks" / "terminal"), "--sandbox=k8s", "--kubeconfig",
                     str(emu.kubeconfig), "--agent", agent, "-n", "2", "--run-id", run_id,
                     "--secrets-env", "secrets.env")
    results = task_results(tmp_path / "results" / run_id)
    assert len(results) >= 6, res.stdout + res.stderr
    outcomes = {name: r["outcome"] for name, r in results.items()}
    expected = "passed" if agent == "oracle" else "failed"
    assert set(outcomes.values()) == {expected}, (outcomes, res.stdout[-3000:])
    assert not [p for p in emu.pods() if p["metadata"]["labels"].get("cloudeval.run") == run_id]
    assert SECRET not in json.dumps(access_log_lines())


def test_cleanup_sweeps_a_killed_runs_pods(tmp_path: Path) -> None:
    run_id = new_run_id("k8s-killed")
    box = make_box(tmp_path, run_id, network=False)
    box.start()  # never closed: as if its run was killed with -9
    res = run_pytest(tmp_path, "--cleanup", "--sandbox=k8s", "--kubeconfig", str(emulator().kubeconfig),
                     "--run-id", run_id, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"cloudeval --cleanup: k8s sandboxes swept (run {run_id}'s)" in res.stdout.splitlines(), res.stdout
    assert not [p for p in emulator().pods() if p["metadata"]["labels"].get("cloudeval.run") == run_id]
    assert not [p for p in emulator().cluster.list_policies(None)
                if p["metadata"]["labels"].get("cloudeval.run") == run_id]


def test_kubectl_against_the_emulator(tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is missing: scripts/setup-dev.sh installs one (bash scripts/setup-dev.sh)"
    emu = emulator()
    env = dict(os.environ, KUBECONFIG=str(emu.kubeconfig))
    run_id = new_run_id("k8s-kubectl")
    box = make_box(tmp_path, run_id)
    box.start()

    def kc(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([kubectl, *args], capture_output=True, text=True, env=env, input=stdin, timeout=60)

    try:
        # PID 1 of the pod reaps orphans: a double-forked child that exits leaves no zombie.
        box.exec("(sleep 0.3 &); exit 0", timeout=30)
        time.sleep(1.5)
        zombies = box.exec("for f in /proc/[0-9]*/stat; do s=$(cat $f 2>/dev/null); s=${s##*) }; "
                           "[ \"${s%% *}\" = Z ] && echo $f; done; true", timeout=30).stdout
        assert zombies == "", zombies
        listed = kc("get", "pods", "-l", f"cloudeval.run={run_id}")
        assert box.pod in listed.stdout and "Running" in listed.stdout, listed.stderr
        described = kc("describe", "pod", box.pod)
        assert "Started" in described.stdout and "automount" not in described.stderr, described.stderr
        assert kc("logs", box.pod).returncode == 0
        ran = kc("exec", box.pod, "--", "sh", "-c", "echo out; echo err >&2; exit 3")
        assert (ran.returncode, ran.stdout) == (3, "out\n") and "err" in ran.stderr
        assert kc("exec", "-i", box.pod, "--", "cat", stdin="piped\n").stdout == "piped\n"
        (tmp_path / "up.txt").write_text("uploaded")
        assert kc("cp", str(tmp_path / "up.txt"), f"{box.pod}:/tmp/up.txt").returncode == 0
        assert box.read_file("/tmp/up.txt") == b"uploaded"
        assert kc("cp", f"{box.pod}:/tmp/up.txt", str(tmp_path / "down.txt")).returncode == 0
        assert (tmp_path / "down.txt").read_text() == "uploaded"
        protocols = {line["headers"].get("Sec-WebSocket-Protocol") for line in access_log_lines()
                     if "/exec" in line["path"] and "kubectl" in line["headers"].get("User-Agent", "")}
        assert protocols == {"v5.channel.k8s.io"}
        deleted = kc("delete", "pods", "-l", f"cloudeval.run={run_id}", "--grace-period=0", "--force")
        assert box.pod in deleted.stdout, deleted.stderr
        assert not kc("get", "pods", "-l", f"cloudeval.run={run_id}", "-o", "name").stdout.strip()
    finally:
        box.close()


@pytest.mark.slow
def test_evicted_pods_task_is_run_again(tmp_path: Path) -> None:
    from tests.docker_support import write_harbor_benchmark

    emu = emulator()
    bench = write_harbor_benchmark(tmp_path / "bench", ("slow",), solve="sleep 4\necho done > /app/out.txt\n")
    run_id = new_run_id("k8s-evict")
    evicted: list[str] = []

    def evict_first_pod() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not evicted:
            for pod in emu.pods():
                if pod["metadata"]["labels"].get("cloudeval.run") == run_id and pod["status"].get("phase") == "Running":
                    time.sleep(1.0)  # the agent is at work
                    emu.evict(pod["metadata"]["name"])
                    evicted.append(pod["metadata"]["name"])
                    return
            time.sleep(0.1)

    import threading

    thread = threading.Thread(target=evict_first_pod, daemon=True)
    thread.start()
    res = run_pytest(tmp_path, str(bench), "--sandbox=k8s", "--kubeconfig", str(emu.kubeconfig), "--agent",
                     "oracle", "--run-id", run_id, "--attempts", "2")
    thread.join(timeout=5)
    assert evicted, res.stdout + res.stderr
    result = task_results(tmp_path / "results" / run_id)["slow"]
    assert (result["outcome"], result["attempt"]) == ("passed", 2), (result, res.stdout[-2000:])


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from tests.k8s_support import start_registry

    emulator()
    proc, address = start_registry(tmp_path_factory.mktemp("registry"))
    yield address
    proc.terminate()
    proc.wait(timeout=10)


@pytest.mark.slow
def test_local_images_are_pushed_to_the_registry_and_pulled_by_the_pod(tmp_path: Path, registry: str) -> None:
    import docker

    run_id = new_run_id("k8s-registry")
    box = make_box(tmp_path, run_id, image="cloudeval/base:bookworm", k8s={"image_registry": registry})
    box.start()
    try:
        assert box.pod_image.startswith(f"{registry}/cloudeval/base:"), box.pod_image
        assert box.exec("echo pulled", timeout=30).stdout == "pulled\n"
        pod = emulator().cluster.get_pod("default", box.pod)
        assert pod["spec"]["containers"][0]["image"] == box.pod_image
        # The registry really holds it: the engine pulls it back after the local tag is gone.
        api = docker.APIClient(version="auto")
        api.remove_image(box.pod_image)
        api.pull(box.pod_image)
    finally:
        box.close()
    missing = make_box(tmp_path, run_id, image=f"{registry}/no/such:tag", k8s={"start_timeout_s": 3.0})
    with pytest.raises(SandboxError) as info:
        missing.start()
    missing.close()
    assert f"{registry}/no/such:tag" in str(info.value) and "Failed to pull image" in str(info.value)


def _run_pods(run_id: str) -> list[str]:
    return [p["metadata"]["name"] for p in emulator().pods() if p["metadata"]["labels"].get("cloudeval.run") == run_id]


def _run_policies(run_id: str) -> list[str]:
    return [p["metadata"]["name"] for p in emulator().cluster.list_policies(None)
            if p["metadata"]["labels"].get("cloudeval.run") == run_id]


@pytest.mark.slow
def test_usaco_verdicts_match_the_local_sandbox(tmp_path: Path) -> None:
    from tests.test_docker_sandbox import EDGE_SOLUTIONS, EXPECTED, judged
    from tests.usaco_factory import problem, write_benchmark

    # A 3 s limit (the infinite loop still exceeds it): a loaded machine must not turn ACCEPTED into TIME_LIMIT.
    problems = {pid: problem(pid, solution=src, runtime_limit=3, num_tests=1) for pid, src in EDGE_SOLUTIONS.items()}
    target = str(write_benchmark(tmp_path / "edge", problems, tests={pid: [("1 2\n", "3\n")] for pid in problems}))
    verdicts = {}
    for sandbox in ("local", "k8s"):
        run_id = new_run_id(sandbox)
        res = run_pytest(tmp_path, target, "--agent", "oracle", f"--sandbox={sandbox}", "-n", "2", "--run-id", run_id,
                         "--kubeconfig", str(emulator().kubeconfig))
        assert res.returncode in (0, 1), res.stdout + res.stderr
        verdicts[sandbox] = judged(tmp_path / "results" / run_id)
        assert not _run_pods(run_id) and not _run_policies(run_id)
    assert verdicts["k8s"] == verdicts["local"]
    assert {pid: v[0] for pid, v in verdicts["k8s"].items()} == EXPECTED


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_leaves_no_pod_or_policy(tmp_path: Path, sig: signal.Signals) -> None:
    from tests.docker_support import write_harbor_benchmark

    emu = emulator()
    write_harbor_benchmark(tmp_path / "bench", ("slow1", "slow2"), solve="sleep 120\n", agent_timeout=300)
    run_id = new_run_id("k8s-int")
    cmd = [sys.executable, "-m", "pytest", "bench", "--agent", "oracle", "--sandbox=k8s", "--kubeconfig",
           str(emu.kubeconfig), "-n", "2", "--run-id", run_id, "-p", "no:cacheprovider", "-q"]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while len([p for p in emu.pods() if p["metadata"]["labels"].get("cloudeval.run") == run_id
                   and p["status"].get("phase") == "Running"]) < 2:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "the tasks never started"
            time.sleep(0.2)
        time.sleep(1.0)  # the oracle is running now
        assert _run_policies(run_id), "no-network pods run under the run's deny-all policy"
        os.killpg(proc.pid, sig)
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0, out
    assert not _run_pods(run_id), out
    assert not _run_policies(run_id), out


def test_failing_run_leaves_nothing(tmp_path: Path) -> None:
    from tests.docker_support import write_harbor_benchmark

    write_harbor_benchmark(tmp_path / "bench", ("t1",))
    run_id = new_run_id("k8s-fail")
    res = run_pytest(tmp_path, "bench", "--agent", "noop", "--sandbox=k8s", "--kubeconfig",
                     str(emulator().kubeconfig), "--run-id", run_id)
    assert res.returncode == 1, res.stdout + res.stderr
    assert task_results(tmp_path / "results" / run_id)["t1"]["outcome"] == "failed"
    assert not _run_pods(run_id) and not _run_policies(run_id)
