"""Soak: what VMs killed at random cost a run (goal: at most 1.3x the same run without kills).

200 tasks of about 1 s on 10 emulated GCE VMs (one worker each), run twice in one invocation and
against one emulator: without kills, then with 3 VMs killed at random moments (see
``tests/soak_support.py``). Both runs must end with every task passed, none lost, none run twice to a
stored result, no VM left. Prints both wall times and their ratio on the last line.

    python bench/soak.py [--tasks 200] [--vms 10] [--kills 3] [--seed N]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pytest_cloudeval.testing.gce_emulator import GceEmulator  # noqa: E402
from tests.soak_support import ZONE, make_project, run_soak  # noqa: E402


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--vms", type=int, default=10)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--sleep", type=float, default=1.0, help="seconds the agent takes per task")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 16)
    walls = {}
    ok = True
    with tempfile.TemporaryDirectory(prefix="cloudeval-bench-") as tmp, GceEmulator(zones=[ZONE]) as emulator:
        root = make_project(Path(tmp), args.tasks)
        for kills in (0, args.kills):
            before = load()
            run = run_soak(emulator, root, f"soak{kills}k{os.getpid() % 10000}", tasks=args.tasks, vms=args.vms,
                           kills=kills, sleep=args.sleep, seed=seed)
            problems = run.problems(args.tasks)
            if kills and len(run.killed) != kills:
                problems.append(f"only {len(run.killed)} of {kills} VMs were killed")
            ok &= not problems
            walls[kills] = run.wall_s
            print(f"{kills} kill(s): wall {run.wall_s:.1f} s, {len(run.results)} results, {run.reruns} rerun(s), "
                  f"killed {sorted(run.killed)} at {[round(t, 1) for t in run.kill_times_s]} s; "
                  f"load {before} -> {load()}; {'ok' if not problems else 'PROBLEMS: ' + '; '.join(problems)}",
                  flush=True)
            if problems:
                print(run.output[-4000:])
    ratio = walls[args.kills] / walls[0]
    print(f"seed {seed}, {args.tasks} tasks of {args.sleep:g} s on {args.vms} VMs, {os.cpu_count()} CPUs")
    print(f"with {args.kills} VMs killed: {ratio:.2f}x the wall time without kills (goal <= 1.3): "
          f"{'ok' if ratio <= 1.3 else 'OVER'}; every task passed once: {'ok' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
