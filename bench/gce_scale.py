"""50 VMs in one run on the shipped GCE emulator (goal: all 50 ready within 3x the time of 1 VM,
controller peak RSS under 300 MB, every task passed, no VM left).

Runs, in one invocation and against one emulator, ``pytest --cloud=gce -n 1`` and ``-n 50`` (one
worker per VM, VMs on 127.0.0.2 and up) on trivial USACO tasks with the oracle agent, and measures:

- ready: from launching pytest until every worker has collected (xdist's
  ``pytest_xdist_node_collection_finished`` for the last node), which is when all can take tasks;
  also the controller's own "ready in" (VMs up, SSH, code shipped, runtime checked), before xdist
  starts the workers;
- the controller's peak RSS (``VmHWM`` of the pytest process) and the largest RSS of the whole
  process tree (pytest and its ssh clients) sampled every 0.5 s;
- every task passed (one result.json each, outcome passed) and no instance of the run is left;
- where the time goes: when the controller's bring-up ended, when the last worker's gateway opened
  and the last worker started; and the CPU spent until every worker was ready (sampled every
  0.25 s) by pytest and its ssh clients, by the VM containers (cgroup accounting), by Docker's
  daemons (the whole engine's: other users of it count too), by the emulator (this process), and
  by the whole machine (so the share other work took is visible);
- the CPU floor: the CPU each extra VM costs, spread over the machine's cores, added to the time
  of one VM; and how many VMs that cost lets fit within 3x the time of one.

    python bench/gce_scale.py [--vms 50] [--tasks-per-vm 2]
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

from pytest_cloudeval.testing.gce_emulator import GceEmulator  # noqa: E402

ADD = "a, b = map(int, input().split())\nprint(a + b)\n"
# The judge's time limit per test is generous: 50 VMs on a small machine make a Python start slow,
# and this bench measures readiness, not the judge.
# Loaded by pytest on the controller: when each worker has collected, and the controller's peak RSS.
TIMING_CONFTEST = '''import json, os, time

_marks = {"collected": [], "setupnodes": [], "gateway": [], "nodeready": []}


def pytest_xdist_setupnodes(config, specs):
    _marks["setupnodes"].append(time.time())


def pytest_xdist_newgateway(gateway):
    _marks["gateway"].append(time.time())


def pytest_testnodeready(node):
    _marks["nodeready"].append(time.time())


def pytest_xdist_node_collection_finished(node, ids):
    _marks["collected"].append(time.time())


def pytest_unconfigure(config):
    if hasattr(config, "workerinput"):
        return
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            _marks["vmhwm_kb"] = int(line.split()[1])
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


def tree_rss_kb(root_pid: int) -> int:
    """Resident memory of ``root_pid`` and all its descendants, from /proc."""
    return sum(p.rss_kb for p in procfs.tree(root_pid, list(procfs.processes())))


TICK = procfs.TICK
DAEMONS = frozenset({"dockerd", "containerd", "containerd-shim", "containerd-shim-runc-v2", "docker-proxy"})


def cpu_seconds(root_pid: int, daemons_seen: dict[int, list[float]]) -> float:
    """CPU seconds (user + system, with reaped children) of ``root_pid``'s tree; records the CPU of
    Docker's daemons by pid in ``daemons_seen`` ([first seen, last seen]; shims come and go)."""
    procs = list(procfs.processes())
    for p in procs:
        if p.name in DAEMONS:
            daemons_seen.setdefault(p.pid, [p.cpu_s, p.cpu_s])[1] = p.cpu_s
    return sum(p.cpu_s for p in procfs.tree(root_pid, procs))


def daemon_cpu(daemons_seen: dict[int, list[float]], before: set[int]) -> float:
    """CPU the daemons used since the baseline (``before``: pids that ran then; others from zero)."""
    return sum(last - (first if pid in before else 0.0) for pid, (first, last) in daemons_seen.items())


def container_cpu(ids: set[str], seen: dict[str, float]) -> float:
    """Total CPU seconds of the VM containers ``ids`` (cgroup v1 cpuacct, or v2 cpu.stat), keeping the
    last value of containers that are gone in ``seen``."""
    for cid in ids:
        for path in (f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage",
                     f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat"):
            try:
                text = Path(path).read_text()
            except OSError:
                continue
            if path.endswith("cpu.stat"):
                seen[cid] = int(text.split("usage_usec", 1)[1].split()[0]) / 1e6
            else:
                seen[cid] = int(text) / 1e9
            break
    return sum(seen.values())


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (all cores, everything but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / TICK


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run_pytest(root: Path, emulator: GceEmulator, run_id: str, workers: int, tasks: int,
               keep: Path | None = None) -> dict[str, Any]:
    timing = root / f"timing-{run_id}.json"
    env = dict(os.environ, BENCH_TIMING=str(timing))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.pop("PYTEST_ADDOPTS", None)
    results = root / "results"
    cmd = [sys.executable, "-m", "pytest", "add", "-q", "-p", "no:cacheprovider", "--agent", "oracle",
           "--cloud=gce", f"--gce-api-endpoint={emulator.endpoint}", "--gce-project=bench-project",
           f"--results-dir={results}", f"--run-id={run_id}", "-n", str(workers)]
    load_before = load()
    t0 = time.time()
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = [0]
    stop = threading.Event()
    samples: list[tuple[float, float, float, float, float, float]] = []
    """(time, CPU s of pytest and its children, of Docker's daemons, of the run's VM containers, of
    this process (the emulator; the sampler's own CPU taken out), of the whole machine)"""
    import docker

    client = docker.from_env()
    label = f"cloudeval.gce.emulator={emulator.state_label}"
    daemons_seen: dict[int, list[float]] = {}
    cpu_seconds(os.getpid(), daemons_seen)
    before = set(daemons_seen)
    machine0 = machine_busy_seconds()
    me0 = sum(os.times()[:2])
    sampler_cpu = [0.0]
    ids: set[str] = set()
    seen: dict[str, float] = {}

    def sample() -> None:
        tick = 0
        while not stop.wait(0.25):
            tick += 1
            if tick % 4 == 0:
                try:
                    ids.update(c.id for c in client.containers.list(all=True, filters={"label": label}, sparse=True)
                               if run_id in (c.attrs.get("Names") or [""])[0])
                except Exception:  # noqa: BLE001 - a missed sample is no error
                    pass
                peak[0] = max(peak[0], tree_rss_kb(proc.pid))
            tree = cpu_seconds(proc.pid, daemons_seen)
            sampler_cpu[0] = time.thread_time()
            samples.append((time.time(), tree, daemon_cpu(daemons_seen, before), container_cpu(ids, seen),
                            sum(os.times()[:2]) - me0 - sampler_cpu[0], machine_busy_seconds() - machine0))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate(timeout=1200)
    wall = time.time() - t0
    stop.set()
    sampler.join()
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        (keep / f"{run_id}.out").write_text(out)
    if proc.returncode != 0:  # reported with the figures; the checks below say what went wrong
        print(f"pytest -n {workers} exited {proc.returncode}:\n{out[-3000:]}", flush=True)
    marks = json.loads(timing.read_text()) if timing.is_file() else {"collected": []}
    ready = re.search(r"worker\(s\) on (\d+) VM\(s\) ready in ([\d.]+) s", out)
    running = re.search(r"VM\(s\) running after ([\d.]+) s", out)
    passed = re.search(r"(\d+) passed", out)
    stored = [json.loads(p.read_text()) for p in (results / run_id / "add").glob("*/result.json")]
    left = [i["name"] for i in emulator.instances() if run_id in i["name"]]
    collected = sorted(marks["collected"])
    ready_at = collected[-1] if len(collected) == workers else None
    at_ready = next((x for x in samples if ready_at is not None and x[0] >= ready_at), samples[-1] if samples else None)
    client.close()
    return {
        "workers": workers, "wall_s": wall, "load_before": load_before, "load_after": load(),
        "vms_ready": int(ready.group(1)) if ready else None,
        "controller_ready_s": float(ready.group(2)) if ready else None,
        "vms_running_s": float(running.group(1)) if running else None,
        "all_workers_ready_s": collected[-1] - t0 if len(collected) == workers else None,
        "first_worker_ready_s": collected[0] - t0 if collected else None,
        "setupnodes_s": marks["setupnodes"][0] - t0 if marks["setupnodes"] else None,
        "last_gateway_s": max(marks["gateway"]) - t0 if marks["gateway"] else None,
        "last_nodeready_s": max(marks["nodeready"]) - t0 if marks["nodeready"] else None,
        # CPU seconds spent until every worker was ready (sampled every 0.25 s):
        "cpu_at_ready": _cpu(at_ready),
        "cpu_total": _cpu(samples[-1] if samples else None),
        "ready_window_s": at_ready[0] - t0 if at_ready else None,
        "controller_peak_rss_mb": marks.get("vmhwm_kb", 0) / 1024,
        "tree_peak_rss_mb": peak[0] / 1024,
        "passed": int(passed.group(1)) if passed else 0,
        "stored_passed": sum(1 for r in stored if r.get("outcome") == "passed"),
        "tasks": tasks, "vms_left": left, "exit": proc.returncode,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vms", type=int, default=50)
    parser.add_argument("--tasks-per-vm", type=int, default=2)
    parser.add_argument("--keep-output", type=Path, help="write each pytest run's output to this folder")
    args = parser.parse_args()
    tasks = args.vms * args.tasks_per_vm
    rows = []
    with tempfile.TemporaryDirectory(prefix="cloudeval-bench-") as tmp, GceEmulator(address_pool=range(2, 255)) as emulator:
        root = Path(tmp)
        make_project(root, tasks)
        for workers in (1, args.vms):
            row = run_pytest(root, emulator, f"scale{workers}-{os.getpid() % 10000}", workers, tasks,
                             args.keep_output)
            rows.append(row)
            print(json.dumps(row), flush=True)
    one, many = rows
    ok = True
    for row in rows:
        good = row["passed"] == tasks and row["stored_passed"] == tasks and not row["vms_left"]
        ok &= good
        print(f"-n {row['workers']:>2}: all workers ready {_f(row['all_workers_ready_s'])} s after launch "
              f"(controller: VMs running {_f(row['vms_running_s'])} s, ready {_f(row['controller_ready_s'])} s); "
              f"{row['passed']}/{tasks} passed, {row['stored_passed']} stored passed, "
              f"{len(row['vms_left'])} VM(s) left; controller peak RSS {row['controller_peak_rss_mb']:.0f} MB "
              f"(with ssh clients {row['tree_peak_rss_mb']:.0f} MB); wall {row['wall_s']:.1f} s; "
              f"load {row['load_before']} -> {row['load_after']}")
    cores = os.cpu_count() or 1
    for row in rows:
        cpu = row["cpu_at_ready"]
        if cpu:
            n = row["workers"]
            ours = cpu["pytest_and_ssh"] + cpu["vm_containers"] + cpu["docker_daemons"] + cpu["emulator"]
            window = row["ready_window_s"] or 0.0
            print(f"-n {n:>2}: CPU until all ready: pytest + ssh clients {cpu['pytest_and_ssh']:.1f} s, VM containers "
                  f"{cpu['vm_containers']:.1f} s ({cpu['vm_containers'] / n:.2f} s per VM), Docker daemons "
                  f"{cpu['docker_daemons']:.1f} s (whole engine), emulator {cpu['emulator']:.1f} s; machine busy "
                  f"{cpu['machine']:.1f} of {window * cores:.1f} core-s, {max(0.0, cpu['machine'] - ours):.1f} s of it "
                  f"other work; bring-up done {_f(row['setupnodes_s'])} s, last gateway {_f(row['last_gateway_s'])} s, "
                  f"last worker up {_f(row['last_nodeready_s'])} s")
    if many["cpu_at_ready"] and one["all_workers_ready_s"] and args.vms > 1:
        # The CPU floor: what the extra VMs cost on this machine's cores, added to the one-VM time.
        def ours(cpu: dict[str, float] | None) -> float:
            # Docker's daemons are left out: their figure is the whole engine's, other users' work
            # included, so the floor is a lower bound.
            return sum(v for k, v in (cpu or {}).items() if k not in ("machine", "docker_daemons"))

        cpu_many, cpu_one = ours(many["cpu_at_ready"]), ours(one["cpu_at_ready"])
        per_vm = max(0.01, (cpu_many - cpu_one) / (args.vms - 1))
        floor = one["all_workers_ready_s"] + per_vm * (args.vms - 1) / cores
        fits = int((3 * one["all_workers_ready_s"] - one["all_workers_ready_s"]) * cores / per_vm) + 1 if per_vm else 0
        print(f"CPU floor: {per_vm:.2f} CPU-s per extra VM (controller, ssh, VM, emulator; not Docker's engine) "
              f"x {args.vms - 1} / {cores} cores "
              f"+ T(1) {one['all_workers_ready_s']:.1f} s = {floor:.1f} s = {floor / one['all_workers_ready_s']:.2f}x T(1); "
              f"VMs that fit in 3x T(1) at that cost: {fits}")
    if not (many["all_workers_ready_s"] and one["all_workers_ready_s"]):
        print("not every worker became ready: no ratio")
        return 1
    ratio = many["all_workers_ready_s"] / one["all_workers_ready_s"]
    rss_ok = many["controller_peak_rss_mb"] < 300
    print(f"{args.vms} VMs ready in {ratio:.2f}x the time of 1 VM (goal <= 3): {'ok' if ratio <= 3 else 'OVER'}; "
          f"controller peak RSS {many['controller_peak_rss_mb']:.0f} MB (goal < 300): {'ok' if rss_ok else 'OVER'}; "
          f"tasks and cleanup: {'ok' if ok else 'FAILED'}")
    return 0 if ok else 1


def _cpu(sample: tuple[float, ...] | None) -> dict[str, float] | None:
    if sample is None:
        return None
    _, tree, daemons, vms, emulator, machine = sample
    return {"pytest_and_ssh": tree, "docker_daemons": daemons, "vm_containers": vms, "emulator": emulator,
            "machine": machine}


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


if __name__ == "__main__":
    sys.exit(main())
