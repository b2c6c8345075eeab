"""Reporters are an extension point: a toy reporter registered from a conftest.py writes its file at
the end of the run and the store uploads it with no change to the store; report.html is written at
the end of every run, also after Ctrl+C (for what finished)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_gcs_store import make_usaco, right
from tests.test_interrupt import AGENT
from tests.usaco_factory import write_benchmark

TOY_CONFTEST = '''
from pytest_cloudeval.reporters.base import Reporter


class ToyReporter(Reporter):
    name = "toy"
    filename = "toy.txt"

    def render(self, run, ctx):
        outcomes = ",".join(f"{key}={r['outcome']}" for key, r in sorted(run.results.items()))
        return f"{run.info.run_id} {run.stats['passed']}/{run.stats['tasks']} {outcomes}\\n".encode()


def pytest_cloudeval_reporters():
    return [ToyReporter()]
'''


@pytest.mark.cloud
@pytest.mark.slow
def test_a_reporter_from_a_conftest_writes_and_is_uploaded(pytester: pytest.Pytester,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_cloudeval.testing.gcs import GcsEmulator

    make_usaco(pytester.path, {"p1": right("p1"), "p2": None})
    pytester.makeconftest(TOY_CONFTEST)
    result = pytester.runpytest_subprocess("bench", "-p", "no:cacheprovider", "--agent", "oracle", "--run-id", "toy",
                                           timeout=180)
    assert result.ret == 1, result.stdout.str()
    run_dir = pytester.path / "results" / "toy"
    assert (run_dir / "toy.txt").read_text() == "toy 1/2 bench/p1=passed,bench/p2=failed\n"
    assert (run_dir / "report.html").is_file() and (run_dir / "run.json").is_file()

    with GcsEmulator(buckets=["toys"]) as emu:
        for name, value in emu.env().items():
            monkeypatch.setenv(name, value)
        result = pytester.runpytest_subprocess("bench", "-p", "no:cacheprovider", "--agent", "oracle", "--run-id",
                                               "toy2", "--artifacts-url", "gs://toys/ci", timeout=180)
        assert result.ret == 1, result.stdout.str()
        objects = emu.objects("toys", "ci/toy2/")
        assert bytes(emu.read("toys", "ci/toy2/toy.txt")) == \
            b"toy2 1/2 bench/p1=passed,bench/p2=failed\n"
        assert {"ci/toy2/run.json", "ci/toy2/summary.txt", "ci/toy2/report.html", "ci/toy2/toy.txt"} <= set(objects)
        assert b"bench/p2" in bytes(emu.read("toys", "ci/toy2/report.html"))


def test_a_failing_reporter_costs_only_its_own_file(pytester: pytest.Pytester) -> None:
    make_usaco(pytester.path, {"p1": right("p1")})
    pytester.makeconftest(TOY_CONFTEST.replace("outcomes = ", "1 / 0\n        outcomes = "))
    result = pytester.runpytest_subprocess("bench", "-p", "no:cacheprovider", "--agent", "oracle", "--run-id", "bad",
                                           timeout=180)
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*REPORT FAILED toy: ZeroDivisionError*"])
    run_dir = pytester.path / "results" / "bad"
    assert not (run_dir / "toy.txt").exists()
    assert (run_dir / "report.html").is_file() and json.loads((run_dir / "run.json").read_text())["summary"]["passed"] == 1


@pytest.mark.slow
def test_report_html_after_ctrl_c_holds_what_finished(tmp_path: Path) -> None:
    write_benchmark(tmp_path / "bench")
    (tmp_path / "agent.py").write_text(AGENT)
    env = dict(os.environ, STARTED_FILE=str(tmp_path / "started"), RELEASE_FILE=str(tmp_path / "release"))
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "bench", "--agent", "agent.py:run", "--run-id", "r",
                             "--pass-env", "STARTED_FILE", "--pass-env", "RELEASE_FILE",
                             "-p", "no:cacheprovider"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.monotonic() + 60
    while not (tmp_path / "started").exists():
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        assert time.monotonic() < deadline, "the agent never started"
        time.sleep(0.05)
    time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
    page = (tmp_path / "results" / "r" / "report.html").read_text()
    assert "1001_bronze_add" in page and "exit 2 · interrupted" in page
    assert "1003_gold_add" not in page  # never started


@pytest.mark.slow
def test_attempts_lost_with_their_worker_are_in_run_json_and_on_the_timeline(pytester: pytest.Pytester) -> None:
    write_benchmark(pytester.path / "bench")
    pytester.makepyfile(killer='''
import os, signal
from pytest_cloudeval import sandbox_agent

@sandbox_agent
def solve(task, sandbox, **kwargs):
    if "silver" in task["problem_id"]:
        os.kill(os.getpid(), signal.SIGKILL)   # takes the worker process down
    return "a, b = map(int, input().split())\\nprint(a + b)\\n"
''')
    res = pytester.runpytest_subprocess("bench", "--agent", "killer.py:solve", "-n", "2", "--attempts", "2",
                                        "--run-id", "lost", "-p", "no:cacheprovider")
    assert res.ret == 1, res.stdout.str()
    run = json.loads((pytester.path / "results" / "lost" / "run.json").read_text())
    lost = run["lost_attempts"]
    assert [(a["attempt"], a["nodeid"].endswith("1002_silver_add")) for a in lost] == [(1, True), (2, True)]
    assert all(a["gateway"].startswith("gw") and a["lost_at"] > 0 for a in lost)
    page = (pytester.path / "results" / "lost" / "report.html").read_text()
    assert page.count('class="bar lost"') == 2 and page.count('class="bar"') == 2  # two finished attempts
