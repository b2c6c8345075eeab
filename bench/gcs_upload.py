"""Does streaming results to a bucket slow a run down? (goal: at most 10% for 300 trivial tasks, -n 2)

Generates a USACO benchmark of trivial problems (one hidden test each), starts the real
gcp-storage-emulator (in memory, a fresh one for each upload run), and times the same pytest run
with and without ``--artifacts-url``, alternating the two to spread machine noise. Prints each wall
time, the medians and their ratio, and checks the bucket holds every task's result.json.

It also prints where the CPU went: the pytest processes' own CPU (the plugin's upload cost is the
difference) and the emulator's. The emulator is single-threaded Python that rewrites its whole
metadata file on every object written, so it costs O(objects) per upload and, on a small machine,
competes with the run for the same cores; a real bucket's work happens elsewhere.

    python bench/gcs_upload.py [--tasks 300] [--rounds 2] [--workers 2]
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pytest_cloudeval.testing.gcs import GcsEmulator  # noqa: E402
from tests.usaco_factory import trivial_benchmark  # noqa: E402

BUCKET = "bench"


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a live process has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed_run(bench: Path, workdir: Path, run_id: str, workers: int, env: dict[str, str],
              url: str | None) -> tuple[float, float]:
    """(wall seconds, CPU seconds of pytest and everything it started)."""
    cmd = [sys.executable, "-m", "pytest", str(bench), "--agent", "oracle", "-n", str(workers), "-q",
           "-p", "no:cacheprovider", "--run-id", run_id, "--results-dir", str(workdir / "results")]
    if url:
        cmd += ["--artifacts-url", url]
    cpu = children_cpu()
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"run {run_id} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return elapsed, children_cpu() - cpu


def emulator_floor(objects: int) -> float:
    """Seconds the emulator alone needs to store ``objects`` small objects, one after another."""
    with GcsEmulator(buckets=[BUCKET]) as emu:
        os.environ.update(emu.env())
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        bucket = storage.Client(project="test", credentials=AnonymousCredentials()).bucket(BUCKET)
        started = time.perf_counter()
        for i in range(objects):
            bucket.blob(f"floor/t{i // 4}/f{i % 4}").upload_from_string(b"{}" * 100, retry=None)
        return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2, help="runs of each kind (alternated)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-floor", action="store_true", help="skip timing the emulator alone")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="cloudeval-bench-") as tmp:
        workdir = Path(tmp)
        bench = trivial_benchmark(workdir / "trivial", args.tasks, pid=lambda i: f"t{i:04d}", first=1)
        url = f"gs://{BUCKET}/bench"
        walls: dict[str, list[float]] = {"plain": [], "upload": []}
        cpus: dict[str, list[float]] = {"plain": [], "upload": []}
        emulator_cpu: list[float] = []
        for round_no in range(args.rounds):
            # Alternate which goes first, so a warming (or cooling) machine favours neither.
            kinds = ["plain", "upload"] if round_no % 2 == 0 else ["upload", "plain"]
            for kind in kinds:
                run_id = f"{kind}-{round_no}"
                with GcsEmulator(buckets=[BUCKET]) as emu:  # both kinds run with an emulator up
                    env = dict(os.environ, **emu.env())
                    assert emu.pid is not None
                    before = process_cpu(emu.pid)
                    wall, cpu = timed_run(bench, workdir, run_id, args.workers, env,
                                          url if kind == "upload" else None)
                    emu_cpu = process_cpu(emu.pid) - before
                    if kind == "upload":
                        emulator_cpu.append(emu_cpu)
                        stored = [n for n in emu.objects(BUCKET, f"bench/{run_id}/") if n.endswith("/result.json")]
                        if len(stored) != args.tasks:
                            sys.exit(f"only {len(stored)} of {args.tasks} result.json objects in the bucket")
                walls[kind].append(wall)
                cpus[kind].append(cpu)
                print(f"round {round_no + 1}: {kind:<6} wall {wall:7.2f} s, pytest CPU {cpu:6.2f} s"
                      + (f", emulator CPU {emu_cpu:6.2f} s" if kind == "upload" else ""), flush=True)
        med = {k: statistics.median(v) for k, v in walls.items()}
        cpu_med = {k: statistics.median(v) for k, v in cpus.items()}
        print(f"tasks {args.tasks}, -n {args.workers}, {args.rounds} rounds, {os.cpu_count()} CPUs")
        for kind, label in (("plain", "without"), ("upload", "with   ")):
            runs = ", ".join(f"{s:.2f}" for s in walls[kind])
            print(f"{label} --artifacts-url: median wall {med[kind]:.2f} s (runs: {runs}), "
                  f"pytest CPU {cpu_med[kind]:.2f} s")
        ratio = med["upload"] / med["plain"]
        print(f"wall ratio {ratio:.3f} (goal <= 1.10): {'ok' if ratio <= 1.10 else 'OVER'}")
        print(f"upload cost in the run's own processes: {cpu_med['upload'] - cpu_med['plain']:+.2f} s CPU; "
              f"emulator: {statistics.median(emulator_cpu):.2f} s CPU on the same machine")
        if not args.no_floor:
            objects = 4 * args.tasks  # answer.txt, agent.log, judge.json, result.json
            floor = emulator_floor(objects)
            print(f"emulator alone: {floor:.2f} s to store {objects} small objects one by one "
                  f"(its time per object grows with the objects it holds): no run that uploads them can be "
                  f"shorter")
    return 0


if __name__ == "__main__":
    sys.exit(main())
