"""Wall time of the k8s sandbox (on the shipped emulator) against the docker sandbox, same run, same tasks.

floor: ``pytest <N trivial Harbor tasks> --sandbox=docker --agent oracle -n WORKERS``.
ours:  the same with ``--sandbox=k8s --kubeconfig <emulator's>``: every command goes through the
       Kubernetes API (an HTTP and a websocket hop) and pods start through the emulator's scheduler.
The arms alternate for a few rounds (medians) to spread machine noise. Goal: ours <= 1.3x the floor.
The last line is the ratio.

    python bench/k8s_overhead.py [--tasks 10] [--workers 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
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


def run(cmd: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    return time.perf_counter() - started, proc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from pytest_cloudeval.testing.k8s_emulator import K8sEmulator

    with tempfile.TemporaryDirectory(prefix="cloudeval-k8s-bench-") as tmp:
        root = Path(tmp)
        bench = make_tasks(root, args.tasks)
        build_images(bench)
        emu = K8sEmulator(kubeconfig=root / "kubeconfig")
        emu.start()
        times: dict[str, list[float]] = {"docker": [], "k8s": []}
        try:
            common = ["-p", "no:cacheprovider", "-q", "-n", str(args.workers), "-W", "ignore", "--agent", "oracle",
                      "--results-dir", str(root / "results")]
            for round_no in range(args.rounds):
                for arm in ("docker", "k8s"):
                    run_id = f"k8s-bench-{arm}-{round_no}-{os.getpid()}"
                    extra = ["--kubeconfig", str(root / "kubeconfig")] if arm == "k8s" else []
                    wall, proc = run([sys.executable, "-m", "pytest", "trivial", f"--sandbox={arm}", "--run-id",
                                      run_id, *extra, *common], root)
                    results = [json.loads(p.read_text()) for p in (root / "results" / run_id).glob("*/*/result.json")]
                    if proc.returncode != 0 or len(results) != args.tasks or \
                            any(r["outcome"] != "passed" for r in results):
                        print(proc.stdout[-3000:], proc.stderr[-3000:])
                        return 1
                    times[arm].append(wall)
                    print(f"round {round_no + 1} {arm:6s} {wall:6.2f} s", flush=True)
        finally:
            emu.stop()
    docker, k8s = statistics.median(times["docker"]), statistics.median(times["k8s"])
    print(f"{args.tasks} trivial Harbor tasks, -n {args.workers}, median of {args.rounds} rounds: "
          f"docker {docker:.2f} s, k8s on the emulator {k8s:.2f} s (goal: <= 1.3x)")
    print(f"k8s/docker ratio: {k8s / docker:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
