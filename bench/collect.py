"""Collection speed: N USACO tasks against plain pytest collecting N parametrized tests.

Floor: ``pytest --collect-only`` of one module with one test parametrized N ways (pytest imports the
module and builds N items). Ours: ``pytest --collect-only`` of a HAL-layout USACO benchmark with N
problems and N hidden-test folders (one test each), which pytest must not walk. Both in this run,
same machine, best of ``--repeats``; the last line is the ratio (goal: at most 1.0x).

    python bench/collect.py [--tasks 10000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.usaco_factory import trivial_benchmark  # noqa: E402

PLAIN_TEST = '''
import pytest

IDS = [f"{{9000 + i}}_bronze_t{{i}}" for i in range({n})]


@pytest.mark.parametrize("pid", IDS)
def test_task(pid):
    assert pid
'''


def timed(cmd: list[str], cwd: Path, expect: int) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0 or f"{expect} tests collected" not in proc.stdout:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cloudeval-collect-") as tmp:
        root = Path(tmp)
        trivial_benchmark(root / "bench", args.tasks)
        (root / "test_plain.py").write_text(PLAIN_TEST.format(n=args.tasks))
        base = [sys.executable, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider"]
        floors, ours = [], []
        for _ in range(args.repeats):
            floors.append(timed(base + ["test_plain.py"], root, args.tasks))
            ours.append(timed(base + ["bench"], root, args.tasks))
        floor, mine = min(floors), min(ours)
        print(f"tasks: {args.tasks}, repeats: {args.repeats} (best of each)")
        print(f"floor (plain pytest, {args.tasks} parametrized tests): {floor:.2f} s")
        print(f"pytest-cloudeval ({args.tasks} USACO tasks, hidden tests on disk): {mine:.2f} s")
        print(f"ratio: {mine / floor:.2f}x (goal <= 1.0x)")


if __name__ == "__main__":
    main()
