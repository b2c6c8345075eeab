"""``--cloud=gke --sandbox=k8s`` with the shipped Harbor benchmark: worker pods have no Docker engine,
so the controller builds each task's ``environment/`` image, pushes it to ``--image-registry``, and
the workers' sibling task pods run the pushed image (found by the build context's content hash).
Emulator + real kubectl + Debian's docker-registry on loopback.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

if os.environ.get("CLOUDEVAL_SKIP_DOCKER") == "1":
    pytest.skip("CLOUDEVAL_SKIP_DOCKER=1", allow_module_level=True)

from tests.gke_support import REPO, gke_args, leftovers, results_of, run
from tests.k8s_support import emulator, start_registry
from tests.waiting import eventually

pytestmark = [pytest.mark.docker, pytest.mark.cloud]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, address = start_registry(tmp_path_factory.mktemp("registry"))
    try:
        yield address
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_shipped_harbor_benchmark_on_worker_pods_with_sibling_task_pods(tmp_path: Path, registry: str) -> None:
    emulator()
    project = tmp_path / "proj"
    project.mkdir()
    (project / "pytest.ini").write_text("[pytest]\n")
    shutil.copytree(REPO / "benchmarks" / "terminal", project / "terminal")
    results, run_id = tmp_path / "results", "gke-harbor"
    proc = run(project, "terminal", "--agent", "oracle", "-n", "2", "--sandbox=k8s",
               f"--image-registry={registry}", *gke_args(run_id, results), timeout=900)
    out = proc.stdout + proc.stderr
    stored = results_of(results, run_id, "terminal-examples")
    tasks = sorted(p.name for p in (project / "terminal").iterdir() if (p / "task.toml").is_file())
    assert proc.returncode == 0, out[-6000:]
    assert f"{len(tasks)} passed" in out, out[-3000:]
    assert sorted(stored) == tasks and all(r["outcome"] == "passed" for r in stored.values()), stored
    built = 0
    for key in tasks:
        box = json.loads((results / run_id / "terminal-examples" / key / "sandbox.json").read_text())
        assert box["sandbox"] == "k8s", box
        if (project / "terminal" / key / "environment" / "Dockerfile").is_file():
            built += 1
            # The worker pod ran the image the controller pushed, not a local tag it cannot build.
            assert box["image"].startswith(f"{registry}/cloudeval-task/"), box
    assert built >= 1
    assert eventually(lambda: not leftovers(run_id), timeout=30), leftovers(run_id)
