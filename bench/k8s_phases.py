"""Where a task attempt's time goes: per-phase medians, docker sandbox against k8s on the emulator.

Runs the trivial Harbor tasks of ``k8s_overhead.py`` once per arm with ``-p phase_timer`` (see
``bench/phase_timer.py``) and prints a table of median seconds per phase and the per-attempt sums.

    python bench/k8s_phases.py [--tasks 10] [--workers 4]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from docker_overhead import build_images, make_tasks  # noqa: E402 - the same trivial tasks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    from pytest_cloudeval.testing.k8s_emulator import K8sEmulator

    with tempfile.TemporaryDirectory(prefix="cloudeval-k8s-phases-") as tmp:
        root = Path(tmp)
        bench = make_tasks(root, args.tasks)
        build_images(bench)
        emu = K8sEmulator(kubeconfig=root / "kubeconfig")
        emu.start()
        log = root / "phases.jsonl"
        walls = {}
        try:
            for arm in ("docker", "k8s"):
                extra = ["--kubeconfig", str(root / "kubeconfig")] if arm == "k8s" else []
                env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{REPO / 'bench'}", CLOUDEVAL_PHASE_LOG=str(log))
                started = time.perf_counter()
                proc = subprocess.run([sys.executable, "-m", "pytest", "trivial", f"--sandbox={arm}", "-p",
                                       "phase_timer", "-p", "no:cacheprovider", "-q", "-n", str(args.workers),
                                       "-W", "ignore", "--agent", "oracle", "--results-dir", str(root / "results"),
                                       "--run-id", f"phases-{arm}-{os.getpid()}", *extra],
                                      cwd=root, env=env, capture_output=True, text=True, timeout=900)
                walls[arm] = time.perf_counter() - started
                if proc.returncode != 0:
                    print(proc.stdout[-3000:], proc.stderr[-3000:])
                    return 1
        finally:
            emu.stop()
        rows = [json.loads(line) for line in log.read_text().splitlines()]
        if os.environ.get("CLOUDEVAL_PHASE_KEEP"):
            Path(os.environ["CLOUDEVAL_PHASE_KEEP"]).write_text(log.read_text())
    phases: dict[str, dict[str, list[float]]] = collections.defaultdict(lambda: collections.defaultdict(list))
    order: list[str] = []
    for row in rows:
        if row["sandbox"] == "session":
            continue
        phases[row["phase"]][row["sandbox"]].append(row["s"])
        if row["phase"] not in order:
            order.append(row["phase"])
    print(f"{args.tasks} trivial Harbor tasks, -n {args.workers}; median ms per call (calls)")
    print(f"{'phase':34s} {'docker':>14s} {'k8s':>14s}")
    for phase in order:
        cells = []
        for arm in ("docker", "k8s"):
            values = phases[phase].get(arm)
            cells.append(f"{statistics.median(values) * 1000:8.0f} ({len(values):3d})" if values else f"{'-':>14s}")
        print(f"{phase:34s} {cells[0]:>14s} {cells[1]:>14s}")
    for arm in ("docker", "k8s"):
        total = sum(v for p, by in phases.items() if not p.startswith(" ") for v in by.get(arm, []))
        print(f"{arm}: sandbox time per attempt {total / args.tasks * 1000:.0f} ms; pytest wall {walls[arm]:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
