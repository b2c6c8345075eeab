"""The judge's gated start (``hal`` semantics, no ``run_as``): each submission's interpreter is spawned
with nothing to run between fork and exec (so ``subprocess`` may use ``vfork``), waits at its
bootstrap's gate while the judge puts it in the sandbox's cgroup and sets its limits with
``prlimit``, and only then reads and runs the submission. These tests attack the order: a submission
must never run a line before it is set up, and a set-up that fails leaves no process behind."""

from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_cloudeval.judge import usaco
from pytest_cloudeval.judge.usaco import JudgeSetupError, discover_tests, judge_submission

pytestmark = pytest.mark.skipif(not hasattr(resource, "prlimit"), reason="prlimit is Linux-only")


def _tests(root: Path, given: str = "1 2\n", expected: str = "3\n") -> list[tuple[Path, Path]]:
    folder = root / "tests" / "p"
    folder.mkdir(parents=True)
    (folder / "1.in").write_text(given)
    (folder / "1.out").write_text(expected)
    return discover_tests(root / "tests", "p")


class PopenRecorder:
    """Wraps ``subprocess.Popen`` to record what the judge asked of it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[dict[str, Any]] = []
        real = subprocess.Popen

        def record(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(kwargs)
            return real(*args, **kwargs)

        monkeypatch.setattr(usaco.subprocess, "Popen", record)


def _limits_of(text: str) -> dict[str, tuple[str, str]]:
    """``/proc/<pid>/limits`` as {name: (soft, hard)}."""
    found = {}
    for line in text.splitlines()[1:]:
        parts = line[:26].strip(), line[26:].split()
        found[parts[0]] = (parts[1][0], parts[1][1])
    return found


def test_submission_runs_only_after_the_judge_set_it_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``adopt`` takes its time (0.3 s) and leaves a mark; the submission prints whether the mark
    was there when its first line ran, and its own limits as the kernel holds them."""
    mark = tmp_path / "adopted"
    probe = tmp_path / "probe.json"
    pids: list[int] = []

    def adopt(pid: int) -> None:
        # The child exists and waits: its interpreter may be up, the submission has not run.
        assert not probe.exists()
        time.sleep(0.3)
        mark.write_text(str(pid))

    source = (f"import json, os\n"
              f"seen = os.path.exists({str(mark)!r})\n"
              f"json.dump({{'seen': seen, 'limits': open('/proc/self/limits').read()}}, open({str(probe)!r}, 'w'))\n"
              f"a, b = map(int, input().split())\nprint(a + b if seen else 'ran before set-up')\n")
    popen = PopenRecorder(monkeypatch)
    report = judge_submission(source, _tests(tmp_path), time_limit_s=3.0, memory_mb=256,
                              workdir=tmp_path / "work", semantics="hal", adopt=adopt, on_start=pids.append,
                              before_exec=lambda: None)
    assert report["verdict"] == "ACCEPTED", report
    assert popen.calls and all(call.get("preexec_fn") is None for call in popen.calls), \
        "the gated start still runs code in the forked child (no vfork)"
    seen = json.loads(probe.read_text())
    assert seen["seen"] is True
    assert mark.read_text() == str(pids[0])
    limits = _limits_of(seen["limits"])
    cpu = str(math.ceil(3.0) + 1)
    assert limits["Max cpu time"] == (cpu, str(int(cpu) + 1))
    assert limits["Max file size"] == (str(usaco._FILE_SIZE_LIMIT),) * 2
    assert limits["Max core file size"] == ("0", "0")
    # HAL's own limits, which the bootstrap sets on itself (memory_limit * 10**6 bytes).
    assert limits["Max address space"] == (str(256 * 1_000_000),) * 2


def test_a_failed_set_up_is_a_judge_error_and_leaves_no_process(tmp_path: Path) -> None:
    pids: list[int] = []
    ran = tmp_path / "ran"

    def adopt(pid: int) -> None:
        raise PermissionError(13, "Permission denied", "/sys/fs/cgroup/x/cgroup.procs")

    with pytest.raises(JudgeSetupError, match="cannot set up the submission's process.*Permission denied"):
        judge_submission(f"open({str(ran)!r}, 'w').write('x')\n", _tests(tmp_path), time_limit_s=3.0,
                         memory_mb=256, workdir=tmp_path / "work", semantics="hal", adopt=adopt,
                         on_start=pids.append)
    assert pids, "the submission's process was never started: nothing tested"
    assert not ran.exists(), "the submission ran although its set-up failed"
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)  # reaped, not a zombie either


def test_a_gone_judge_never_lets_the_submission_run(tmp_path: Path) -> None:
    """The gate opens only on the judge's byte: a closed pipe (the judge died) ends the child."""
    (tmp_path / "s.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w').write('x')\n")
    go_read, go_write = os.pipe()
    status_read, status_write = os.pipe()
    proc = subprocess.Popen([sys.executable, "-c", usaco._HAL_BOOTSTRAP, "s.py", "0", str(status_write),
                             str(go_read)], cwd=tmp_path, pass_fds=(go_read, status_write),
                            stdin=subprocess.DEVNULL)
    os.close(go_read)
    os.close(status_write)
    os.close(go_write)
    assert proc.wait(timeout=30) == 125
    assert os.read(status_read, 16) == b""
    os.close(status_read)
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize("case", ["child-side hook only", "script"])
def test_other_starts_keep_the_preexec_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    """A caller with only a child-side hook and plain-script semantics (no bootstrap to hold the gate)
    still set everything up between fork and exec (as a judge that drops to another user does: the
    Docker sandbox's, covered by its own tests)."""
    popen = PopenRecorder(monkeypatch)
    kwargs: dict[str, Any] = {"semantics": "script" if case == "script" else "hal"}
    if case == "child-side hook only":
        kwargs["before_exec"] = lambda: None
    report = judge_submission("a, b = map(int, input().split())\nprint(a + b)\n", _tests(tmp_path),
                              time_limit_s=3.0, memory_mb=256, workdir=tmp_path / "work", **kwargs)
    assert report["verdict"] == "ACCEPTED", report
    assert popen.calls and all(call.get("preexec_fn") is not None for call in popen.calls)


def test_adopt_alone_is_refused_where_the_gate_cannot_hold(tmp_path: Path) -> None:
    with pytest.raises(JudgeSetupError, match="needs the gated start"):
        judge_submission("print(3)\n", _tests(tmp_path), time_limit_s=3.0, memory_mb=256,
                         workdir=tmp_path / "work", semantics="script", adopt=lambda pid: None)
