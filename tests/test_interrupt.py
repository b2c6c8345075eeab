"""Ctrl+C and SIGTERM mid-task: finished tasks keep their results, the interrupted one stores no
passed/failed result, nothing the agent started survives, and ``--resume`` finishes the run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.usaco_factory import write_benchmark

AGENT = '''
import os, time
SOURCE = "a, b = map(int, input().split())\\nprint(a + b)\\n"

def run(input, **kwargs):
    (tid,) = input
    if "silver" in tid and not os.path.exists(os.environ["RELEASE_FILE"]):
        open(os.environ["STARTED_FILE"], "w").write(str(os.getpid()))
        time.sleep(600)
    return {tid: SOURCE}
'''


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_then_resume(tmp_path: Path, sig: signal.Signals) -> None:
    write_benchmark(tmp_path / "bench")
    (tmp_path / "agent.py").write_text(AGENT)
    env = dict(os.environ, STARTED_FILE=str(tmp_path / "started"), RELEASE_FILE=str(tmp_path / "release"))
    # Agents get a minimal environment: the two control files reach it as passed variables.
    cmd = [sys.executable, "-m", "pytest", "bench", "--agent", "agent.py:run", "--pass-env", "STARTED_FILE",
           "--pass-env", "RELEASE_FILE", "--run-id", "r", "-p", "no:cacheprovider"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    deadline = time.monotonic() + 60
    while not (tmp_path / "started").exists():
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        assert time.monotonic() < deadline, "the agent never started"
        time.sleep(0.05)
    time.sleep(0.2)
    agent_pid = int((tmp_path / "started").read_text())
    os.killpg(proc.pid, sig)  # what a terminal's Ctrl+C (or a process manager's SIGTERM) does
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
    time.sleep(0.5)
    assert not pid_alive(agent_pid), "the interrupted agent outlived the run"

    run_dir = tmp_path / "results" / "r" / "bench"
    bronze = json.loads((run_dir / "1001_bronze_add" / "result.json").read_text())
    assert bronze["outcome"] == "passed"
    silver = run_dir / "1002_silver_add" / "result.json"
    assert not silver.exists() or json.loads(silver.read_text())["outcome"] not in ("passed", "failed")
    assert not (run_dir / "1003_gold_add").exists()

    (tmp_path / "release").write_text("go")
    resumed = subprocess.run(cmd[:-4] + ["--resume", "r", "-p", "no:cacheprovider"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stdout
    results = {p.parent.name: json.loads(p.read_text()) for p in run_dir.glob("*/result.json")}
    assert {k: r["outcome"] for k, r in results.items()} == {
        "1001_bronze_add": "passed", "1002_silver_add": "passed", "1003_gold_add": "passed"}
    assert results["1001_bronze_add"]["started_at"] == bronze["started_at"], "a finished task ran again"
