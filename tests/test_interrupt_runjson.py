"""run.json after Ctrl+C agrees with the result files and with the real exit status (issue 9, item 14):
one Ctrl+C used to list only the tasks whose reports had reached the controller; a second Ctrl+C
during the teardown printed a raw traceback, exited 130 and left run.json saying exit 0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.usaco_factory import problem, write_benchmark

REPO = Path(__file__).resolve().parent.parent

AGENT = '''
import time

SOURCE = "a, b = map(int, input().split())\\nprint(a + b)\\n"

def run(input, **kwargs):
    (tid,) = input
    time.sleep(1.0)
    return {tid: SOURCE}
'''


def interrupted_run(tmp_path: Path, signals: int, gap: float) -> tuple[subprocess.CompletedProcess[str], Path]:
    names = [f"10{i:02d}_bronze_add{i}" for i in range(8)]
    write_benchmark(tmp_path / "bench", {n: problem(n) for n in names})
    (tmp_path / "agent.py").write_text(AGENT)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "pytest", "bench", "--agent", "agent.py:run", "--run-id", "r", "-n", "2",
           "-p", "no:cacheprovider", "-W", "ignore"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    run_dir = tmp_path / "results" / "r"
    deadline = time.monotonic() + 120
    while len(list(run_dir.glob("*/*/result.json"))) < 3:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        assert time.monotonic() < deadline, "no task finished"
        time.sleep(0.05)
    for index in range(signals):
        if index:
            time.sleep(gap)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl+C does: the whole process group
    out, _ = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, ""), run_dir


def check_run_json(res: subprocess.CompletedProcess[str], run_dir: Path) -> None:
    assert res.returncode == pytest.ExitCode.INTERRUPTED, res.stdout
    on_disk = {f"{p.parent.parent.name}/{p.parent.name}": json.loads(p.read_text())
               for p in run_dir.glob("*/*/result.json")}
    run = json.loads((run_dir / "run.json").read_text())
    assert run["exit_status"] == res.returncode
    assert {k: t["outcome"] for k, t in run["tasks"].items()} == {k: r["outcome"] for k, r in on_disk.items()}
    outcomes = [r["outcome"] for r in on_disk.values()]
    assert run["summary"]["tasks"] == len(on_disk)
    assert (run["summary"]["passed"], run["summary"]["error"]) == (outcomes.count("passed"), outcomes.count("error"))


@pytest.mark.slow
def test_one_ctrl_c_run_json_lists_every_result_file(tmp_path: Path) -> None:
    res, run_dir = interrupted_run(tmp_path, signals=1, gap=0)
    check_run_json(res, run_dir)


@pytest.mark.slow
@pytest.mark.parametrize("gap", [0.2, 1.0])
def test_double_ctrl_c_finishes_the_teardown_and_agrees_with_the_exit_status(tmp_path: Path, gap: float) -> None:
    res, run_dir = interrupted_run(tmp_path, signals=2, gap=gap)
    assert "Traceback" not in res.stdout, res.stdout
    check_run_json(res, run_dir)
