"""Per-task overhead of the plugin against plain pytest-xdist doing the same judging work.

Floor: N plain pytest tests, run with ``-n 2``, each spawning the same submission on the same hidden test
and comparing the output (what the judge does). Ours: the same N tasks as a USACO benchmark through the
plugin with ``--agent oracle -n 2``. Both in this run, same machine; prints the wall-time ratio.

    python bench/overhead.py [--tasks 300] [--workers 2] [--repeats 1]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.usaco_factory import trivial_benchmark  # noqa: E402

PLAIN_TEST = '''
import subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).parent / "bench"
SOURCE = "print(int(input()) + 1)\\n"
IDS = sorted(p.name for p in (ROOT / "tests").iterdir())

@pytest.mark.parametrize("pid", IDS)
def test_task(pid, tmp_path):
    (tmp_path / "submission.py").write_text(SOURCE)
    inp = ROOT / "tests" / pid / "1.in"
    expected = (ROOT / "tests" / pid / "1.out").read_text()
    with open(inp, "rb") as stdin:
        out = subprocess.run([sys.executable, "submission.py"], stdin=stdin, capture_output=True,
                             cwd=tmp_path, timeout=10)
    assert out.stdout.decode().strip() == expected.strip()
'''


def timed(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """Wall time and CPU time (user + system of the command and all its descendants)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="cloudeval-bench-") as tmp:
        root = Path(tmp)
        trivial_benchmark(root / "bench", args.tasks)
        (root / "test_plain.py").write_text(PLAIN_TEST)
        base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", str(args.workers)]
        floors, ours, floor_cpus, our_cpus = [], [], [], []
        for i in range(args.repeats):
            wall, cpu = timed(base + ["test_plain.py"], root)
            floors.append(wall)
            floor_cpus.append(cpu)
            wall, cpu = timed(base + ["bench", "--agent", "oracle", "--run-id", f"bench{i}"], root)
            ours.append(wall)
            our_cpus.append(cpu)
        floor, mine = statistics.median(floors), statistics.median(ours)
        floor_cpu, my_cpu = statistics.median(floor_cpus), statistics.median(our_cpus)
        n = args.tasks
        print(f"tasks: {n}, workers: {args.workers}, repeats: {args.repeats}, load before: {load}")
        print(f"floor (plain pytest-xdist, same judging work): {floor:.2f} s  ({n / floor:.1f} tasks/s), "
              f"CPU {floor_cpu:.2f} s")
        print(f"pytest-cloudeval (--agent oracle):             {mine:.2f} s  ({n / mine:.1f} tasks/s), "
              f"CPU {my_cpu:.2f} s")
        print(f"per-task overhead: {(mine - floor) / n * 1000 * args.workers:.1f} ms of worker time, "
              f"{(my_cpu - floor_cpu) / n * 1000:.1f} ms of CPU (all processes; CPU ratio {my_cpu / floor_cpu:.2f}x)")
        print(f"ratio: {mine / floor:.2f}x (goal <= 1.10x)")


if __name__ == "__main__":
    main()
