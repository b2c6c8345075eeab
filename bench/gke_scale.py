"""Worker pods at scale on the shipped Kubernetes emulator: time to ready workers for 1, 8 and 50
worker pods in one run of this script (goals: 8 within 1.5x of 1, 50 within 3x of 1), the
controller's peak RSS with 50 workers (goal < 300 MB), and the per-task overhead of a pod worker
against a local xdist worker.

Against one emulator (its pods are Docker containers, reached with the real ``kubectl exec``), runs
``pytest --cloud=gke -n W`` (one worker per pod, 250m CPU and 256Mi each) on trivial USACO tasks with
the oracle agent, and measures:

- ready: from launching pytest until every worker has collected (xdist's
  ``pytest_xdist_node_collection_finished`` for the last node), when all can take tasks; also the
  controller's own "pods running" and "ready in" (pods up, code shipped, runtime checked);
- the controller's peak RSS (``VmHWM`` of pytest) and the largest RSS of its process tree (pytest and
  its kubectl clients), sampled every 0.5 s;
- every task passed and no pod or Job of the run is left;
- per-task overhead: ``-n 1`` on 20 tasks, the mean time between consecutive task reports on the
  controller, for a pod worker and for a local (popen) worker;
- where the CPU goes until every worker has collected: the pods (cgroup cpuacct of their containers),
  pytest with its kubectl clients, the emulator (this process, with the sampler), the Docker engine
  (dockerd, containerd, shims: shared with anything else using the engine), and each worker's own
  start-up CPU (python, execnet, imports, collection); a line per size divides that CPU by the cores
  and sets it against the size's goal (1.5 or 3 x the 1-pod time): on the emulator the pods run on
  the controller's cores, so a faster 1-pod start (less fixed cost) makes the ratios harder, not easier.

    python bench/gke_scale.py [--pods 1,8,50] [--tasks-per-pod 2] [--overhead-tasks 20]

The last line is the headline.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import procfs  # noqa: E402 - bench/procfs.py

from pytest_cloudeval.testing.k8s_emulator import K8sEmulator  # noqa: E402

ADD = "a, b = map(int, input().split())\nprint(a + b)\n"
TIMING_CONFTEST = '''import json, os, time

_marks = {"collected": [], "worker_startup_cpu_s": []}


def pytest_xdist_node_collection_finished(node, ids):
    _marks["collected"].append(time.time())


def pytest_collection_finish(session):
    # On a worker: its own CPU (python start-up, execnet bootstrap, imports, collection) until it can
    # take tasks; sent back to the controller with the worker's output at its end.
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        t = os.times()
        workeroutput["startup_cpu_s"] = t.user + t.system


def pytest_testnodedown(node, error):
    cpu = getattr(node, "workeroutput", {}).get("startup_cpu_s")
    if cpu is not None:
        _marks["worker_startup_cpu_s"].append(cpu)


def pytest_runtest_logreport(report):
    if report.when == "call":
        _marks.setdefault("reports", []).append(time.time())


def pytest_unconfigure(config):
    if hasattr(config, "workerinput"):
        return
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            _marks["vmhwm_kb"] = int(line.split()[1])
    t = os.times()
    _marks["controller_cpu_s"] = t.user + t.system
    _marks["controller_children_cpu_s"] = t.children_user + t.children_system
    path = os.environ.get("BENCH_TIMING")
    if path:
        with open(path, "w") as f:
            json.dump(_marks, f)
'''


def make_project(root: Path, tasks: int) -> None:
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "conftest.py").write_text(TIMING_CONFTEST)
    bench = root / "add"
    problems = {}
    for i in range(tasks):
        pid = f"{1000 + i}_bronze_add_{i}"
        problems[pid] = {"name": f"Add {i}", "problem_id": pid, "problem_level": "bronze", "description": "a+b",
                         "runtime_limit": 60, "memory_limit": 256, "num_tests": 1, "solution_python3": ADD}
        (bench / "tests" / pid).mkdir(parents=True)
        (bench / "tests" / pid / "1.in").write_text(f"{i} {i}\n")
        (bench / "tests" / pid / "1.out").write_text(f"{2 * i}\n")
    (bench / "problems.json").write_text(json.dumps(problems))
    (bench / "benchmark.toml").write_text('format = "usaco"\ndataset = "problems.json"\ntests_dir = "tests"\n')


def tree_rss_kb(root_pid: int, cpu: list[float] | None = None, engine: dict[int, float] | None = None) -> int:
    """Resident memory of ``root_pid`` and all its descendants, from /proc; their CPU seconds (with
    what they reaped) go to ``cpu[0]`` when given, and the engine's processes to ``engine`` (see
    ``engine_cpu_s``), in the same pass over /proc."""
    procs = list(procfs.processes())
    if engine is not None:
        for p in procs:
            if p.name in ENGINE or p.name.startswith("containerd-shim"):
                engine[p.pid] = max(engine.get(p.pid, 0.0), p.own_cpu_s)
    mine = procfs.tree(root_pid, procs)
    if cpu is not None:
        cpu[0] = max(cpu[0], sum(p.cpu_s for p in mine))
    return sum(p.rss_kb for p in mine)


ENGINE = ("dockerd", "containerd", "containerd-shim", "containerd-shim-runc-v2", "runc", "docker-proxy")
CPUACCT = Path("/sys/fs/cgroup/cpuacct/docker")


def engine_cpu_s(seen: dict[int, float]) -> None:
    """Update ``seen`` (pid -> CPU seconds) with the Docker engine's processes (dockerd, containerd, the
    shims and runc: what starting containers and execs costs the engine). Shims end with their
    container, so the caller keeps the largest figure of each pid it ever saw."""
    for p in procfs.processes():
        if p.name in ENGINE or p.name.startswith("containerd-shim"):
            seen[p.pid] = max(seen.get(p.pid, 0.0), p.own_cpu_s)


def pods_cpu_s(emulator: K8sEmulator, seen: dict[str, float]) -> None:
    """Update ``seen`` (container id -> CPU seconds, cgroup v1 cpuacct) with the emulator's pod
    containers (their ids from the emulator's own records: no engine call): the worker pods' own CPU
    (interpreters, unpacking, tasks)."""
    if not CPUACCT.is_dir():
        return
    ids = [r.container_id for r in list(emulator.cluster.pods.values()) if r.container_id]
    for cid in ids:
        try:
            seen[cid] = max(seen.get(cid, 0.0), int((CPUACCT / cid / "cpuacct.usage").read_text()) / 1e9)
        except (OSError, ValueError):
            continue


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def leftovers(emulator: K8sEmulator, run_id: str) -> list[str]:
    pods = [p["metadata"]["name"] for p in emulator.pods("default")
            if (p["metadata"].get("labels") or {}).get("cloudeval.run") == run_id
            and (p.get("status") or {}).get("phase") in ("Pending", "Running")]
    jobs = [j["metadata"]["name"] for j in emulator.jobs("default")
            if (j["metadata"].get("labels") or {}).get("cloudeval.run") == run_id]
    return pods + jobs


def run_pytest(root: Path, emulator: K8sEmulator, run_id: str, workers: int, tasks: int, cloud: bool,
               keep: Path | None = None) -> dict[str, Any]:
    timing = root / f"timing-{run_id}.json"
    env = dict(os.environ, BENCH_TIMING=str(timing))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("KUBECONFIG", None)
    results = root / "results"
    cmd = [sys.executable, "-m", "pytest", "add", "-q", "-p", "no:cacheprovider", "--agent", "oracle",
           f"--results-dir={results}", f"--run-id={run_id}", "-n", str(workers), "-k", _first(tasks)]
    if cloud:
        cmd += ["--cloud=gke", f"--kubeconfig={emulator.kubeconfig}", "--worker-cpu=250m", "--worker-memory=256Mi"]
    load_before = load()
    before = os.times()
    t0 = time.time()
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = [0]
    stop = threading.Event()
    engine: dict[int, float] = {}
    engine_cpu_s(engine)
    engine_before = sum(engine.values())
    pods: dict[str, float] = {}

    tree_cpu = [0.0]
    series: list[tuple[float, float, float, float, float]] = []
    """(when, pods, pytest with kubectl, emulator, engine) CPU seconds so far, every 0.5 s."""

    def sample() -> None:
        while not stop.wait(0.5):
            peak[0] = max(peak[0], tree_rss_kb(proc.pid, tree_cpu, engine if cloud else None))
            if cloud:
                pods_cpu_s(emulator, pods)
                me = os.times()
                series.append((time.time(), sum(pods.values()), tree_cpu[0],
                               me.user + me.system - before.user - before.system,
                               sum(engine.values()) - engine_before))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate(timeout=1800)
    wall = time.time() - t0
    after = os.times()
    stop.set()
    sampler.join()
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        (keep / f"{run_id}.out").write_text(out)
    if proc.returncode != 0:
        print(f"pytest -n {workers} exited {proc.returncode}:\n{out[-3000:]}", flush=True)
    marks = json.loads(timing.read_text()) if timing.is_file() else {"collected": []}
    ready = re.search(r"worker\(s\) on (\d+) pod\(s\) ready in ([\d.]+) s", out)
    running = re.search(r"pod\(s\) running after ([\d.]+) s", out)
    passed = re.search(r"(\d+) passed", out)
    stored = [json.loads(p.read_text()) for p in (results / run_id / "add").glob("*/result.json")]
    collected = sorted(marks["collected"])
    startup = marks.get("worker_startup_cpu_s") or []
    shipped = [tuple(map(float, m)) for m in re.findall(r"kubectl ([\d.]+) s, ship ([\d.]+) s, check ([\d.]+) s", out)]
    reports = sorted(marks.get("reports", []))
    return {
        "workers": workers, "cloud": cloud, "wall_s": wall, "load_before": load_before, "load_after": load(),
        "pods_ready": int(ready.group(1)) if ready else None,
        "controller_ready_s": float(ready.group(2)) if ready else None,
        "pods_running_s": float(running.group(1)) if running else None,
        "all_workers_ready_s": collected[-1] - t0 if len(collected) == workers else None,
        "per_task_s": (reports[-1] - reports[0]) / (len(reports) - 1) if len(reports) > 1 else None,
        "controller_peak_rss_mb": marks.get("vmhwm_kb", 0) / 1024,
        "tree_peak_rss_mb": peak[0] / 1024,
        "passed": int(passed.group(1)) if passed else 0,
        "stored_passed": sum(1 for r in stored if r.get("outcome") == "passed"),
        # CPU seconds over the whole run: the emulator (threads of this process; the sampler is
        # negligible), pytest with its kubectl clients (reaped children), and the workers' own CPU
        # until each had collected (in the pods, so in neither of the former).
        "cpu_emulator_s": (after.user + after.system) - (before.user + before.system),
        "cpu_pytest_tree_s": ((after.children_user + after.children_system)
                              - (before.children_user + before.children_system)),
        "cpu_controller_python_s": marks.get("controller_cpu_s"),
        "worker_startup_cpu_s": sum(startup) / len(startup) if startup else None,
        "cpu_engine_s": sum(engine.values()) - engine_before if cloud else None,
        "cpu_pods_total_s": sum(pods.values()) if cloud else None,
        # The same, sampled every 0.5 s, at the last sample before every worker had collected.
        "cpu_until_ready_s": (dict(zip(("pods", "pytest_kubectl", "emulator", "engine"),
                                       max((row for row in series if row[0] <= collected[-1]),
                                           default=(0.0, 0.0, 0.0, 0.0, 0.0))[1:], strict=True))
                              if cloud and collected else None),
        "worker_startup_cpu_n": len(startup),
        "ready_phases_mean_s": ([sum(col) / len(col) for col in zip(*shipped, strict=True)] if shipped else None),
        "tasks": tasks, "left": leftovers(emulator, run_id) if cloud else [], "exit": proc.returncode,
    }


def _first(count: int) -> str:
    """A -k expression selecting the first ``count`` tasks of the project."""
    return " or ".join(f"{1000 + i}_bronze" for i in range(count))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", default="1,8,50")
    parser.add_argument("--tasks-per-pod", type=int, default=2)
    parser.add_argument("--overhead-tasks", type=int, default=20)
    parser.add_argument("--keep-output", type=Path, help="write each pytest run's output to this folder")
    args = parser.parse_args()
    sizes = [int(x) for x in args.pods.split(",")]
    rows = []
    tag = os.getpid() % 10000
    with tempfile.TemporaryDirectory(prefix="cloudeval-bench-") as tmp:
        root = Path(tmp)
        emulator = K8sEmulator(kubeconfig=root / "kubeconfig").start()
        try:
            make_project(root, max(max(sizes) * args.tasks_per_pod, args.overhead_tasks))
            for workers in sizes:
                tasks = workers * args.tasks_per_pod
                row = run_pytest(root, emulator, f"scale{workers}-{tag}", workers, tasks, True, args.keep_output)
                rows.append(row)
                print(json.dumps(row), flush=True)
            pod = run_pytest(root, emulator, f"ovh-pod-{tag}", 1, args.overhead_tasks, True, args.keep_output)
            local = run_pytest(root, emulator, f"ovh-local-{tag}", 1, args.overhead_tasks, False, args.keep_output)
            print(json.dumps(pod), flush=True)
            print(json.dumps(local), flush=True)
        finally:
            emulator.stop()
    ok = True
    for row in rows + [pod, local]:
        good = row["passed"] == row["tasks"] and row["stored_passed"] == row["tasks"] and not row["left"]
        ok &= good
        where = "pods" if row["cloud"] else "local"
        print(f"-n {row['workers']:>2} ({where}): all workers ready {_f(row['all_workers_ready_s'])} s after launch "
              f"(controller: pods running {_f(row['pods_running_s'])} s, ready {_f(row['controller_ready_s'])} s); "
              f"{row['passed']}/{row['tasks']} passed, {len(row['left'])} left; controller peak RSS "
              f"{row['controller_peak_rss_mb']:.0f} MB (with kubectl clients {row['tree_peak_rss_mb']:.0f} MB); "
              f"per task {_f(row['per_task_s'], 3)} s; wall {row['wall_s']:.1f} s; "
              f"load {row['load_before']} -> {row['load_after']}")
    by_size = {row["workers"]: row for row in rows}
    one = by_size.get(1, {}).get("all_workers_ready_s")
    if not one or any(row["all_workers_ready_s"] is None for row in rows):
        print("not every worker became ready: no ratio")
        return 1
    ratios = {w: row["all_workers_ready_s"] / one for w, row in by_size.items() if w != 1}
    goals = {8: 1.5, 50: 3.0}
    biggest = by_size[max(by_size)]
    rss_ok = biggest["controller_peak_rss_mb"] < 300
    overhead = (pod["per_task_s"] or 0) - (local["per_task_s"] or 0)
    parts = [f"{w} pods ready in {r:.2f}x the time of 1 (goal <= {goals.get(w, 3.0)}): "
             f"{'ok' if r <= goals.get(w, 3.0) else 'OVER'}" for w, r in sorted(ratios.items())]
    parts.append(f"controller peak RSS with {max(by_size)} workers {biggest['controller_peak_rss_mb']:.0f} MB "
                 f"(goal < 300): {'ok' if rss_ok else 'OVER'}")
    parts.append(f"per task: pod worker {_f(pod['per_task_s'], 3)} s vs local {_f(local['per_task_s'], 3)} s "
                 f"({overhead * 1000:+.0f} ms)")
    parts.append(f"tasks and cleanup: {'ok' if ok else 'FAILED'}")
    for w in sorted(ratios):
        print(cpu_floor(by_size[w], one, goals.get(w, 3.0)))
    print("; ".join(parts))
    return 0 if ok else 1


def cpu_floor(row: dict[str, Any], one: float, goal: float) -> str:
    """Whether a size's goal (``goal`` x the 1-pod time) is reachable on this machine's cores at all:
    the CPU the run spent until every worker could take tasks, divided by the cores, against it."""
    cores = os.cpu_count() or 1
    workers = row["workers"]
    startup = row["worker_startup_cpu_s"] or 0.0
    spent = row.get("cpu_until_ready_s") or {}
    total = sum(spent.values())
    budget = goal * one
    floor = total / cores
    return (f"CPU floor, {workers} pods on {cores} cores: worker start-up {startup:.2f} s x {workers} / {cores} = "
            f"{startup * workers / cores:.1f} s; all CPU until ready (" +
            " + ".join(f"{k} {v:.1f}" for k, v in spent.items()) + f" = {total:.1f} s) / {cores} = {floor:.1f} s; "
            f"per pod {total / workers:.2f} CPU-s; {goal:g} x T(1) = {goal:g} x {one:.1f} = {budget:.1f} s: "
            f"{'reachable' if floor <= budget else 'out of reach on this machine (the floor alone is over it)'}")


def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


if __name__ == "__main__":
    sys.exit(main())
