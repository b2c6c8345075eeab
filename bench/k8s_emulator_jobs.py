"""Time for N emulated Jobs to have Running pods, with and without in-cluster access, on the emulator.

For each N (default 1 and 8) and each arm: N Jobs are created at once through the official client
(``sleep`` pods of the runner image, ``backoffLimit 0``) and the clock stops when all N pods are
``Running``; then they are deleted (``Background``) and the next round starts when they are gone.
Arms: ``plain`` (no ServiceAccount) and ``in-cluster`` (``serviceAccountName``: the token files and a
per-pod API proxy container, so two containers per pod). Medians over ``--rounds``. The figures feed
the GKE goal "8 worker pods ready within 1.5x of 1".

    python bench/k8s_emulator_jobs.py [--counts 1,8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

IMAGE = "cloudeval/runner:bookworm"


def job(name: str, account: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                            "containers": [{"name": "main", "image": IMAGE, "command": ["sleep", "300"]}]}
    if account:
        spec["serviceAccountName"] = account
    return {"metadata": {"name": name, "labels": {"bench": "jobs"}},
            "spec": {"backoffLimit": 0, "template": {"metadata": {"labels": {"bench": "jobs"}}, "spec": spec}}}


def one_round(core: Any, batch: Any, namespace: str, count: int, account: str | None, tag: str) -> float:
    names = [f"{tag}-{i}" for i in range(count)]
    started = time.perf_counter()
    threads = [threading.Thread(target=batch.create_namespaced_job, args=(namespace, job(n, account)))
               for n in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        pods = core.list_namespaced_pod(namespace, label_selector="bench=jobs").items
        running = [p for p in pods if p.status.phase == "Running"]
        if len(running) >= count:
            elapsed = time.perf_counter() - started
            break
        if any(p.status.phase == "Failed" for p in pods):
            raise RuntimeError(f"a pod failed: {[p.status for p in pods if p.status.phase == 'Failed'][:1]}")
        time.sleep(0.05)
    else:
        states = [(p.metadata.name, p.status.phase, p.status.reason) for p in pods]
        raise RuntimeError(f"{count} {tag} pods were not Running within 120 s: {states}, jobs "
                           f"{[(j.metadata.name, j.status.active) for j in batch.list_namespaced_job(namespace).items]}")
    batch.delete_collection_namespaced_job(namespace, label_selector="bench=jobs", propagation_policy="Background")
    while core.list_namespaced_pod(namespace, label_selector="bench=jobs").items:
        time.sleep(0.2)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="1,8")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from kubernetes import client, config

    from pytest_cloudeval.testing.k8s_emulator import K8sEmulator

    folder = Path(tempfile.mkdtemp(prefix="cloudeval-bench-jobs-"))
    with K8sEmulator(kubeconfig=folder / "kubeconfig") as emu:
        api_client = config.new_client_from_config(str(emu.kubeconfig))
        core, batch = client.CoreV1Api(api_client), client.BatchV1Api(api_client)
        core.create_namespaced_service_account("default", {"metadata": {"name": "bench-worker"}})
        results: dict[tuple[str, int], list[float]] = {}
        for round_no in range(args.rounds):
            for count in (int(c) for c in args.counts.split(",")):
                for arm, account in (("plain", None), ("in-cluster", "bench-worker")):
                    tag = f"r{round_no}-{arm}-{count}"
                    results.setdefault((arm, count), []).append(
                        one_round(core, batch, "default", count, account, tag))
        base = {arm: statistics.median(results[(arm, min(int(c) for c in args.counts.split(",")))])
                for arm in ("plain", "in-cluster")}
        for (arm, count), times in sorted(results.items()):
            median = statistics.median(times)
            print(f"{arm:10s} {count:3d} jobs -> all Running: median {median:.2f} s "
                  f"({median / base[arm]:.2f}x of the smallest count; rounds {', '.join(f'{t:.2f}' for t in times)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
