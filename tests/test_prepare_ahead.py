"""Sandboxes prepared ahead (issue 14, goal 1): while a worker runs one item, the next item's
container comes up; it is used when that item runs, and removed in every other case (another item
runs next, ``-x``, Ctrl+C, a failed preparation), without help from the end-of-run label sweep.

The first tests drive ``PreparedSandboxes`` with a recording sandbox (no engine); the others run
pytest on generated Harbor tasks in real Docker and look at the engine's containers by label.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_cloudeval.errors import SandboxError
from pytest_cloudeval.model import Task
from pytest_cloudeval.prepare_ahead import PreparedSandboxes
from pytest_cloudeval.sandbox.base import SandboxSpec
from pytest_cloudeval.sandbox.local import LocalSandbox
from tests.docker_support import (
    docker_api,  # noqa: F401 - a fixture
    new_run_id,
    run_containers,
    task_results,
    wait_no_containers,
    write_harbor_benchmark,
)

REPO = Path(__file__).resolve().parent.parent


# -- PreparedSandboxes, with a recording sandbox ----------------------------------------------------

class Recording(LocalSandbox):
    """Records its lifecycle; ``prepare`` waits for ``gate`` and fails when ``fail`` is set."""

    prepares_ahead = True

    def __init__(self, spec: SandboxSpec, gate: threading.Event | None = None, fail: bool = False) -> None:
        super().__init__(spec)
        self.events: list[str] = []
        self.gate = gate
        self.fail = fail

    def prepare(self) -> None:
        self.events.append("prepare")
        if self.gate is not None:
            assert self.gate.wait(10)
        if self.fail:
            raise SandboxError("injected preparation failure")
        self.events.append("prepared")

    def close(self) -> None:
        self.events.append("close")
        super().close()


def spec(tmp_path: Path, task_id: str = "t1", attempt: int = 1, **changes: Any) -> SandboxSpec:
    task = Task(benchmark="b", task_id=task_id, format="test", source=tmp_path, root=tmp_path, instruction="",
                agent_input={})
    return SandboxSpec(task=task, run_id="r", name=f"ce-r-{task_id}-r1-a{attempt}-{os.urandom(3).hex()}",
                       **changes)


def test_take_returns_the_sandbox_prepared_for_the_same_spec(tmp_path: Path) -> None:
    ahead = PreparedSandboxes()
    first = spec(tmp_path)
    box = Recording(first)
    assert ahead.prepare("n1", box)
    assert not ahead.prepare("n1", Recording(first)), "one preparation per item"
    again = spec(tmp_path)  # the runner's own spec: the same attempt, another random name suffix
    assert again.name != first.name
    taken = ahead.take("n1", again)
    assert taken.sandbox is box and taken.note is None
    assert box.events == ["prepare", "prepared"], "taken: prepared, not closed"
    assert ahead.take("n1", again).sandbox is None, "taken once"
    ahead.shutdown()
    assert box.events == ["prepare", "prepared"], "a taken sandbox is the runner's to close"


@pytest.mark.parametrize("change", [{"memory_mb": 512}, {"network": False}, {"image": "other:tag"},
                                    {"attempt": 2}, {"env": {"K": "v"}}])
def test_a_sandbox_prepared_for_another_spec_is_discarded(tmp_path: Path, change: dict[str, Any]) -> None:
    ahead = PreparedSandboxes()
    box = Recording(spec(tmp_path))
    ahead.prepare("n1", box)
    taken = ahead.take("n1", spec(tmp_path, **change))
    assert taken.sandbox is None and "another spec" in (taken.note or "")
    ahead.shutdown()
    assert box.events[-1] == "close"


def test_a_sandbox_discarded_while_preparing_is_closed_after_prepare_returns(tmp_path: Path) -> None:
    gate = threading.Event()
    ahead = PreparedSandboxes()
    box = Recording(spec(tmp_path), gate=gate)
    ahead.prepare("n1", box)
    deadline = time.monotonic() + 5
    while "prepare" not in box.events and time.monotonic() < deadline:
        time.sleep(0.01)
    ahead.discard_except({"n2"})  # another item runs next
    time.sleep(0.1)
    assert box.events == ["prepare"], "never closed under a running prepare()"
    gate.set()
    ahead.shutdown()
    assert box.events == ["prepare", "prepared", "close"]
    assert ahead.pending() == []


def test_a_failed_preparation_is_closed_and_the_runner_falls_back(tmp_path: Path) -> None:
    ahead = PreparedSandboxes()
    box = Recording(spec(tmp_path), fail=True)
    ahead.prepare("n1", box)
    taken = ahead.take("n1", spec(tmp_path))
    assert taken.sandbox is None and "injected preparation failure" in (taken.note or "")
    assert box.events == ["prepare", "close"]
    assert ahead.failed == 1


def test_shutdown_discards_everything_and_refuses_new_work(tmp_path: Path) -> None:
    gate = threading.Event()
    ahead = PreparedSandboxes()
    boxes = [Recording(spec(tmp_path, f"t{i}"), gate=gate if i == 0 else None) for i in range(2)]
    for i, box in enumerate(boxes):
        ahead.prepare(f"n{i}", box)
    threading.Timer(0.2, gate.set).start()
    ahead.shutdown()  # waits for the gated preparation, which then closes its sandbox
    assert [b.events[-1] for b in boxes] == ["close", "close"]
    late = Recording(spec(tmp_path, "t9"))
    assert not ahead.prepare("n9", late) and late.events == []


# -- real runs in Docker ---------------------------------------------------------------------------

NO_SWEEP = '''
# The end-of-run label sweep is turned off: whatever is removed is removed by the worker itself.
from pytest_cloudeval.sandbox.docker import DockerSandbox

DockerSandbox.session_cleanup = classmethod(lambda cls, run_id: None)
'''

WRONG_NEXT = '''
# Each item is told a wrong next item (the one after the real next), as when xdist hands a worker
# other items than it announced: every sandbox prepared ahead is for an item that does not run next.
import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session):
    items = session.items
    for i, item in enumerate(items):
        told = items[i + 2] if i + 2 < len(items) else None
        item.config.hook.pytest_runtest_protocol(item=item, nextitem=told)
        if session.shouldstop or session.shouldfail:
            break
    return True
'''

FAIL_PREPARE = '''
# Every preparation creates its container, then fails: the runner must start a fresh one.
from pytest_cloudeval.errors import SandboxError
from pytest_cloudeval.sandbox.docker import DockerSandbox

_prepare = DockerSandbox.prepare


def failing(self):
    _prepare(self)
    raise SandboxError("injected: preparation failed after the container was created")


DockerSandbox.prepare = failing
'''


def run_pytest(cwd: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pytest", *args, "-p", "no:cacheprovider", "-q", "-W", "ignore", "-rA"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def sandbox_records(run_dir: Path) -> dict[str, dict[str, Any]]:
    import json

    return {p.parent.name: json.loads(p.read_text()) for p in sorted(run_dir.glob("*/*/sandbox.json"))}


@pytest.mark.docker
def test_the_next_items_container_comes_up_during_the_current_item_and_is_used(
        tmp_path: Path, docker_api: Any) -> None:  # noqa: F811
    names = [f"t{i}" for i in range(6)]
    write_harbor_benchmark(tmp_path / "bench", names)
    (tmp_path / "conftest.py").write_text(NO_SWEEP)
    run_id = new_run_id("ahead")
    res = run_pytest(tmp_path, "bench", "--sandbox=docker", "--agent", "oracle", "-n", "2", "--run-id", run_id)
    assert res.returncode == 0, res.stdout + res.stderr
    run_dir = tmp_path / "results" / run_id
    results, boxes = task_results(run_dir), sandbox_records(run_dir)
    assert set(results) == set(names) and {r["outcome"] for r in results.values()} == {"passed"}
    by_worker: dict[str, list[str]] = {}
    for name in sorted(results, key=lambda n: results[n]["started_at"]):
        by_worker.setdefault(results[name]["worker"], []).append(name)
    assert len(by_worker) == 2, by_worker
    for order in by_worker.values():
        first, rest = order[0], order[1:]
        assert results[first]["metrics"]["sandbox.prepared_ahead"] is False
        assert boxes[first]["prepared_ahead"] is False
        for before, name in zip(order[:-1], rest, strict=True):
            assert results[name]["metrics"]["sandbox.prepared_ahead"] is True, (name, results[name])
            assert boxes[name]["prepared_ahead"] is True
            # Created while the item before it (on the same worker) was still running.
            assert boxes[name]["created_at"] < results[before]["finished_at"], (boxes[name], results[before])
            assert boxes[name]["created_at"] < results[name]["started_at"]
    assert len({b["id"] for b in boxes.values()}) == len(names), "a container per attempt"
    assert wait_no_containers(docker_api, run_id, within=5) == []


@pytest.mark.docker
@pytest.mark.parametrize("xdist", [["-p", "no:xdist"], ["-n", "1"]], ids=["plain", "xdist"])
def test_x_after_a_failure_leaves_no_container(tmp_path: Path, docker_api: Any, xdist: list[str]) -> None:  # noqa: F811
    write_harbor_benchmark(tmp_path / "bench", ["t0", "t1", "t2"], solve="echo wrong > /app/out.txt\n")
    (tmp_path / "conftest.py").write_text(NO_SWEEP)
    run_id = new_run_id("ahead-x")
    res = run_pytest(tmp_path, "bench", "--sandbox=docker", "--agent", "oracle", "-x", *xdist, "--run-id", run_id)
    # xdist reports its -x stop as an interruption (exit 2), plain pytest as the failure (exit 1).
    assert res.returncode == (1 if xdist[0] == "-p" else 2), res.stdout + res.stderr
    results = task_results(tmp_path / "results" / run_id)
    assert results["t0"]["outcome"] == "failed"
    if xdist[0] == "-p":
        assert set(results) == {"t0"}, "-x stopped after the first failure; t1 was only prepared"
    assert wait_no_containers(docker_api, run_id, within=5) == []


@pytest.mark.docker
def test_a_wrong_next_item_discards_the_prepared_container(tmp_path: Path, docker_api: Any) -> None:  # noqa: F811
    names = ["t0", "t1", "t2", "t3"]
    write_harbor_benchmark(tmp_path / "bench", names)
    (tmp_path / "conftest.py").write_text(NO_SWEEP + WRONG_NEXT)
    run_id = new_run_id("ahead-wrong")
    res = run_pytest(tmp_path, "bench", "--sandbox=docker", "--agent", "oracle", "-p", "no:xdist", "--run-id", run_id)
    assert res.returncode == 0, res.stdout + res.stderr
    results = task_results(tmp_path / "results" / run_id)
    assert {r["outcome"] for r in results.values()} == {"passed"} and set(results) == set(names)
    # t2 and t3 were prepared (told as next of t0 and t1) but t1 and t2 ran next: all discarded.
    assert [results[n]["metrics"]["sandbox.prepared_ahead"] for n in names] == [False] * 4
    assert wait_no_containers(docker_api, run_id, within=5) == []


@pytest.mark.docker
def test_a_failed_preparation_falls_back_and_leaves_no_container(tmp_path: Path, docker_api: Any) -> None:  # noqa: F811
    names = ["t0", "t1", "t2"]
    write_harbor_benchmark(tmp_path / "bench", names)
    (tmp_path / "conftest.py").write_text(NO_SWEEP + FAIL_PREPARE)
    run_id = new_run_id("ahead-fail")
    res = run_pytest(tmp_path, "bench", "--sandbox=docker", "--agent", "oracle", "-p", "no:xdist", "--run-id", run_id)
    assert res.returncode == 0, res.stdout + res.stderr
    run_dir = tmp_path / "results" / run_id
    results = task_results(run_dir)
    assert {r["outcome"] for r in results.values()} == {"passed"} and set(results) == set(names)
    assert [results[n]["metrics"]["sandbox.prepared_ahead"] for n in names] == [False] * 3
    logs = {n: (p.parent / "agent.log").read_text() for n in names for p in run_dir.glob(f"*/{n}/result.json")}
    assert all("preparing the sandbox ahead failed" in logs[n] and "injected" in logs[n] for n in ("t1", "t2")), logs
    assert wait_no_containers(docker_api, run_id, within=5) == []


@pytest.mark.docker
@pytest.mark.parametrize("mode", ["plain-no-sweep", "xdist"])
def test_ctrl_c_while_the_next_container_is_prepared_leaves_none(
        tmp_path: Path, docker_api: Any, mode: str) -> None:  # noqa: F811
    """SIGINT to the process group while t0's agent runs and t1's container is up, prepared."""
    write_harbor_benchmark(tmp_path / "bench", ["t0", "t1", "t2"], solve="sleep 60\n", agent_timeout=120)
    run_id = new_run_id("ahead-int")
    args = ["-p", "no:xdist"] if mode.startswith("plain") else ["-n", "1"]
    if mode == "plain-no-sweep":
        (tmp_path / "conftest.py").write_text(NO_SWEEP)
    cmd = [sys.executable, "-m", "pytest", "bench", "--sandbox=docker", "--agent", "oracle", *args,
           "--run-id", run_id, "-p", "no:cacheprovider", "-q"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while len(run_containers(docker_api, run_id)) < 2:  # t0's (running its agent) and t1's (prepared)
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "the next item's container never came up"
            time.sleep(0.1)
        time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode != 0, out
    assert wait_no_containers(docker_api, run_id, within=5) == [], out
