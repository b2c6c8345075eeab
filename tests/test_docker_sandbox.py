"""The docker sandbox beyond the shared contract: limits read back from the container's cgroup, the
network, users, engine errors, unique names, nothing left behind (normal, failing, interrupted and
crashed runs, ``--cleanup``), and USACO verdicts identical to the local sandbox."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_cloudeval.errors import SandboxError
from pytest_cloudeval.model import Task
from pytest_cloudeval.sandbox.base import SandboxOptions, SandboxSpec
from tests.docker_support import (
    BASE_IMAGE,
    EngineCalls,
    docker_api,  # noqa: F401 - a fixture
    new_run_id,
    require_docker,
    run_containers,
    task_results,
    wait_no_containers,
    write_harbor_benchmark,
)
from tests.usaco_factory import problem, write_benchmark

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parent.parent


def docker_sandbox(tmp_path: Path, **spec: Any) -> Any:
    require_docker()
    from pytest_cloudeval.sandbox.docker import DockerSandbox

    run_id = str(spec.pop("run_id", new_run_id()))
    task = Task(benchmark="b", task_id="t", format="test", source=tmp_path, root=tmp_path, instruction="",
                agent_input={})
    values: dict[str, Any] = {"task": task, "run_id": run_id, "name": f"ce-{run_id}",
                              "labels": {"cloudeval.run": run_id}}
    values.update(spec)
    values.setdefault("options", SandboxOptions(run_id=run_id))
    return DockerSandbox(SandboxSpec(**values))


@pytest.fixture
def box_factory(tmp_path: Path) -> Iterator[Any]:
    made: list[Any] = []

    def make(**spec: Any) -> Any:
        box = docker_sandbox(tmp_path, **spec)
        made.append(box)
        box.start()
        return box

    yield make
    for box in made:
        box.close()


def read(box: Any, path: str) -> str:
    """A file of the running container (sysfs is not in the engine's file archive: cat it)."""
    result = box.exec(["cat", path], timeout=30)
    assert result.ok, result.stderr
    return result.stdout.strip()


# -- limits, network, users -------------------------------------------------------------------------

def test_limits_are_applied_in_the_cgroup(box_factory: Any) -> None:
    box = box_factory(cpus=0.5, memory_mb=200, pids_limit=100, network=False)
    assert int(read(box, "/sys/fs/cgroup/memory/memory.limit_in_bytes")) == 200 * 1024 * 1024
    # Swap is not a way around the limit: memory+swap is capped at the same value.
    assert int(read(box, "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")) == 200 * 1024 * 1024
    quota = int(read(box, "/sys/fs/cgroup/cpu/cpu.cfs_quota_us"))
    period = int(read(box, "/sys/fs/cgroup/cpu/cpu.cfs_period_us"))
    assert quota / period == pytest.approx(0.5)
    assert read(box, "/sys/fs/cgroup/pids/pids.max") == "100"
    assert box.exec(["ls", "/sys/class/net"], timeout=30).stdout.split() == ["lo"]
    assert box.describe()["limits"] == {"cpus": 0.5, "memory_mb": 200, "pids_limit": 100, "network": "none"}


def test_default_pids_limit_and_network_when_allowed(box_factory: Any) -> None:
    box = box_factory(network=True)
    assert read(box, "/sys/fs/cgroup/pids/pids.max") == "512"
    interfaces = box.exec(["ls", "/sys/class/net"], timeout=30).stdout.split()
    assert "lo" in interfaces and len(interfaces) > 1


def test_memory_limit_is_enforced(box_factory: Any) -> None:
    box = box_factory(memory_mb=64)
    result = box.exec(["python3", "-c", "b = bytearray(200 * 1024 * 1024); print('survived')"], timeout=60)
    assert "survived" not in result.stdout
    assert result.exit_code != 0


def test_storage_limit_is_applied_or_says_why_not(box_factory: Any, docker_api: Any) -> None:  # noqa: F811
    # Ask the engine itself, apart from the sandbox, whether it can limit a container's disk: the
    # sandbox must then say exactly that (applied and enforced, or not applied with the reason).
    import docker.errors

    run_id = new_run_id("storage-probe")
    try:
        probe = docker_api.create_container(BASE_IMAGE, ["true"], labels={"cloudeval": "true", "cloudeval.run": run_id},
                                            host_config=docker_api.create_host_config(storage_opt={"size": "100M"}))
    except docker.errors.APIError as e:
        supported, why = False, str(e)
    else:
        supported, why = True, ""
        docker_api.remove_container(probe["Id"], force=True)
    box = box_factory(storage_mb=100)
    applied = box.describe()["limits"]["storage_mb"]
    if supported:
        assert applied == 100
        size_mb = int(box.exec(["df", "-m", "--output=size", "/"], timeout=30).stdout.split()[-1])
        assert 80 <= size_mb <= 120, f"the root filesystem has {size_mb} MB, not about 100"
    else:
        assert "storage-opt" in why, why  # the probe failed for the storage option, nothing else
        assert isinstance(applied, str) and applied.startswith("not applied (100 MB asked)"), applied
        assert "storage" in applied[len("not applied (100 MB asked)"):], "the reason is missing"
    assert box.exec(["true"], timeout=30).ok


def test_runner_image_runs_as_its_non_root_user(box_factory: Any) -> None:
    box = box_factory()  # no image of its own: the runner image, user "agent"
    assert box.exec(["id", "-un"], timeout=30).stdout.strip() == "agent"
    box.write_file("/tmp/deep/new/file.txt", "x")
    owners = box.exec(["stat", "-c", "%U", "/tmp/deep/new", "/tmp/deep/new/file.txt"], timeout=30).stdout.split()
    assert owners == ["agent", "agent"]
    assert box.exec("echo more > /tmp/deep/new/other.txt", timeout=30).ok


def test_task_image_runs_as_its_own_user(box_factory: Any) -> None:
    box = box_factory(image=BASE_IMAGE, workdir="/app")
    assert box.exec(["id", "-u"], timeout=30).stdout.strip() == "0"
    assert box.exec(["pwd"], timeout=30).stdout.strip() == "/app"
    assert box.exec(["id", "-un"], timeout=30, user="nobody").stdout.strip() == "nobody"


def test_files_travel_with_the_next_command_or_by_upload(box_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_cloudeval.sandbox import docker as docker_module
    from pytest_cloudeval.sandbox import docker_engine

    box = box_factory()  # user "agent"
    box.write_file("mine.txt", "in the workdir")  # the agent may write here: unpacked by the exec
    assert box.exec(["cat", "mine.txt"], timeout=30).stdout == "in the workdir"
    box.write_file("/opt/root-owned/x.txt", "needs root")  # the agent may not: uploaded instead
    result = box.exec(["cat", "/opt/root-owned/x.txt"], timeout=30)
    assert result.stdout == "needs root", result.stderr
    assert box.exec(["stat", "-c", "%U", "/opt/root-owned/x.txt"], timeout=30).stdout.strip() == "agent"
    # An image without tar: found out once, then files are uploaded; the command runs once only.
    monkeypatch.setattr(docker_engine, "WRAPPER_UNTAR", docker_engine.WRAPPER_UNTAR.replace("tar -x", "no-tar -x"))
    monkeypatch.setattr(docker_module, "_untar_works", {})
    box.write_file("counted.txt", "x")
    assert box.exec("cat counted.txt; echo ran >> runs.txt", timeout=30).stdout == "x"
    assert docker_module._untar_works == {box.image: False}
    assert box.read_file("runs.txt") == b"ran\n"


SNAP_SETUP = "mkdir -p /logs/verifier /logs/agent && echo 1 > /logs/verifier/reward.txt && echo note > /logs/agent/a.txt"


def _copied(box: Any, dest: Path) -> dict[str, str]:
    report = box.copy_out_report("/logs", dest, 1 << 20)
    assert report is not None and not report.skipped
    return {str(p.relative_to(dest)): p.read_bytes().decode(errors="replace") for p in sorted(dest.rglob("*"))
            if p.is_file()}


def test_a_root_command_brings_a_folder_back_with_it(box_factory: Any, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """One engine call for the command and the copy of /logs; what is copied is what a fetch gives."""
    box = box_factory(user="0")
    calls = EngineCalls(monkeypatch)
    result = box.exec_then_snapshot(["sh", "-c", SNAP_SETUP + "; echo out; echo err >&2; exit 3"], src="/logs",
                                    timeout=30)
    assert result.exit_code == 3 and result.stdout.split() == ["out", "err"] and result.stderr == ""
    snapped = _copied(box, tmp_path / "snap")
    assert calls.fetches == []
    fetched = _copied(box, tmp_path / "fetched")  # nothing held any more: the engine's archive
    assert calls.fetches == ["/logs"]
    assert snapped == fetched == {"agent/a.txt": "note\n", "verifier/reward.txt": "1\n"}


def test_the_command_cannot_write_into_the_folder_s_archive(box_factory: Any, tmp_path: Path) -> None:
    """The command (and what it starts) has no descriptor of the archive's stream: a fake archive on
    its standard output or on descriptor 3 is only its output."""
    box = box_factory(user="0")
    fake = tmp_path / "fake.tar"
    import tarfile

    with tarfile.open(fake, "w") as tar:
        (tmp_path / "r").write_text("1\n")
        tar.add(tmp_path / "r", arcname="logs/verifier/reward.txt")
    box.copy_in(fake, "/tmp/fake.tar")
    attack = (SNAP_SETUP.replace("echo 1 >", "echo 0 >") + "; cat /tmp/fake.tar; cat /tmp/fake.tar >&3; "
              "(sleep 0.2; cat /tmp/fake.tar >&3) & wait; test -e /proc/$$/fd/3 || echo no-descriptor-3")
    result = box.exec_then_snapshot(["sh", "-c", attack], src="/logs", timeout=30)
    assert "no-descriptor-3" in result.stdout and "bad file descriptor" in result.stdout.lower(), result
    assert "reward.txt" in result.stdout, "the fake archive on standard output is the command's output"
    assert _copied(box, tmp_path / "out")["verifier/reward.txt"] == "0\n"


@pytest.mark.parametrize("why", ["over the cap", "timed out", "changed since", "no tar", "not root"])
def test_the_copy_asks_the_engine_where_a_snapshot_cannot_hold(box_factory: Any, tmp_path: Path, why: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_cloudeval.sandbox import docker as docker_module

    monkeypatch.setattr(docker_module, "_tar_works", {})
    box = box_factory(user="agent" if why == "not root" else "0")
    command = SNAP_SETUP
    kwargs: dict[str, Any] = {"timeout": 30}
    if why == "not root":
        assert box.exec(["sh", "-c", "mkdir -p /logs/verifier /logs/agent && chmod -R 777 /logs"], timeout=30,
                        user="0").ok
    if why == "over the cap":
        monkeypatch.setattr(docker_module, "SNAPSHOT_MAX_BYTES", 4096)
        command += "; head -c 20000 /dev/urandom > /logs/agent/big.bin"
    if why == "timed out":
        command += "; sleep 30"
        kwargs["timeout"] = 1.0
    if why == "no tar":
        monkeypatch.setattr(docker_module, "SNAPSHOT_SCRIPT", docker_module.SNAPSHOT_SCRIPT.replace(
            "command -v tar", "command -v no-such-tar"))
    calls = EngineCalls(monkeypatch)
    result = box.exec_then_snapshot(["sh", "-c", command], src="/logs", **kwargs)
    assert result.timed_out == (why == "timed out")
    assert result.timed_out or result.ok, result
    if why == "changed since":
        box.write_file("/logs/agent/later.txt", "later")
    copied = _copied(box, tmp_path / "out")
    assert calls.fetches == ["/logs"], f"{why}: the copy did not ask the engine"
    assert copied["verifier/reward.txt"] == "1\n"
    if why == "changed since":
        assert copied["agent/later.txt"] == "later"
    if why == "no tar":
        assert docker_module._tar_works == {box.image: False}, "an image without tar is found out once"


def test_secrets_reach_commands_as_environment_only(box_factory: Any, docker_api: Any) -> None:  # noqa: F811
    box = box_factory(env={"CLOUDEVAL_TEST_TOKEN": "tok-5ecret-1234"})
    assert box.exec('echo "$CLOUDEVAL_TEST_TOKEN"', timeout=30).stdout == "tok-5ecret-1234\n"
    info = json.dumps(docker_api.inspect_container(box.container_id))
    assert "tok-5ecret-1234" not in info  # neither the container's config nor its command line


# -- engine errors -----------------------------------------------------------------------------------

def test_missing_image_is_a_sandbox_error_with_a_fix(tmp_path: Path) -> None:
    box = docker_sandbox(tmp_path, image="cloudeval-missing/none:latest")
    with pytest.raises(SandboxError, match=r"image cloudeval-missing/none:latest not found.*setup-docker\.sh"):
        box.start()
    box.close()


def test_unreachable_engine_is_a_sandbox_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_cloudeval.sandbox import docker_engine

    box = docker_sandbox(tmp_path)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    monkeypatch.setattr(docker_engine, "_clients", {})
    monkeypatch.setattr(docker_engine, "_image_cache", {})
    monkeypatch.setattr(docker_engine, "_unreachable", None)
    started = time.monotonic()
    with pytest.raises(SandboxError, match="nonexistent.sock"):
        box.start()
    assert time.monotonic() - started < 15
    box.close()  # never raises, even with no engine


def run_pytest(cwd: Path, *args: str, timeout: float = 240, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pytest", *args, "-p", "no:cacheprovider", "-q", "-W", "ignore"]
    full_env = dict(os.environ, **(env or {}))
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), full_env.get("PYTHONPATH")]))
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env)


@pytest.mark.parametrize("how", ["no-engine", "no-image"])
def test_engine_trouble_is_a_test_error_not_a_failure(tmp_path: Path, how: str, docker_api: Any) -> None:  # noqa: F811
    write_benchmark(tmp_path / "bench", {"1001_bronze_add": problem("1001_bronze_add")})
    run_id = new_run_id("trouble")
    args = ["bench", "--agent", "oracle", "--sandbox=docker", "--run-id", run_id, "--junitxml", "j.xml"]
    env = {}
    if how == "no-engine":
        env["DOCKER_HOST"] = "unix:///nonexistent.sock"
    else:
        args += ["--sandbox-image", "cloudeval-missing/none:latest"]
    res = run_pytest(tmp_path, *args, env=env)
    assert res.returncode == 1, res.stdout + res.stderr
    assert res.stdout.strip().splitlines()[-1].startswith("1 error in"), res.stdout  # an error, no failure
    result = json.loads((tmp_path / "results" / run_id / "bench" / "1001_bronze_add" / "result.json").read_text())
    assert (result["outcome"], result["error_kind"]) == ("error", "sandbox")
    assert ("nonexistent.sock" if how == "no-engine" else "setup-docker.sh") in result["message"]
    assert "<error" in (tmp_path / "j.xml").read_text()


REQUIRING_TEST = """
from tests.docker_support import require_docker

def test_needs_docker():
    require_docker()
"""


def test_missing_docker_fails_docker_tests_unless_skipped_on_purpose(tmp_path: Path) -> None:
    (tmp_path / "test_needs.py").write_text(REQUIRING_TEST)
    no_engine = {"DOCKER_HOST": "unix:///nonexistent.sock", "CLOUDEVAL_SKIP_DOCKER": ""}
    res = run_pytest(tmp_path, "test_needs.py", "-rA", env=no_engine)
    assert res.returncode == 1 and "1 failed" in res.stdout and "setup-docker.sh" in res.stdout, res.stdout
    res = run_pytest(tmp_path, "test_needs.py", "-rA", env=dict(no_engine, CLOUDEVAL_SKIP_DOCKER="1"))
    assert res.returncode == 0 and "1 skipped" in res.stdout, res.stdout


# -- names and leftovers -----------------------------------------------------------------------------

def test_unique_names_under_repeat_and_xdist_and_nothing_left(tmp_path: Path, docker_api: Any) -> None:  # noqa: F811
    write_harbor_benchmark(tmp_path / "bench", ("t1", "t2"))
    run_id = new_run_id("names")
    res = run_pytest(tmp_path, "bench", "--agent", "oracle", "--sandbox=docker", "--repeat", "2", "-n", "4",
                     "--run-id", run_id)
    assert res.returncode == 0, res.stdout + res.stderr
    run_dir = tmp_path / "results" / run_id
    results = task_results(run_dir)
    assert sorted(results) == ["t1@r1", "t1@r2", "t2@r1", "t2@r2"]
    assert {r["outcome"] for r in results.values()} == {"passed"}
    names = [json.loads(p.read_text())["container"] for p in run_dir.glob("*/*/sandbox.json")]
    assert len(names) == 4 and len(set(names)) == 4, names
    assert all(run_id in name for name in names)
    assert wait_no_containers(docker_api, run_id, within=2) == []


def test_failing_and_erroring_runs_leave_nothing(tmp_path: Path, docker_api: Any) -> None:  # noqa: F811
    write_harbor_benchmark(tmp_path / "bench", ("t1",))
    write_harbor_benchmark(tmp_path / "broken", ("b1",), name="broken", test="echo no reward here\n")
    run_id = new_run_id("fail")
    res = run_pytest(tmp_path, "bench", "broken", "--agent", "noop", "--sandbox=docker", "-n", "2",
                     "--run-id", run_id)
    assert res.returncode == 1, res.stdout + res.stderr
    results = task_results(tmp_path / "results" / run_id)
    assert (results["t1"]["outcome"], results["b1"]["outcome"]) == ("failed", "error")
    assert wait_no_containers(docker_api, run_id, within=2) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_leaves_nothing(tmp_path: Path, docker_api: Any, sig: signal.Signals) -> None:  # noqa: F811
    write_harbor_benchmark(tmp_path / "bench", ("slow1", "slow2"), solve="sleep 120\n", agent_timeout=300)
    run_id = new_run_id("int")
    cmd = [sys.executable, "-m", "pytest", "bench", "--agent", "oracle", "--sandbox=docker", "-n", "2",
           "--run-id", run_id, "-p", "no:cacheprovider", "-q"]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while len(run_containers(docker_api, run_id)) < 2:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "the tasks never started"
            time.sleep(0.2)
        time.sleep(0.5)  # the oracle is running now
        os.killpg(proc.pid, sig)  # a terminal's Ctrl+C, or a process manager's SIGTERM
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0, out
    assert wait_no_containers(docker_api, run_id, within=5) == [], out


CRASHING_AGENT = '''
import os
from pathlib import Path
from pytest_cloudeval.agents.base import sandbox_agent

@sandbox_agent
def crash_once(task, sandbox, **kwargs):
    marker = Path(os.environ["CRASH_MARKER"])
    if not marker.exists():
        marker.write_text("crashed")
        sandbox.run("true")
        os._exit(3)  # the xdist worker dies with its container still running
    return sandbox.run("echo done > /app/out.txt").stdout
'''


def test_crashed_worker_leaves_nothing(tmp_path: Path, docker_api: Any) -> None:  # noqa: F811
    write_harbor_benchmark(tmp_path / "bench", ("t1",))
    (tmp_path / "agent.py").write_text(CRASHING_AGENT)
    run_id = new_run_id("crash")
    res = run_pytest(tmp_path, "bench", "--agent", "agent.py:crash_once", "--sandbox=docker", "-n", "2",
                     "--run-id", run_id, env={"CRASH_MARKER": str(tmp_path / "crashed")})
    assert (tmp_path / "crashed").exists(), res.stdout + res.stderr
    assert "crashed" in res.stdout, res.stdout
    assert wait_no_containers(docker_api, run_id, within=2) == [], res.stdout


def test_cleanup_removes_a_runs_leftovers(tmp_path: Path, docker_api: Any) -> None:  # noqa: F811
    run_id, other = new_run_id("left"), new_run_id("other")
    ids = []
    for rid in (run_id, run_id, other):
        created = docker_api.create_container(BASE_IMAGE, command=["sleep", "infinity"],
                                              labels={"cloudeval": "true", "cloudeval.run": rid},
                                              host_config=docker_api.create_host_config(init=True))
        docker_api.start(created["Id"])
        ids.append(created["Id"])
    try:
        res = run_pytest(tmp_path, "--cleanup", "--run-id", run_id)
        assert res.returncode == 0, res.stdout + res.stderr
        assert "docker sandboxes swept" in res.stdout
        assert run_containers(docker_api, run_id) == []
        assert len(run_containers(docker_api, other)) == 1, "--run-id must limit the sweep to that run"
    finally:
        for cid in ids:
            try:
                docker_api.remove_container(cid, force=True)
            except Exception:  # noqa: BLE001 - already gone
                pass


# -- USACO verdicts: docker == local -----------------------------------------------------------------

EDGE_SOLUTIONS = {
    "1001_bronze_accepted": "a, b = map(int, input().split())\nprint(a + b)\n",
    "1002_bronze_wrong": "input()\nprint(0)\n",
    "1003_bronze_tle": "while True:\n    pass\n",
    "1004_bronze_mle": "data = bytearray(1024 * 1024 * 1024)\nprint(len(data))\n",
    "1005_bronze_runtime": "raise ValueError('boom')\n",
    "1006_bronze_compile": "def broken(:\n",
}
EXPECTED = {"1001_bronze_accepted": "ACCEPTED", "1002_bronze_wrong": "WRONG_ANSWER",
            "1003_bronze_tle": "TIME_LIMIT", "1004_bronze_mle": "MEMORY_LIMIT",
            "1005_bronze_runtime": "RUNTIME_ERROR", "1006_bronze_compile": "COMPILE_ERROR"}


def judged(run_dir: Path) -> dict[str, tuple[str, list[str]]]:
    found = {}
    for path in sorted(run_dir.glob("*/*/judge.json")):
        report = json.loads(path.read_text())
        found[path.parent.name] = (report["verdict"], [t["verdict"] for t in report["tests"]])
    return found


@pytest.mark.parametrize("bench", ["edge-cases", "shipped"])
def test_usaco_verdicts_match_the_local_sandbox(tmp_path: Path, bench: str, docker_api: Any) -> None:  # noqa: F811
    if bench == "edge-cases":
        problems = {pid: problem(pid, solution=src, runtime_limit=1, num_tests=1) for pid, src in EDGE_SOLUTIONS.items()}
        target = str(write_benchmark(tmp_path / "edge", problems, tests={pid: [("1 2\n", "3\n")] for pid in problems}))
    else:
        target = str(REPO / "benchmarks" / "usaco")
    verdicts = {}
    for sandbox in ("local", "docker"):
        run_id = new_run_id(sandbox)
        res = run_pytest(tmp_path, target, "--agent", "oracle", f"--sandbox={sandbox}", "-n", "2",
                         "--run-id", run_id)
        assert res.returncode in (0, 1), res.stdout + res.stderr
        verdicts[sandbox] = judged(tmp_path / "results" / run_id)
    assert verdicts["docker"] == verdicts["local"]
    if bench == "edge-cases":
        assert {pid: v[0] for pid, v in verdicts["docker"].items()} == EXPECTED
    else:
        assert len(verdicts["docker"]) >= 6 and {v[0] for v in verdicts["docker"].values()} == {"ACCEPTED"}


def test_a_local_engine_client_skips_the_environment_lookups(monkeypatch: pytest.MonkeyPatch) -> None:
    """On the local socket no proxy or .netrc applies: the client does not look them up per call, and
    a proxy set in the environment does not break it."""
    require_docker()
    if os.environ.get("DOCKER_HOST", "unix://").split("://")[0] != "unix":
        pytest.skip("the engine is not on a local socket here")
    from pytest_cloudeval.sandbox import docker_engine as engine

    monkeypatch.setattr(engine, "_clients", {})
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    api = engine.client(engine.QUICK_TIMEOUT_S)
    assert api.trust_env is False
    assert api.ping()
