"""The soak run shared by ``tests/test_soak.py`` and ``bench/soak.py``: many tasks of about a second
on several emulated GCE VMs, some of which are killed (their containers dropped) at random moments.

The kills are driven by progress, not by the clock: each happens once a random share of the tasks has
come back, so a slow machine still kills mid-run. While the run goes on, every result.json that
reaches the controller is read again whenever it changes: a task stored once and then stored again
by a later attempt "ran twice to a stored result", which must never happen (a task in flight on a
killed VM may run again, as attempt 2, because its first attempt stored nothing).
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_cloudeval.testing.gce_emulator import GceEmulator

PROJECT = "soak-project"
ZONE = "us-central1-a"
ADD = "a, b = map(int, input().split())\nprint(a + b)\n"
AGENT = '''import time

SOLUTION = {solution!r}


def run(input, **kwargs):
    (task_id,) = input
    time.sleep(float(kwargs.get("sleep", 0)))
    return {{task_id: SOLUTION}}
'''


# The judge's limit per test is generous: on a small machine shared with others, 10 VMs starting
# Python at once can take seconds, and a TIME_LIMIT there would be the machine, not the soak.
def make_project(root: Path, tasks: int) -> Path:
    """A rootdir with an 'add' USACO benchmark of ``tasks`` problems and an agent that sleeps, then answers."""
    (root / "pytest.ini").write_text("[pytest]\n")
    bench = root / "add"
    problems = {}
    for i in range(tasks):
        pid = f"{1000 + i}_bronze_add_{i}"
        problems[pid] = {"name": f"Add {i}", "problem_id": pid, "problem_level": "bronze",
                         "description": "Print a+b.", "runtime_limit": 30, "memory_limit": 256, "num_tests": 1,
                         "solution_python3": ADD}
        (bench / "tests" / pid).mkdir(parents=True)
        (bench / "tests" / pid / "1.in").write_text(f"{i} {3 * i}\n")
        (bench / "tests" / pid / "1.out").write_text(f"{4 * i}\n")
    (bench / "problems.json").write_text(json.dumps(problems))
    (bench / "benchmark.toml").write_text('format = "usaco"\ndataset = "problems.json"\ntests_dir = "tests"\n')
    (root / "agents").mkdir(exist_ok=True)
    (root / "agents" / "sleepy.py").write_text(AGENT.format(solution=ADD))
    return root


@dataclass
class SoakRun:
    """What one soak run did and left."""

    run_id: str
    code: int
    wall_s: float
    output: str
    results: dict[str, dict[str, Any]]
    run_json: dict[str, Any]
    stored_attempts: dict[str, list[int]] = field(default_factory=dict)
    """Task key -> the attempt numbers seen in its result.json during the run, in order."""
    killed: list[str] = field(default_factory=list)
    """VMs killed, in order."""
    kill_times_s: list[float] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    """Instances of the run still known to the emulator after it ended."""

    @property
    def reruns(self) -> int:
        match = re.search(r"(\d+) rerun", self.output)
        return int(match.group(1)) if match else 0

    def problems(self, tasks: int) -> list[str]:
        """Every way this run missed the soak's promises (empty: all kept)."""
        out = []
        if self.code != 0:
            out.append(f"exit status {self.code}")
        if not re.search(rf"\b{tasks} passed\b", self.output):
            out.append(f"the summary does not say '{tasks} passed'")
        if len(self.results) != tasks:
            out.append(f"{len(self.results)} result.json files for {tasks} tasks (lost: {tasks - len(self.results)})")
        failed = sorted(k for k, r in self.results.items() if r.get("outcome") != "passed")
        if failed:
            out.append(f"not passed: {failed[:10]}")
        recorded = self.run_json.get("tasks", {})
        if len(recorded) != tasks or any(t.get("outcome") != "passed" for t in recorded.values()):
            out.append(f"run.json records {len(recorded)} tasks, not {tasks} passed ones")
        for key, attempts in sorted(self.stored_attempts.items()):
            if len(set(attempts)) > 1:
                out.append(f"{key} ran twice to a stored result (attempts stored: {attempts})")
        for key, result in self.results.items():
            # A task in flight on a killed VM runs again elsewhere; that VM may be killed later too
            # (and a VM that took in a relocated worker loses two tasks at once): at most one more
            # attempt per kill, never more.
            if int(result.get("attempt", 1)) > 1 + len(self.killed):
                out.append(f"{key} ran {result['attempt']} times with {len(self.killed)} VM(s) killed "
                           f"(a kill costs a task at most one more attempt)")
        # Each rerun is one more attempt of one task: the attempts beyond the first, added up, are the reruns.
        reran = sum(int(r.get("attempt", 1)) - 1 for r in self.results.values())
        if reran != self.reruns:
            out.append(f"{reran} attempts beyond the first stored but {self.reruns} reruns reported: a task ran "
                       f"twice to a stored result, or a rerun was not recorded")
        if reran and not self.killed:
            out.append(f"{reran} tasks ran again though no VM was killed")
        if self.left:
            out.append(f"VMs left: {self.left}")
        return out


class ResultWatch:
    """Reads each task's result.json again whenever it changes, and keeps the attempts it saw."""

    def __init__(self, task_dir: Path) -> None:
        self.task_dir = task_dir
        self.attempts: dict[str, list[int]] = {}
        self._seen: dict[Path, tuple[int, int]] = {}

    def scan(self) -> int:
        """Read new or changed result files; return how many tasks have one."""
        if not self.task_dir.is_dir():
            return 0
        for path in self.task_dir.glob("*/result.json"):
            try:
                stat = path.stat()
                stamp = (stat.st_mtime_ns, stat.st_ino)
                if self._seen.get(path) == stamp:
                    continue
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # being replaced right now: read it on the next scan
            self._seen[path] = stamp
            self.attempts.setdefault(path.parent.name, []).append(int(data.get("attempt", 1)))
        return len(self._seen)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTEST_XDIST_WORKER", None)
    repo = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [repo, env.get("PYTHONPATH")]))
    return env


def run_soak(emulator: GceEmulator, root: Path, run_id: str, *, tasks: int, vms: int, kills: int,
             sleep: float = 1.0, seed: int = 0, timeout: float = 600) -> SoakRun:
    """One ``pytest --cloud=gce -n VMS`` run over the project in ``root``, killing ``kills`` VMs."""
    results = root / "results"
    cmd = [sys.executable, "-m", "pytest", "add", "-q", "-rA", "-p", "no:cacheprovider",
           "--agent", "agents/sleepy.py:run", "-A", f"sleep={sleep}", "-n", str(vms), "--cloud=gce",
           f"--gce-api-endpoint={emulator.endpoint}", f"--gce-project={PROJECT}", f"--gce-zone={ZONE}",
           f"--results-dir={results}", f"--run-id={run_id}"]
    rng = random.Random(seed)
    # Kill once these many tasks have come back: random, between 10% and 70% of the run.
    thresholds = sorted(rng.randint(tasks // 10, tasks * 7 // 10) for _ in range(kills))
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env())
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if re.search(r"worker\(s\) on \d+ VM\(s\) ready", line):
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    killed: list[str] = []
    kill_times: list[float] = []
    task_dir = results / run_id / "add"
    watch = ResultWatch(task_dir)
    try:
        while proc.poll() is None:
            time.sleep(0.2)
            done = watch.scan()
            if not thresholds or not ready.is_set() or done < thresholds[0]:
                continue
            thresholds.pop(0)
            live = sorted(i["name"] for i in emulator.instances()
                          if i["name"].startswith(f"ce-{run_id}-") and i["status"] == "RUNNING"
                          and i["name"] not in killed)
            if len(live) <= 1:
                break  # never kill the last VM: that is another test (every VM lost)
            victim = rng.choice(live)
            emulator.drop_instance(victim, zone=ZONE)
            killed.append(victim)
            kill_times.append(time.monotonic() - t0)
        code = proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    wall = time.monotonic() - t0
    reader.join(timeout=10)
    watch.scan()
    stored = {p.parent.name: json.loads(p.read_text()) for p in task_dir.glob("*/result.json")}
    run_file = results / run_id / "run.json"
    run_json = json.loads(run_file.read_text()) if run_file.is_file() else {}
    left = [i["name"] for i in emulator.instances() if i["name"].startswith(f"ce-{run_id}-")]
    return SoakRun(run_id=run_id, code=code, wall_s=wall, output="".join(lines), results=stored,
                   run_json=run_json, stored_attempts=watch.attempts, killed=killed,
                   kill_times_s=kill_times, left=left)


@pytest.fixture(scope="module")
def emulator() -> Iterator[GceEmulator]:
    """A GCE emulator with one zone (``ZONE``) for a test module (tests/test_soak.py, tests/test_gce_runtime.py)."""
    emu = GceEmulator(zones=[ZONE]).start()
    try:
        yield emu
    finally:
        emu.stop()
