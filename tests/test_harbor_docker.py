"""Harbor task directories end to end in the docker sandbox: the shipped terminal benchmark (oracle
passes, noop fails), the edge-case fixtures (missing reward, timeouts, flood, limits, secrets),
agents acting inside the container, and task images built once per environment and reused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from pytest_cloudeval.errors import SandboxError
from pytest_cloudeval.sandbox import docker_images as images
from pytest_cloudeval.tasks import harbor_exec
from pytest_cloudeval.tasks.base import BrokenTask
from pytest_cloudeval.tasks.harbor import load_task_dir
from tests.docker_support import (
    EngineCalls,
    docker_api,  # noqa: F401 - a fixture
    new_run_id,
    require_docker,
    task_results,
    wait_no_containers,
    write_harbor_benchmark,
    write_harbor_task,
)

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parent.parent
TERMINAL = REPO / "benchmarks" / "terminal"
FIXTURES = REPO / "tests" / "fixtures" / "harbor"
SECRET = "s3cr3t-Harbor-4f9a1c"
OUTPUT_CAP = 200_000


def run_pytest(cwd: Path, *args: str, env: dict[str, str] | None = None,
               timeout: float = 300) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pytest", *args, "-p", "no:cacheprovider", "-q", "-W", "ignore", "-rA"]
    full_env = dict(os.environ, **(env or {}))
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), full_env.get("PYTHONPATH")]))
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env)


@pytest.mark.parametrize("agent", ["oracle", "noop"])
def test_terminal_benchmark(tmp_path: Path, agent: str, docker_api: Any) -> None:  # noqa: F811
    run_id = new_run_id(f"terminal-{agent}")
    res = run_pytest(tmp_path, str(TERMINAL), "--sandbox=docker", "--agent", agent, "-n", "2", "--run-id", run_id)
    results = task_results(tmp_path / "results" / run_id)
    assert len(results) >= 6, res.stdout + res.stderr
    outcomes = {name: r["outcome"] for name, r in results.items()}
    if agent == "oracle":
        assert res.returncode == 0, res.stdout + res.stderr
        assert set(outcomes.values()) == {"passed"}, outcomes
        assert all(r["score"] == 1.0 and r["verdict"] == "REWARD 1" for r in results.values())
    else:
        assert res.returncode == 1, res.stdout + res.stderr
        assert set(outcomes.values()) == {"failed"}, outcomes  # failures: the verifiers all ran
        assert all(r["score"] < 1.0 for r in results.values())
    multi = [r for r in results.values() if len([k for k in r["metrics"] if not k.startswith("agent.")]) > 1]
    assert multi, "reward.json metrics are recorded next to the reward"
    assert wait_no_containers(docker_api, run_id, within=2) == []


@pytest.fixture(scope="module")
def edge_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The edge-case fixtures, run once with the oracle, a secret and a small output cap."""
    require_docker()
    where = tmp_path_factory.mktemp("edge")
    (where / "secrets.env").write_text(f"CLOUDEVAL_TEST_SECRET={SECRET}\n")
    run_id = new_run_id("edge")
    res = run_pytest(where, str(FIXTURES), "--sandbox=docker", "--agent", "oracle", "-n", "2", "--run-id", run_id,
                     "--secrets-env", "secrets.env", "--junitxml", "junit.xml", "--output-cap", str(OUTPUT_CAP))
    run_dir = where / "results" / run_id
    return {"res": res, "where": where, "run_dir": run_dir, "results": task_results(run_dir),
            "dirs": {p.parent.name: p.parent for p in run_dir.glob("*/*/result.json")}}


def test_edge_cases_outcomes(edge_run: dict[str, Any]) -> None:
    res, results = edge_run["res"], edge_run["results"]
    assert res.returncode == 1, res.stdout + res.stderr
    got = {name: (r["outcome"], r["verdict"]) for name, r in results.items()}
    assert got == {
        "agent-timeout": ("failed", "AGENT_TIMEOUT"),
        "flood": ("passed", "REWARD 1"),
        "limits": ("passed", "REWARD 1"),
        "no-reward": ("error", "ERROR"),
        "secret-echo": ("passed", "REWARD 1"),
        "verifier-timeout": ("failed", "VERIFIER_TIMEOUT"),
    }, res.stdout
    assert results["no-reward"]["error_kind"] == "verifier"
    assert "no /logs/verifier/reward.txt or reward.json" in results["no-reward"]["message"]
    # The hanging oracle and verifier were stopped at their 2 s limits, not at the engine's.
    assert results["agent-timeout"]["duration_s"] < 10
    assert results["verifier-timeout"]["duration_s"] < 10


def test_flood_is_captured_with_a_cap(edge_run: dict[str, Any]) -> None:
    log = edge_run["dirs"]["flood"] / "logs" / "agent" / "oracle.log"
    text = log.read_text()
    assert log.stat().st_size < 2 * OUTPUT_CAP  # of 200 MB printed
    assert "bytes cut" in text and "flood finished" in text


def test_limits_seen_inside_match_the_task(edge_run: dict[str, Any]) -> None:
    result = edge_run["results"]["limits"]
    metrics = result["metrics"]
    assert metrics["cpus"] == 0.5  # task.toml: cpus = 0.5
    assert metrics["memory_limit_bytes"] == 256 * 1024 * 1024  # memory_mb = 256
    assert metrics["has_network"] == 0  # allow_internet = false
    applied = json.loads((edge_run["dirs"]["limits"] / "sandbox.json").read_text())
    assert applied["limits"] == {"cpus": 0.5, "memory_mb": 256, "pids_limit": 512, "network": "none"}


def test_secret_is_in_no_file_nor_report(edge_run: dict[str, Any]) -> None:
    where: Path = edge_run["where"]
    assert edge_run["results"]["secret-echo"]["outcome"] == "passed"  # so the agent did see it
    leaks = [p for p in where.rglob("*") if p.is_file() and p.name != "secrets.env"
             and SECRET.encode() in p.read_bytes()]
    assert leaks == []
    assert SECRET not in edge_run["res"].stdout + edge_run["res"].stderr
    collected = edge_run["dirs"]["secret-echo"] / "logs"
    assert "***REDACTED***" in (collected / "agent" / "echo.txt").read_text()
    assert "***REDACTED***" in (collected / "artifacts" / "leak.txt").read_text()
    assert "***REDACTED***" in (collected / "agent" / "oracle.log").read_text()


def test_logs_come_back_into_the_results_folder(edge_run: dict[str, Any]) -> None:
    limits = edge_run["dirs"]["limits"] / "logs"
    assert json.loads((limits / "verifier" / "reward.json").read_text())["reward"] == 1.0
    assert "interfaces:" in (limits / "verifier" / "test-output.txt").read_text()
    assert (limits / "agent" / "oracle.log").read_text().startswith("=== solution/solve.sh: exit 0")


HAL_AGENT = '''
import os

def run(input, **kwargs):
    (task_id, task), = input.items()
    assert "Write done" in task["instruction"]
    with open(os.path.join(task["workdir"], "out.txt"), "w") as f:
        f.write("done\\n")
    return {task_id: {"answer": "wrote it", "metrics": {"tokens_in": 11, "tokens_out": 3}}}
'''

HANDLE_AGENT = '''
from pytest_cloudeval.agents.base import sandbox_agent

@sandbox_agent
def act(task, sandbox, **kwargs):
    result = sandbox.run("echo done > out.txt && whoami", timeout=30)
    return result.stdout.strip()
'''


@pytest.mark.parametrize("agent", ["hal_agent.py:run", "handle_agent.py:act"])
def test_agents_act_inside_the_container(tmp_path: Path, agent: str, docker_api: Any) -> None:  # noqa: F811
    write_harbor_benchmark(tmp_path / "bench", ("t1",))
    (tmp_path / "hal_agent.py").write_text(HAL_AGENT)
    (tmp_path / "handle_agent.py").write_text(HANDLE_AGENT)
    run_id = new_run_id("agents")
    res = run_pytest(tmp_path, "bench", "--sandbox=docker", "--agent", agent, "--run-id", run_id)
    assert res.returncode == 0, res.stdout + res.stderr
    result = task_results(tmp_path / "results" / run_id)["t1"]
    assert result["outcome"] == "passed"
    answer = (tmp_path / "results" / run_id / "gen" / "t1" / "answer.txt").read_text()
    assert answer == ("wrote it" if agent.startswith("hal") else "root")
    assert not (tmp_path / "bench" / "t1" / "out.txt").exists(), "the agent must act in the container"


def test_task_and_verifier_environment_and_verifier_user(tmp_path: Path, docker_api: Any) -> None:  # noqa: F811
    bench = write_harbor_benchmark(tmp_path / "bench", ())
    write_harbor_task(
        bench, "envs", environment='memory_mb = 256\nallow_internet = false\nenv = { TASK_VAR = "t-1" }\n',
        verifier='user = "nobody"\nenv = { CHECK_VAR = "c-2" }\n',
        solve='echo "$TASK_VAR" > /app/out.txt\n',
        test=('mkdir -p /logs/verifier\n'
              'if [ "$(cat /app/out.txt)" = t-1 ] && [ "$CHECK_VAR" = c-2 ] && [ "$(id -un)" = nobody ]; '
              'then echo 1; else echo 0; fi > /logs/verifier/reward.txt\n'))
    run_id = new_run_id("envs")
    res = run_pytest(tmp_path, "bench", "--sandbox=docker", "--agent", "oracle", "--run-id", run_id)
    assert res.returncode == 0, res.stdout + res.stderr
    assert task_results(tmp_path / "results" / run_id)["envs"]["outcome"] == "passed"


def test_missing_docker_image_and_failing_build_are_errors(tmp_path: Path, docker_api: Any) -> None:  # noqa: F811
    bench = write_harbor_benchmark(tmp_path / "bench", ())
    write_harbor_task(bench, "named-image", dockerfile="",
                      environment='docker_image = "cloudeval-missing/none:1"\nallow_internet = false\n')
    write_harbor_task(bench, "bad-build", dockerfile="FROM cloudeval/base:bookworm\nRUN echo broken-step && exit 3\n")
    run_id = new_run_id("errors")
    res = run_pytest(tmp_path, "bench", "--sandbox=docker", "--agent", "oracle", "--run-id", run_id)
    assert res.returncode == 1, res.stdout + res.stderr
    results = task_results(tmp_path / "results" / run_id)
    assert {k: (r["outcome"], r["error_kind"]) for k, r in results.items()} == {
        "named-image": ("error", "sandbox"), "bad-build": ("error", "sandbox")}
    assert "cloudeval-missing/none:1" in results["named-image"]["message"]
    assert "never pulled" in results["named-image"]["message"]
    message = results["bad-build"]["message"]
    assert "task bad-build" in message and "broken-step" in message and "returned a non-zero code" in message


# -- images: built once per environment, reused ------------------------------------------------------

def test_image_is_built_once_and_reused(tmp_path: Path, docker_api: Any, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    token = os.urandom(6).hex()  # a new environment: nothing cached yet
    dockerfile = f"FROM cloudeval/base:bookworm\nRUN echo {token} > /token\n"
    first = load_task_dir(write_harbor_task(tmp_path, "reuse-a", dockerfile=dockerfile), "b")
    twin = load_task_dir(write_harbor_task(tmp_path, "reuse-b", dockerfile=dockerfile), "b")
    assert not isinstance(first, Exception) and hasattr(first, "private") and hasattr(twin, "private")
    builds: list[str] = []
    real_build = images.build

    def counting_build(env: Any, task_id: str, tag: str, digest: str) -> None:
        builds.append(tag)
        real_build(env, task_id, tag, digest)

    def ensure_image(task: Any) -> str:
        return images.resolve(task.environment, task.task_id, "cloudeval/runner:bookworm", False)

    monkeypatch.setattr(images, "build", counting_build)
    monkeypatch.setattr(images, "_resolved", {})
    tags: list[str] = []
    try:
        # Two workers at once: one builds, the other waits for it and reuses the image.
        threads = [threading.Thread(target=lambda: tags.append(ensure_image(first)))
                   for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert len(builds) == 1 and len(set(tags)) == 1 and tags[0].startswith("cloudeval-task/reuse-a:")
        image_id = docker_api.inspect_image(tags[0])["Id"]

        # A new process (empty cache) in a later run: the image is found, not built.
        monkeypatch.setattr(images, "_resolved", {})
        assert ensure_image(first) == tags[0]
        # Another task with an identical environment gets the same image under its own name.
        twin_tag = ensure_image(twin)
        tags.append(twin_tag)
        assert len(builds) == 1
        assert docker_api.inspect_image(twin_tag)["Id"] == image_id

        # Any change to the environment is a new image.
        (tmp_path / "reuse-a" / "environment" / "extra.txt").write_text("changed")
        monkeypatch.setattr(images, "_resolved", {})
        changed = ensure_image(first)
        tags.append(changed)
        assert changed != tags[0] and len(builds) == 2
    finally:
        for tag in set(tags):
            try:
                docker_api.remove_image(tag)
            except Exception:  # noqa: BLE001
                pass


def test_reward_parsing_errors_are_verifier_errors() -> None:
    from pytest_cloudeval.errors import VerifierError
    from pytest_cloudeval.sandbox.base import ExecResult

    def files(content: dict[str, bytes]) -> Any:
        def read(name: str) -> bytes:
            if name not in content:
                raise FileNotFoundError(name)
            return content[name]

        return read

    ran = ExecResult(exit_code=0, stdout="", stderr="")
    read = harbor_exec.read_reward
    assert read(files({"reward.txt": b" 0.25\n"}), ran) == (0.25, {"reward": 0.25}, "reward.txt")
    assert read(files({"reward.json": b'{"reward": 0.5, "a": 1, "note": "x"}', "reward.txt": b"0"}), ran) == (
        0.5, {"reward": 0.5, "a": 1}, "reward.json")
    assert read(files({"reward.json": b'{"score": 0.75}'}), ran)[0] == 0.75  # a single metric is the reward
    for content in ({}, {"reward.txt": b"nan"}, {"reward.txt": b"high"}, {"reward.json": b"[1]"},
                    {"reward.json": b"{bad"}, {"reward.json": b'{"a": 1, "b": 2}'}, {"reward.json": b'{"reward": "1"}'}):
        with pytest.raises(VerifierError):
            read(files(content), ran)


def test_ensure_image_needs_the_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_cloudeval.sandbox import docker_engine

    task = load_task_dir(write_harbor_task(tmp_path, "no-engine"), "b")
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    monkeypatch.setattr(docker_engine, "_clients", {})
    monkeypatch.setattr(docker_engine, "_unreachable", None)
    monkeypatch.setattr(images, "_resolved", {})
    with pytest.raises(SandboxError, match="nonexistent.sock"):
        assert not isinstance(task, BrokenTask)
        images.resolve(task.environment, task.task_id, "cloudeval/runner:bookworm", False)


def test_a_root_verifier_runs_in_one_command_and_a_broken_logs_folder_is_an_error(
        tmp_path: Path, docker_api: Any) -> None:  # noqa: F811
    """A verifier run as root makes its fresh /logs/verifier and runs test.sh in one exec; when the
    folder cannot be made (the agent turned /logs into a file) that is the sandbox's trouble, an
    error, not the verifier's exit code."""
    from pytest_cloudeval.runner import Attempt, sandbox_spec
    from pytest_cloudeval.sandbox.docker import DockerSandbox
    from pytest_cloudeval.settings import Settings

    task = load_task_dir(write_harbor_task(tmp_path / "tasks", "rootv"), "b")
    assert not isinstance(task, BrokenTask)
    settings = Settings().replace(run_id=new_run_id("rootv"), results_dir=tmp_path / "results")
    att = Attempt(task=task, fmt=None, agent=None, agent_name="", sandbox_cls=DockerSandbox,  # type: ignore[arg-type]
                  settings=settings, redactor=None)  # type: ignore[arg-type]
    for broken in (False, True):
        box = DockerSandbox(sandbox_spec(att))
        try:
            box.start()
            assert box.default_user_is_root
            harbor_exec.prepare(task, box, settings)
            setup = "echo done > /app/out.txt" + ("; rm -rf /logs && echo x > /logs" if broken else "")
            assert box.exec(["sh", "-c", setup], timeout=30).ok
            if broken:
                with pytest.raises(SandboxError, match="cannot make a fresh /logs/verifier"):
                    harbor_exec.verify(task, box, settings, tmp_path / "out")
            else:
                # Every engine call of the verifier and the copy of /logs: one exec, nothing else.
                with pytest.MonkeyPatch.context() as mp:
                    engine_calls = EngineCalls(mp)
                    judgement = harbor_exec.verify(task, box, settings, tmp_path / "out")
                calls = engine_calls.calls
                assert judgement.passed and judgement.score == 1.0, judgement
                assert [kind for kind, _ in calls] == ["exec"], calls
                assert (tmp_path / "out" / "logs" / "verifier" / "reward.txt").read_text().strip() == "1"
                owner = box.exec(["stat", "-c", "%u:%g %a", "/logs/verifier"], timeout=30)
                assert owner.stdout.strip() == "0:0 755", owner
        finally:
            box.close()
    assert wait_no_containers(docker_api, settings.run_id, within=5) == []
