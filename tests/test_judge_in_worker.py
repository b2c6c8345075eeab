"""The USACO judge of a local sandbox runs in the worker (no judge interpreter per attempt), and every
submission it starts is still one of the sandbox's processes: in its cgroup, carrying its token, killed
with it (setsid daemons included), and never handed the run's secrets."""

from __future__ import annotations

import json
import os
import secrets
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from pytest_cloudeval.model import AgentOutput, Limits, Task
from pytest_cloudeval.sandbox import local as local_mod
from pytest_cloudeval.sandbox import local_jail
from pytest_cloudeval.sandbox.base import SandboxOptions, SandboxSpec
from pytest_cloudeval.sandbox.local import LocalSandbox
from pytest_cloudeval.settings import Settings
from pytest_cloudeval.tasks.usaco import UsacoData, UsacoFormat
from tests.waiting import eventually

SECRET = "s3cr3t-value-9d41"


class RecordingSandbox(LocalSandbox):
    """A subclass with its own ``exec`` (as a wrapping sandbox would have): the judge must use it."""

    calls: list[Any] = []

    def exec(self, cmd: Sequence[str] | str, **kwargs: Any) -> Any:  # type: ignore[override]
        self.calls.append(cmd)
        return super().exec(cmd, **kwargs)


@pytest.fixture
def no_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any command of a local sandbox fails: the judge must not need one."""
    def refuse(argv: Sequence[str], **kwargs: Any) -> Any:
        raise AssertionError(f"the local judge started a sandbox command: {argv!r}")

    monkeypatch.setattr(local_mod, "run_process", refuse)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _judge(box: LocalSandbox, tmp_path: Path, source: str, semantics: str = "script") -> Any:
    folder = tmp_path / "bench" / "tests" / "p"
    folder.mkdir(parents=True)
    (folder / "1.in").write_text("1 2\n")
    (folder / "1.out").write_text("3\n")
    task = Task(benchmark="b", task_id="p", format="usaco", source=tmp_path / "bench", root=tmp_path / "bench",
                instruction="", agent_input={}, limits=Limits(time_limit_s=20.0, test_memory_mb=256),
                private=UsacoData(reference=None, tests_dir=folder.parent, num_tests=1, where="test"))
    task_dir = tmp_path / "task"
    task_dir.mkdir()
    settings = Settings(run_id="inworker", usaco_judge=semantics)
    return UsacoFormat().judge(task, AgentOutput(answer=textwrap.dedent(source)), box, settings, task_dir)


@pytest.fixture
def run_id() -> Iterator[str]:
    """A run id of this test's own; its registry folder is swept at the end."""
    rid = f"inworker-{secrets.token_hex(4)}"
    yield rid
    assert local_jail.sweep(rid) == []


def _sandbox(cls: type[LocalSandbox], tmp_path: Path, run_id: str) -> LocalSandbox:
    task = Task(benchmark="b", task_id="p", format="usaco", source=tmp_path, root=tmp_path, instruction="",
                agent_input={})
    box = cls(SandboxSpec(task=task, run_id=run_id, name=f"ce-inworker-{tmp_path.name[-12:]}",
                          env={"CLOUDEVAL_TEST_SECRET": SECRET},
                          options=SandboxOptions(work_root=str(tmp_path / "work"))))
    box.start()
    return box


@pytest.mark.parametrize("semantics", ["hal", "script"])
@pytest.mark.usefixtures("no_commands")
def test_local_judge_starts_no_sandbox_command(tmp_path: Path, run_id: str, semantics: str) -> None:
    box = _sandbox(LocalSandbox, tmp_path, run_id)
    try:
        judgement = _judge(box, tmp_path, "a, b = map(int, input().split())\nprint(a + b)\n", semantics)
    finally:
        box.close()
    assert judgement.verdict == "ACCEPTED", judgement.message
    wrong = _sandbox(LocalSandbox, tmp_path / "again", run_id)
    try:
        judgement = _judge(wrong, tmp_path / "again", "print(4)\n", semantics)
    finally:
        wrong.close()
    assert judgement.verdict == "WRONG_ANSWER", judgement.message


@pytest.mark.parametrize("cgroup", [True, False], ids=["cgroup", "token-only"])
def test_submission_belongs_to_the_sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_id: str,
                                           cgroup: bool) -> None:
    """A setsid daemon started by the submission outlives the judge's group kill, not the sandbox."""
    if not cgroup:
        monkeypatch.setattr(local_jail, "cgroup_dirs", lambda token: [])
    probe = tmp_path / "probe.json"
    source = f"""
    import json, os, subprocess
    daemon = subprocess.Popen(["sleep", "300"], start_new_session=True, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open({str(probe)!r}, "w") as f:
        json.dump({{"daemon": daemon.pid, "env": dict(os.environ),
                    "cgroup": open("/proc/self/cgroup").read()}}, f)
    a, b = map(int, input().split())
    print(a + b)
    """
    box = _sandbox(LocalSandbox, tmp_path, run_id)
    try:
        jail = box._jail
        assert jail is not None
        judgement = _judge(box, tmp_path, source)
        assert judgement.verdict == "ACCEPTED", judgement.message
        seen = json.loads(probe.read_text())
        assert seen["env"].get(local_jail.TOKEN_VAR) == jail.token
        assert SECRET not in json.dumps(seen["env"]), "a secret of the run reached the submission"
        if cgroup and jail.groups:
            assert f"cloudeval-{jail.token.replace('/', '--')}" in seen["cgroup"]
        daemon = int(seen["daemon"])
        assert _alive(daemon), "the daemon died with the judge's group: nothing left to test"
        box.stop_processes()
        assert eventually(lambda: not _alive(daemon), timeout=10), "the submission's daemon survived its sandbox"
    finally:
        box.close()


def test_a_subclass_with_its_own_exec_judges_through_it(tmp_path: Path, run_id: str) -> None:
    RecordingSandbox.calls = []
    box = _sandbox(RecordingSandbox, tmp_path, run_id)
    try:
        assert box.host_launch() is None
        judgement = _judge(box, tmp_path, "a, b = map(int, input().split())\nprint(a + b)\n", "hal")
    finally:
        box.close()
    assert judgement.verdict == "ACCEPTED", judgement.message
    assert len(RecordingSandbox.calls) == 1, RecordingSandbox.calls
