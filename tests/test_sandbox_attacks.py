"""Attacks on the sandboxes, each of which must fail (issue 9 items 3, 13, 15, 17):

- an agent's ``setsid`` daemon rewrites the verifier's reward after ``test.sh`` wrote 0 (docker);
- ``setsid`` processes of the agent and of the judged submission outlive the run (local);
- a worker killed with ``kill -9`` leaves its agent process and sandbox folder behind (local);
- a Docker engine connection cut mid-command passes for the agent's own exit code;
- a USACO agent allocates 3 GiB (no memory cap), 50,000 artifact files all come back (no file cap).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pytest_cloudeval.errors import SandboxError
from tests.docker_support import (
    new_run_id,
    require_docker,
    task_results,
    write_harbor_benchmark,
    write_harbor_task,
)
from tests.usaco_factory import write_benchmark
from tests.waiting import eventually

REPO = Path(__file__).resolve().parent.parent


def run_pytest(cwd: Path, *args: str, timeout: float = 300, env: dict[str, str] | None = None,
               ) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pytest", *args, "-p", "no:cacheprovider", "-q", "-W", "ignore", "-rA"]
    full_env = dict(os.environ, **(env or {}))
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), full_env.get("PYTHONPATH")]))
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


# -- 13: nothing a task started survives its attempt (local sandbox) ---------------------------------

DAEMON_AGENT = '''
import subprocess
import time

def _lines(path):
    try:
        with open(path) as f:
            return len(f.read().split())
    except FileNotFoundError:
        return 0

def daemon(pidfile):
    # A new session, no shared group, no inherited output: invisible to group kills.
    before = _lines(pidfile)
    subprocess.Popen(["/usr/bin/setsid", "/bin/sh", "-c", f"echo $$ >> {pidfile}; exec sleep 300"],
                     start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)
    # Up before the agent returns (on a loaded machine the attempt's end could otherwise kill it
    # before it wrote its pid, and the test would prove nothing).
    deadline = time.monotonic() + 20
    while _lines(pidfile) <= before and time.monotonic() < deadline:
        time.sleep(0.02)

SUBMISSION = """import subprocess, time
def lines():
    try:
        return len(open("PIDFILE").read().split())
    except FileNotFoundError:
        return 0
before = lines()
subprocess.Popen(["/usr/bin/setsid", "/bin/sh", "-c", "echo $$ >> PIDFILE; exec sleep 300"],
                 start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL)
end = time.monotonic() + 5
while lines() <= before and time.monotonic() < end:
    time.sleep(0.02)
a, b = map(int, input().split())
print(a + b)
"""

def run(input, out, **kwargs):
    (tid,) = input
    daemon(out + "/agent-daemons.pids")
    return {tid: SUBMISSION.replace("PIDFILE", out + "/submission-daemons.pids")}
'''


def test_local_setsid_daemons_of_agent_and_submission_die_with_the_attempt(tmp_path: Path) -> None:
    write_benchmark(tmp_path / "bench")
    (tmp_path / "agent.py").write_text(DAEMON_AGENT)
    out = tmp_path / "out"
    out.mkdir()
    # The script judge lets a submission start processes (HAL's judge disables os.system, subprocess
    # and fork): the mode in which a daemon could outlive its attempt at all.
    res = run_pytest(tmp_path, "bench", "--agent", "agent.py:run", "-A", f"out={out}", "--run-id", "r",
                     "--usaco-judge", "script")
    assert res.returncode == 0, res.stdout + res.stderr  # the submissions are right: all pass
    agents = [int(p) for p in (out / "agent-daemons.pids").read_text().split()]
    submissions = [int(p) for p in (out / "submission-daemons.pids").read_text().split()]
    assert len(agents) == 3 and len(submissions) >= 3, "the daemons did not start (the test proves nothing)"
    survivors = eventually(lambda: [p for p in agents + submissions if alive(p)] == [], timeout=5)
    assert survivors, f"daemons outlived their attempts: {[p for p in agents + submissions if alive(p)]}"


HANGING_AGENT = '''
import json, os, subprocess, time

def run(input, out, **kwargs):
    (tid,) = input
    marker = out + "/first-run-done"
    if not os.path.exists(marker):
        open(marker, "w").close()
        pidfile = out + "/daemon.pid"
        subprocess.Popen(["/usr/bin/setsid", "/bin/sh", "-c", f"echo $$ > {pidfile}.tmp; mv {pidfile}.tmp {pidfile}; "
                          "exec sleep 300"], start_new_session=True,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while not os.path.exists(pidfile):
            time.sleep(0.02)
        daemon = int(open(pidfile).read())
        info = {"worker": os.getppid(), "agent": os.getpid(), "daemon": daemon, "folder": os.getcwd()}
        open(out + "/info.json.tmp", "w").write(json.dumps(info))
        os.rename(out + "/info.json.tmp", out + "/info.json")
        time.sleep(300)
    return {tid: "a, b = map(int, input().split())\\nprint(a + b)\\n"}
'''


@pytest.mark.slow
def test_local_worker_killed_leaves_no_process_or_folder(tmp_path: Path) -> None:
    from tests.usaco_factory import problem

    write_benchmark(tmp_path / "bench", {"1001_bronze_add": problem("1001_bronze_add")})
    (tmp_path / "agent.py").write_text(HANGING_AGENT)
    out = tmp_path / "out"
    out.mkdir()
    cmd = [sys.executable, "-m", "pytest", "bench", "--agent", "agent.py:run", "-A", f"out={out}", "--run-id", "r",
           "-n", "1", "-p", "no:cacheprovider", "-q"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert eventually(lambda: (out / "info.json").exists(), timeout=120), "the agent never started"
        info = json.loads((out / "info.json").read_text())
        assert alive(info["daemon"]) and alive(info["agent"]) and Path(info["folder"]).is_dir()
        os.kill(info["worker"], signal.SIGKILL)
        output, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    left = eventually(lambda: not any(alive(info[k]) for k in ("agent", "daemon")), timeout=5)
    assert left, f"after the worker's kill -9 these still run: {[k for k in ('agent', 'daemon') if alive(info[k])]}"
    assert not Path(info["folder"]).exists(), f"the dead worker's sandbox folder stayed: {info['folder']}\n{output}"


# -- 3: reward tampering (docker) --------------------------------------------------------------------

TAMPER_AGENT = '''
from pytest_cloudeval.agents.base import sandbox_agent

TAMPER = r"""
# Leave a daemon that keeps writing a perfect reward, and plant one in advance.
setsid sh -c 'while true; do mkdir -p /logs/verifier 2>/dev/null;
  echo 1 > /logs/verifier/reward.txt 2>/dev/null; sleep 0.02; done' >/dev/null 2>&1 < /dev/null &
mkdir -p /logs/verifier && echo '{"reward": 1}' > /logs/verifier/reward.json && chmod 444 /logs/verifier/reward.json
sleep 0.5
"""

@sandbox_agent
def act(task, sandbox, **kwargs):
    return sandbox.run(TAMPER, timeout=30).exit_code
'''
WRONG = "echo 0 > /logs/verifier/reward.txt\nsleep 1.5\n"
THREAD_AGENT = '''
import threading, time
from pytest_cloudeval.agents.base import sandbox_agent

@sandbox_agent
def act(task, sandbox, **kwargs):
    def forge():
        for _ in range(400):  # keeps going after the agent returned, while the verifier runs
            try:
                sandbox.run("mkdir -p /logs/verifier; echo 1 > /logs/verifier/reward.txt", timeout=5)
            except TimeoutError:
                return
            except Exception:
                pass
            time.sleep(0.01)
    threading.Thread(target=forge, daemon=True).start()
    time.sleep(0.3)
    return "done"
'''


@pytest.mark.docker
def test_a_daemon_of_the_agent_cannot_rewrite_the_reward(tmp_path: Path) -> None:
    require_docker()
    bench = write_harbor_benchmark(tmp_path / "bench", ())
    write_harbor_task(bench, "as-root", test=WRONG, verifier='user = "root"\n')
    write_harbor_task(bench, "default-user", test=WRONG)
    write_harbor_task(bench, "as-nobody", test=WRONG, verifier='user = "nobody"\n')
    (tmp_path / "tamper.py").write_text(TAMPER_AGENT)
    run_id = new_run_id("tamper")
    res = run_pytest(tmp_path, "bench", "--sandbox=docker", "--agent", "tamper.py:act", "--run-id", run_id)
    results = task_results(tmp_path / "results" / run_id)
    assert {k: (r["outcome"], r["score"]) for k, r in results.items()} == {
        "as-root": ("failed", 0.0), "default-user": ("failed", 0.0), "as-nobody": ("failed", 0.0)}, \
        res.stdout + res.stderr
    assert all(r["metrics"]["sandbox.agent_processes"] == "stopped" for r in results.values())
    assert res.returncode == 1
    # A thread the agent left in the worker cannot act through its handle once its phase is over.
    (tmp_path / "thread.py").write_text(THREAD_AGENT)
    thread_id = new_run_id("tamper-thread")
    res = run_pytest(tmp_path, "bench", "--sandbox=docker", "--agent", "thread.py:act", "--run-id", thread_id,
                     "-k", "as-root")
    assert task_results(tmp_path / "results" / thread_id)["as-root"]["outcome"] == "failed", res.stdout
    # The trade-off, explicit: with --keep-agent-processes the same daemon forges the reward.
    kept_id = new_run_id("tamper-kept")
    run_pytest(tmp_path, "bench", "--sandbox=docker", "--agent", "tamper.py:act", "--run-id", kept_id,
               "-k", "as-root", "--keep-agent-processes")
    kept = task_results(tmp_path / "results" / kept_id)["as-root"]
    assert (kept["outcome"], kept["metrics"]["sandbox.agent_processes"]) == ("passed", "kept"), kept


# -- 15: a connection cut mid-command is the sandbox's error (docker) ---------------------------------

class CuttableProxy:
    """A unix-socket proxy to the Docker engine whose open connections can be cut at once."""

    def __init__(self, path: Path, target: str = "/var/run/docker.sock") -> None:
        self.target = target
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(str(path))
        self.server.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.target)
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self.server.close()
        self.cut()


@pytest.mark.docker
def test_engine_connection_cut_mid_command_is_a_sandbox_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_docker()
    from pytest_cloudeval.model import Task
    from pytest_cloudeval.sandbox import docker_engine
    from pytest_cloudeval.sandbox.base import SandboxSpec
    from pytest_cloudeval.sandbox.docker import DockerSandbox

    sock = Path(f"/tmp/ce-proxy-{os.urandom(4).hex()}.sock")  # short: unix socket paths are limited
    proxy = CuttableProxy(sock)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{sock}")
    monkeypatch.setattr(docker_engine, "_clients", {})
    run_id = new_run_id("cut")
    task = Task(benchmark="b", task_id="t", format="test", source=tmp_path, root=tmp_path, instruction="",
                agent_input={})
    box = DockerSandbox(SandboxSpec(task=task, run_id=run_id, name=f"ce-{run_id}", labels={"cloudeval.run": run_id}))
    try:
        box.start()
        assert box.exec("echo fine", timeout=30).stdout == "fine\n"  # through the proxy, before the cut
        timer = threading.Timer(1.0, proxy.cut)
        timer.start()
        with pytest.raises(SandboxError, match="lost in the middle of the command"):
            box.exec("echo start; sleep 4; echo end", timeout=30)
        timer.join()
        # The agent's own exit code 126 is still the agent's.
        assert box.exec("exit 126", timeout=30).exit_code == 126
    finally:
        box.close()
        from pytest_cloudeval.sandbox.docker import wait_for_removals

        wait_for_removals()
        proxy.close()
        sock.unlink(missing_ok=True)


# -- 17: memory and file-count caps ------------------------------------------------------------------

GREEDY_AGENT = '''
def run(input, **kwargs):
    (tid,) = input
    block = bytearray(3 * 1024 ** 3)
    for i in range(0, len(block), 4096):  # touch every page: really use 3 GiB
        block[i] = 1
    return {tid: "print('allocated 3 GiB')"}
'''


@pytest.mark.parametrize("sandbox", ["local", pytest.param("docker", marks=pytest.mark.docker)])
def test_usaco_agents_have_a_memory_cap(tmp_path: Path, sandbox: str) -> None:
    if sandbox == "docker":
        require_docker()
    from tests.usaco_factory import problem

    write_benchmark(tmp_path / "bench", {"1001_bronze_add": problem("1001_bronze_add")})
    (tmp_path / "agent.py").write_text(GREEDY_AGENT)
    run_id = new_run_id("greedy")
    res = run_pytest(tmp_path, "bench", "--agent", "agent.py:run", f"--sandbox={sandbox}", "--run-id", run_id)
    result = task_results(tmp_path / "results" / run_id).get("1001_bronze_add")
    assert result is not None, res.stdout + res.stderr
    assert (result["outcome"], result["verdict"]) == ("failed", "AGENT_ERROR"), result
    assert result["metrics"]["sandbox.memory_mb"] == 2048  # the default cap, recorded
    record = json.loads((tmp_path / "results" / run_id / "bench" / "1001_bronze_add" / "sandbox.json").read_text())
    assert record["limits"]["memory_mb"] == 2048


@pytest.mark.docker
@pytest.mark.slow
def test_artifact_file_count_is_capped_and_reported(tmp_path: Path) -> None:
    require_docker()
    bench = write_harbor_benchmark(tmp_path / "bench", ())
    write_harbor_task(bench, "many-files", solve=(
        "echo done > /app/out.txt\nmkdir -p /logs/artifacts/many && cd /logs/artifacts/many && "
        "seq -f f%g.txt 1 50000 | xargs touch\n"), agent_timeout=600)
    (tmp_path / "pytest.ini").write_text("[pytest]\ncloudeval_copy_max_files = 5\n")  # the CLI wins over ini
    run_id = new_run_id("files")
    res = run_pytest(tmp_path, "bench", "--sandbox=docker", "--agent", "oracle", "--run-id", run_id,
                     "--copy-max-files", "2000")
    result = task_results(tmp_path / "results" / run_id)["many-files"]
    assert result["outcome"] == "passed", res.stdout + res.stderr
    logs = tmp_path / "results" / run_id / "gen" / "many-files" / "logs"
    ours = {"LEFT_OUT.txt", "test-output.txt"}  # written on the host, not copied
    copied = sum(1 for p in logs.rglob("*") if p.is_file() and p.name not in ours)
    report = json.loads((logs.parent / "copy.json").read_text())
    # 50,000 artifacts + oracle.log + reward.txt came from the container; 2,000 came back.
    assert copied == report["files"] == 2000
    assert report["skipped"] == 50002 - 2000 and not report["stopped_early"]
    assert "over the 2000-file cap" in (logs / "LEFT_OUT.txt").read_text()
    assert "48002 file(s) of /logs left out" in result["message"]
    assert result["metrics"]["logs_left_out"] == 48002
    assert result["metrics"]["sandbox.copy_max_files"] == 2000


def test_local_without_a_cgroup_still_finds_detached_daemons(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where no cgroup can be made (no rights), the environment token finds setsid daemons."""
    from pytest_cloudeval.model import Task
    from pytest_cloudeval.sandbox import local_jail
    from pytest_cloudeval.sandbox.base import SandboxOptions, SandboxSpec
    from pytest_cloudeval.sandbox.local import LocalSandbox

    monkeypatch.setattr(local_jail, "cgroup_dirs", lambda token: [])
    task = Task(benchmark="b", task_id="t", format="test", source=tmp_path, root=tmp_path, instruction="",
                agent_input={})
    box = LocalSandbox(SandboxSpec(task=task, run_id="nocg", name="ce-nocg",
                                   options=SandboxOptions(work_root=str(tmp_path / "work"))))
    box.start()
    try:
        assert box.describe()["processes"] == "environment token"
        started = box.exec("setsid sh -c 'echo $$ > d.pid; exec sleep 300' >/dev/null 2>&1 < /dev/null & "
                           "for i in $(seq 100); do [ -s d.pid ] && break; sleep 0.05; done; cat d.pid", timeout=30)
        pid = int(started.stdout)
        assert alive(pid)
        box.stop_processes()
        assert eventually(lambda: not alive(pid), timeout=5), "the daemon survived without a cgroup"
    finally:
        box.close()
