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


FLAVOUR_DOCKERFILE = ("ARG BASE_IMAGE=cloudeval/base:bookworm\nFROM ${BASE_IMAGE}\nWORKDIR /app\n"
                      "COPY flavour.txt /opt/flavour\n")
CHECK_FLAVOUR = ('#!/usr/bin/env bash\nmkdir -p /logs/verifier\n'
                 'echo "image has: $(cat /opt/flavour 2>/dev/null), expected: $(cat /tests/expected)"\n'
                 'if [ "$(cat /opt/flavour 2>/dev/null)" = "$(cat /tests/expected)" ]; then echo 1; else echo 0; fi '
                 '> /logs/verifier/reward.txt\n')


def write_flavour_task(bench: Path, flavour: str) -> None:
    """A Harbor task whose image carries ``flavour`` (COPY from environment/) and whose verifier passes
    only when the image it runs in carries the flavour its tests expect."""
    task = bench / "flavoured"
    for sub in ("environment", "solution", "tests"):
        (task / sub).mkdir(parents=True, exist_ok=True)
    (task / "task.toml").write_text('[agent]\ntimeout_sec = 60\n\n[verifier]\ntimeout_sec = 30\n\n'
                                    '[environment]\nworkdir = "/app"\n')
    (task / "instruction.md").write_text("Nothing to do.\n")
    (task / "environment" / "Dockerfile").write_text(FLAVOUR_DOCKERFILE)
    (task / "environment" / "flavour.txt").write_text(flavour + "\n")
    (task / "solution" / "solve.sh").write_text("#!/usr/bin/env bash\ntrue\n")
    (task / "tests" / "test.sh").write_text(CHECK_FLAVOUR)
    (task / "tests" / "expected").write_text(flavour + "\n")


def test_an_edited_task_environment_runs_in_a_new_image_never_the_old(tmp_path: Path, registry: str) -> None:
    """Two ``--cloud=gke --sandbox=k8s`` runs of one Harbor task, its environment/ edited between them:
    the second run's task pod runs a new image (its verifier checks the flavour baked in), never the
    first run's."""
    emulator()
    project = tmp_path / "proj"
    bench = project / "flav"
    bench.mkdir(parents=True)
    (project / "pytest.ini").write_text("[pytest]\n")
    (bench / "benchmark.toml").write_text('format = "harbor"\nname = "flav"\n')
    images = []
    for flavour in (f"one-{os.urandom(3).hex()}", f"two-{os.urandom(3).hex()}"):
        write_flavour_task(bench, flavour)
        results, run_id = tmp_path / f"results-{flavour}", f"gke-edit-{flavour[:3]}"
        proc = run(project, "flav", "--agent", "oracle", "-n", "1", "--sandbox=k8s",
                   f"--image-registry={registry}", *gke_args(run_id, results), timeout=600)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out[-6000:]
        assert "1 passed" in out, out[-3000:]
        box = json.loads((results / run_id / "flav" / "flavoured" / "sandbox.json").read_text())
        assert box["sandbox"] == "k8s" and box["image"].startswith(f"{registry}/cloudeval-task/"), box
        images.append(box["image"])
        assert eventually(lambda: not leftovers(run_id), timeout=30), leftovers(run_id)  # noqa: B023
    assert images[0] != images[1], images
