"""Do uploads slow a real run down? (goal: at most 1.05x for 200 tasks whose agent takes 1 s, -n 4)

What users see: an agent that takes its time (here it sleeps 1 s, as a model call would) while the
finished tasks stream to the bucket. Runs the same USACO benchmark with and without
``--artifacts-url`` against the real gcp-storage-emulator (a fresh one per run, up for both kinds),
alternating the kinds to spread machine noise, and checks the bucket holds every task's result.json.

It also measures the plugin's own CPU per uploaded object, two ways:

- thread CPU: a bench plugin wraps each upload job and adds up its ``time.thread_time()`` in every
  process (planning, redaction, hashing, HTTP client work);
- process CPU: pytest's and its workers' CPU with uploads minus without, over the objects stored,
  counted twice: the pytest processes alone (each reads its own rusage as it ends: exact, the
  tasks' subprocesses left out) and everything pytest started (the tasks' judge and agent
  processes too: what the machine spent, noisier).

Uploads from local workers run on the controller (the workers hand their folders over), so the
thread CPU is the controller's; a worker that uploads for itself is counted the same way.

    python bench/gcs_real_run.py [--tasks 200] [--workers 4] [--sleep 1] [--rounds 1]
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

from gcs_upload import children_cpu, make_benchmark, process_cpu  # noqa: E402

from pytest_cloudeval.testing.gcs import GcsEmulator  # noqa: E402

BUCKET = "bench"
AGENT = '''import time

SOLUTION = "print(int(input()) + 1)"


def run(input, **kwargs):
    (task_id,) = input
    time.sleep(float(kwargs.get("sleep", 1)))
    return {task_id: SOLUTION}
'''
# Loaded by every pytest process of the run (controller and workers): sums the thread CPU time of
# every upload job (plan, redact, hash, send), written to $BENCH_CPU_DIR/<pid>.json.
CPU_CONFTEST = '''import json, os, resource, threading, time

import pytest

_cpu = {"upload_thread_s": 0.0, "jobs": 0, "process_s": None}
_lock = threading.Lock()


def _install():
    from pytest_cloudeval.artifacts import uploader

    original = uploader.upload_task

    def upload_task(*args, **kwargs):
        start = time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            spent = time.thread_time() - start
            with _lock:
                _cpu["upload_thread_s"] += spent
                _cpu["jobs"] += 1
                _dump()  # after each job: a worker process may be ended before any hook of ours runs

    uploader.upload_task = upload_task


def _dump():
    out = os.environ.get("BENCH_CPU_DIR")
    if out and (_cpu["jobs"] or _cpu["process_s"] is not None):
        with open(os.path.join(out, f"{os.getpid()}.json"), "w") as f:
            json.dump(_cpu, f)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    # The process's own CPU (all its threads), once its uploads are done: not its children's.
    usage = resource.getrusage(resource.RUSAGE_SELF)
    with _lock:
        _cpu["process_s"] = usage.ru_utime + usage.ru_stime
        _dump()


_install()
'''


def timed_run(root: Path, run_id: str, workers: int, sleep: float, env: dict[str, str],
              url: str | None) -> tuple[float, float]:
    """(wall seconds, CPU seconds of pytest and everything it started)."""
    cmd = [sys.executable, "-m", "pytest", "trivial", "--agent", "agents/sleepy.py:run", "-A", f"sleep={sleep}",
           "-n", str(workers), "-q", "-p", "no:cacheprovider", "--run-id", run_id,
           "--results-dir", str(root / "results")]
    if url:
        cmd += ["--artifacts-url", url]
    cpu = children_cpu()
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"run {run_id} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return elapsed, children_cpu() - cpu


def upload_thread_cpu(folder: Path) -> tuple[float, int]:
    total, threads = 0.0, 0
    for path in folder.glob("*.json"):
        data = json.loads(path.read_text())
        total += data["upload_thread_s"]
        threads += data["jobs"]
    return total, threads


def pytest_processes_cpu(folder: Path, expected: int) -> float:
    """CPU seconds of the run's pytest processes (controller and workers), as each counted itself."""
    spent = [json.loads(p.read_text())["process_s"] for p in folder.glob("*.json")]
    counted = [s for s in spent if s is not None]
    if len(counted) != expected:
        sys.exit(f"{len(counted)} of {expected} pytest processes reported their CPU in {folder}")
    return float(sum(counted))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--sleep", type=float, default=1.0, help="seconds the agent takes per task")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each kind (alternated)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="cloudeval-bench-") as tmp:
        root = Path(tmp)
        make_benchmark(root, args.tasks)
        (root / "pytest.ini").write_text("[pytest]\n")
        (root / "conftest.py").write_text(CPU_CONFTEST)
        (root / "agents").mkdir()
        (root / "agents" / "sleepy.py").write_text(AGENT)
        url = f"gs://{BUCKET}/bench"
        walls: dict[str, list[float]] = {"plain": [], "upload": []}
        cpus: dict[str, list[float]] = {"plain": [], "upload": []}
        own: dict[str, list[float]] = {"plain": [], "upload": []}
        objects: list[int] = []
        thread_cpu: list[float] = []
        emulator_cpu: list[float] = []
        for round_no in range(args.rounds):
            kinds = ["plain", "upload"] if round_no % 2 == 0 else ["upload", "plain"]
            for kind in kinds:
                run_id = f"{kind}-{round_no}"
                cpu_dir = root / f"cpu-{run_id}"
                cpu_dir.mkdir()
                with GcsEmulator(buckets=[BUCKET]) as emu:  # both kinds run with an emulator up
                    env = dict(os.environ, **emu.env(), BENCH_CPU_DIR=str(cpu_dir))
                    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
                    env.pop("PYTEST_ADDOPTS", None)
                    assert emu.pid is not None
                    before = process_cpu(emu.pid)
                    wall, cpu = timed_run(root, run_id, args.workers, args.sleep, env,
                                          url if kind == "upload" else None)
                    emu_cpu = process_cpu(emu.pid) - before
                    extra = ""
                    if kind == "upload":
                        stored = emu.objects(BUCKET, f"bench/{run_id}/")
                        results = [n for n in stored if n.endswith("/result.json")]
                        if len(results) != args.tasks:
                            sys.exit(f"only {len(results)} of {args.tasks} result.json objects in the bucket")
                        spent, threads = upload_thread_cpu(cpu_dir)
                        objects.append(len(stored))
                        thread_cpu.append(spent)
                        emulator_cpu.append(emu_cpu)
                        extra = (f", {len(stored)} objects, upload jobs CPU {spent:.2f} s in {threads} jobs, "
                                 f"emulator CPU {emu_cpu:.2f} s")
                walls[kind].append(wall)
                cpus[kind].append(cpu)
                own[kind].append(pytest_processes_cpu(cpu_dir, args.workers + 1))
                print(f"round {round_no + 1}: {kind:<6} wall {wall:7.2f} s, CPU of all it started {cpu:6.2f} s, "
                      f"of the pytest processes {own[kind][-1]:5.2f} s{extra}", flush=True)
        med = {k: statistics.median(v) for k, v in walls.items()}
        cpu_med = {k: statistics.median(v) for k, v in cpus.items()}
        own_med = {k: statistics.median(v) for k, v in own.items()}
        n_objects = statistics.median(objects)
        floor = args.tasks * args.sleep / args.workers
        print(f"tasks {args.tasks}, agent {args.sleep:g} s each, -n {args.workers}, {args.rounds} round(s), "
              f"{os.cpu_count()} CPUs; sleep alone would take {floor:.1f} s")
        print(f"plugin CPU per uploaded object: {1000 * statistics.median(thread_cpu) / n_objects:.2f} ms in the "
              f"upload threads; {1000 * (own_med['upload'] - own_med['plain']) / n_objects:+.2f} ms by the pytest "
              f"processes' CPU, {1000 * (cpu_med['upload'] - cpu_med['plain']) / n_objects:+.2f} ms by the CPU of "
              f"all they started (with - without); emulator {1000 * statistics.median(emulator_cpu) / n_objects:.2f} ms")
        ratio = med["upload"] / med["plain"]
        print(f"without {med['plain']:.2f} s, with --artifacts-url {med['upload']:.2f} s: "
              f"wall ratio {ratio:.3f} (goal <= 1.05): {'ok' if ratio <= 1.05 else 'OVER'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
