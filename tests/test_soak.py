"""Soak: 200 tasks of about a second on 10 emulated GCE VMs, 3 of them killed at random moments.

Every task must end passed, none lost, none run twice to a stored result (each result.json is read
whenever it changes during the run: a task in flight on a killed VM may run again, as attempt 2, and
each such rerun is reported, but no stored result may be replaced by a later attempt), and no VM
may be left.
The wall-time cost of the kills is measured by ``bench/soak.py``, not asserted here.

Needs Docker; fails (does not skip) without it unless CLOUDEVAL_SKIP_DOCKER=1.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

if os.environ.get("CLOUDEVAL_SKIP_DOCKER") == "1":
    pytest.skip("CLOUDEVAL_SKIP_DOCKER=1", allow_module_level=True)

from pytest_cloudeval.testing.gce_emulator import GceEmulator
from tests.soak_support import emulator, make_project, run_soak  # noqa: F401 - emulator: a fixture

pytestmark = [pytest.mark.docker, pytest.mark.cloud, pytest.mark.slow]

TASKS, VMS, KILLS = 200, 10, 3


def test_vms_killed_at_random_lose_no_task(emulator: GceEmulator, tmp_path: Path) -> None:  # noqa: F811
    seed = int(os.environ.get("CLOUDEVAL_SOAK_SEED") or random.randrange(1 << 16))
    print(f"soak seed {seed} (CLOUDEVAL_SOAK_SEED={seed} repeats the kill schedule)")
    run = run_soak(emulator, make_project(tmp_path, TASKS), f"soak{os.getpid() % 10000}", tasks=TASKS, vms=VMS,
                   kills=KILLS, seed=seed)
    print(f"killed {sorted(run.killed)} at {[round(t, 1) for t in run.kill_times_s]} s; {run.reruns} rerun(s); "
          f"wall {run.wall_s:.1f} s")
    assert len(run.killed) == KILLS, f"only {len(run.killed)} VMs were killed (the run ended first?)\n{run.output}"
    for vm in run.killed:
        assert f"VM {vm} is gone" in run.output, run.output[-5000:]
    problems = run.problems(TASKS)
    assert not problems, "\n".join(problems) + "\n" + run.output[-5000:]
