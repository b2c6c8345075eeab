"""Per-task overhead of the docker sandbox against floors measured in the same run.

floor A: median wall time of ``docker run --rm IMAGE true`` (the engine's own cost of a container).
floor B: plain pytest-xdist (``-n WORKERS``) over N generated test functions that each do one
         ``docker run --rm`` of the same work as a trivial Harbor task (solve, then verify, in one
         container with the same limits).
ours:    ``pytest <N trivial Harbor tasks> --sandbox=docker --agent oracle -n WORKERS``, the task
         image already built (checked: not rebuilt).
B and ours alternate for a few rounds (medians), to spread machine noise. Goal: ours <= 1.0x B
(issue 14: each worker brings up its next task's container while the current task runs, and removes
finished ones in the background). The last line printed is the ratio.

    python bench/docker_overhead.py [--tasks 10] [--workers 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
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

GOAL = 1.0
BASE_IMAGE = "cloudeval/base:bookworm"
SOLVE = "echo done > /app/out.txt\n"
TEST = ('mkdir -p /logs/verifier\n'
        'if [ "$(cat /app/out.txt 2>/dev/null)" = done ]; then echo 1; else echo 0; fi > /logs/verifier/reward.txt\n')
DOCKERFILE = "ARG BASE_IMAGE=cloudeval/base:bookworm\nFROM ${BASE_IMAGE}\nWORKDIR /app\n"
TASK_TOML = """[task]
name = "{name}"

[agent]
timeout_sec = 60

[verifier]
timeout_sec = 30

[environment]
cpus = 1
memory_mb = 256
allow_internet = false
workdir = "/app"
"""

PLAIN_TEST = '''
import subprocess
import pytest

IMAGE = {image!r}
SCRIPT = {script!r}

@pytest.mark.parametrize("i", range({count}))
def test_task(i):
    out = subprocess.run(["docker", "run", "--rm", "--network", "none", "--cpus", "1", "--memory", "256m",
                          "--init", IMAGE, "bash", "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"
'''


def make_tasks(root: Path, count: int) -> Path:
    bench = root / "trivial"
    bench.mkdir(parents=True)
    (bench / "benchmark.toml").write_text('format = "harbor"\nname = "trivial"\n')
    for i in range(count):
        task = bench / f"t{i:02d}"
        for sub in ("environment", "solution", "tests"):
            (task / sub).mkdir(parents=True)
        (task / "task.toml").write_text(TASK_TOML.format(name=task.name))
        (task / "instruction.md").write_text("Write done to /app/out.txt.\n")
        (task / "environment" / "Dockerfile").write_text(DOCKERFILE)
        (task / "solution" / "solve.sh").write_text("#!/usr/bin/env bash\n" + SOLVE)
        (task / "tests" / "test.sh").write_text("#!/usr/bin/env bash\n" + TEST)
    return bench


def build_images(bench: Path) -> dict[str, str]:
    """Build (once) or find each task's image, in this process: {tag: image id}."""
    from pytest_cloudeval.sandbox import docker_engine, docker_images
    from pytest_cloudeval.settings import Settings
    from pytest_cloudeval.tasks.harbor import load_task_dir

    images = {}
    for folder in sorted(p for p in bench.iterdir() if p.is_dir()):
        task = load_task_dir(folder, "trivial")
        assert not hasattr(task, "message"), task
        tag = docker_images.resolve(task.environment, task.task_id, Settings().sandbox_image,  # type: ignore[union-attr]
                                    False)
        images[tag] = docker_engine.client().inspect_image(tag)["Id"]
    return images


BYTECODE_CACHE = False


CPU: dict[str, list[float]] = {"plain": [], "ours": []}
"""CPU seconds (user + sys) of each arm's processes (pytest, workers, docker CLI; not the engine's)."""
MACHINE: dict[str, list[float]] = {"plain": [], "ours": []}
"""CPU seconds the whole machine was busy during each arm's run (the processes, the Docker engine
and its shims and runc, the kernel, and anything else running: meaningful on a quiet machine)."""


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (all cores, everything but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = sum(fields[:8]) - fields[3] - fields[4]  # user nice system idle iowait irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


def timed(cmd: list[str], cwd: Path, arm: str = "") -> tuple[float, subprocess.CompletedProcess[str]]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    if BYTECODE_CACHE:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    machine = machine_busy_seconds()
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if arm:
        CPU[arm].append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        MACHINE[arm].append(machine_busy_seconds() - machine)
    return wall, proc


def floor_a(image: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(["docker", "run", "--rm", image, "true"], check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--floor-a-runs", type=int, default=7)
    parser.add_argument("--bytecode-cache", action="store_true",
                        help="unset PYTHONDONTWRITEBYTECODE for both arms (with it, every pytest process "
                             "recompiles and assertion-rewrites the plugin: ~0.7 s CPU each)")
    args = parser.parse_args()
    global BYTECODE_CACHE
    BYTECODE_CACHE = args.bytecode_cache

    with tempfile.TemporaryDirectory(prefix="cloudeval-docker-bench-") as tmp:
        root = Path(tmp)
        bench = make_tasks(root, args.tasks)
        images = build_images(bench)
        task_image = next(iter(images))
        (root / "plain").mkdir()
        (root / "plain" / "test_plain.py").write_text(PLAIN_TEST.format(
            image=task_image, script=SOLVE + TEST + "cat /logs/verifier/reward.txt\n", count=args.tasks))

        a = floor_a(BASE_IMAGE, args.floor_a_runs)
        common = ["-p", "no:cacheprovider", "-q", "-n", str(args.workers), "-W", "ignore"]
        plain_times, ours_times, task_durations = [], [], []
        prepared = 0
        for round_no in range(args.rounds):
            wall, proc = timed([sys.executable, "-m", "pytest", "plain", *common], root, "plain")
            if proc.returncode != 0:
                print(proc.stdout[-3000:], proc.stderr[-3000:])
                return 1
            plain_times.append(wall)
            run_id = f"bench-{round_no}-{os.getpid()}"
            wall, proc = timed([sys.executable, "-m", "pytest", "trivial", "--sandbox=docker", "--agent", "oracle",
                                "--run-id", run_id, "--results-dir", str(root / "results"), *common], root, "ours")
            results = [json.loads(p.read_text()) for p in (root / "results" / run_id).glob("*/*/result.json")]
            if proc.returncode != 0 or len(results) != args.tasks or any(r["outcome"] != "passed" for r in results):
                print(proc.stdout[-3000:], proc.stderr[-3000:])
                return 1
            ours_times.append(wall)
            task_durations += [r["duration_s"] for r in results]
            prepared += sum(1 for r in results if r["metrics"].get("sandbox.prepared_ahead") is True)
        rebuilt = build_images(bench) != images

    b, ours = statistics.median(plain_times), statistics.median(ours_times)
    n = args.tasks
    print(f"docker sandbox overhead: {n} trivial Harbor tasks, -n {args.workers}, {args.rounds} rounds (medians)")
    no_pyc = os.environ.get("PYTHONDONTWRITEBYTECODE") and not args.bytecode_cache
    print(f"  bytecode cache: {'OFF (PYTHONDONTWRITEBYTECODE set; try --bytecode-cache)' if no_pyc else 'on'}; "
          f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"  floor A  docker run --rm {BASE_IMAGE} true: {a:.3f} s per container")
    print(f"  floor B  plain pytest-xdist, one docker run per test: {b:.2f} s wall, {n / b:.2f} tasks/s "
          f"(rounds: {', '.join(f'{t:.2f}' for t in plain_times)})")
    print(f"  ours     pytest --sandbox=docker --agent oracle: {ours:.2f} s wall, {n / ours:.2f} tasks/s "
          f"(rounds: {', '.join(f'{t:.2f}' for t in ours_times)})")
    print(f"  per task: median attempt {statistics.median(task_durations):.3f} s in ours (container up, "
          f"solve, verify, logs, down) vs {a:.3f} s for an empty docker run; "
          f"{(ours - b) / n * args.workers:+.3f} s per task slot vs floor B")
    print(f"  CPU of the processes each arm starts (median; the engine's own not counted): floor B "
          f"{statistics.median(CPU['plain']):.2f} s, ours {statistics.median(CPU['ours']):.2f} s "
          "(on a loaded 2-core machine wall time follows CPU)")
    plain_m, ours_m = statistics.median(MACHINE["plain"]), statistics.median(MACHINE["ours"])
    print(f"  whole machine busy during each arm (median; engine, shims, runc, kernel, and any other load): "
          f"floor B {plain_m:.2f} s, ours {ours_m:.2f} s; so beyond the arm's own processes: floor B "
          f"{plain_m - statistics.median(CPU['plain']):.2f} s, ours {ours_m - statistics.median(CPU['ours']):.2f} s "
          f"({os.cpu_count()} cores: {plain_m / b:.2f} and {ours_m / ours:.2f} cores busy on average)")
    print(f"  containers prepared ahead (while the worker's previous task ran): {prepared} of "
          f"{len(task_durations)} attempts (the first task of each worker has none before it)")
    print(f"  task image rebuilt during the runs: {'YES (bad)' if rebuilt else 'no'}")
    ratio = ours / b
    print(f"ratio ours / floor B = {ratio:.2f} (goal <= {GOAL}) -> {'OK' if ratio <= GOAL else 'MISSED'}")
    return 0 if ratio <= GOAL and not rebuilt else 1


if __name__ == "__main__":
    sys.exit(main())
