"""The workers' runtime on an emulated GCE VM, end to end: a ``--sandbox=local`` run ships no Docker
SDK and its workers import pytest from the runtime archive without compiling anything on the VM; a
``--sandbox=docker`` run on the same VM gets the SDK (the VM image has none) and its tasks pass.

Needs Docker; fails (does not skip) without it unless CLOUDEVAL_SKIP_DOCKER=1.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

if os.environ.get("CLOUDEVAL_SKIP_DOCKER") == "1":
    pytest.skip("CLOUDEVAL_SKIP_DOCKER=1", allow_module_level=True)

from pytest_cloudeval.testing.gce_emulator import GceEmulator
from pytest_cloudeval.testing.gce_emulator.docker_vms import container_name
from tests.soak_support import emulator  # noqa: F401 - a fixture
from tests.test_gce_e2e import ZONE, cloud_args, results_of, run, run_instances
from tests.usaco_factory import problem, write_benchmark

pytestmark = [pytest.mark.docker, pytest.mark.cloud]


# Each worker writes down, on its VM, how it imported pytest.
WORKER_SAYS = """
def pytest_configure(config):
    if hasattr(config, "workerinput"):
        import _pytest.python
        code = _pytest.python.pytest_pycollect_makeitem.__code__
        with open("/tmp/cloudeval-worker-imports", "w") as f:
            f.write(" ".join([type(_pytest.python.__loader__).__name__, _pytest.python.__file__, code.co_filename]))
"""


def on_vm(vm: str, script: str) -> str:
    import docker

    client = docker.from_env()
    try:
        code, out = client.containers.get(container_name(ZONE, vm)).exec_run(["sh", "-c", script])
        assert code == 0, out.decode()
        return str(out.decode())
    finally:
        client.close()


def test_local_runs_ship_no_docker_sdk_and_docker_runs_get_it(emulator: GceEmulator,  # noqa: F811
                                                               tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "conftest.py").write_text(WORKER_SAYS)
    write_benchmark(root / "add", {pid: problem(pid) for pid in ("101_bronze_add", "102_bronze_add")})
    pool = f"rt{os.getpid() % 10000}"
    common = ["add", "--agent", "oracle", "-n", "1", f"--keep-workers={pool}"]
    try:
        local = run(root, *common, *cloud_args(emulator, "rt-local", tmp_path / "r"))
        assert local.returncode == 0, local.stdout + local.stderr
        (vm,) = [i["name"] for i in run_instances(emulator, f"ce-pool-{pool}-")]
        site = "/var/tmp/cloudeval/runs/rt-local/site"
        listing = on_vm(vm, f"cd {site}/ && ls && find . -type f | wc -l && python3 -c "
                            f"\"import zipfile; print(sorted({{n.split('/')[0] for n in zipfile.ZipFile('runtime.zip').namelist()}}))\"")
        tops = listing.split()
        assert "runtime.zip" in tops and "pytest_cloudeval" in tops and "_pytest" not in tops, listing
        assert not any(name.startswith(("docker", "requests", "jinja2")) for name in listing.replace("'", " ").split()), \
            listing
        # The worker imported pytest from the archive through its importer (real file names).
        loader, file, co_filename = on_vm(vm, "cat /tmp/cloudeval-worker-imports").split()
        assert loader == "RuntimeZip" and file == co_filename == f"{site}/runtime.zip/_pytest/python.py", \
            (loader, file, co_filename)
        # Every module the workers imported came with its bytecode: nothing was compiled on the VM.
        written = on_vm(vm, f"find -L {site}/ -name '*.pyc' -newer {site}/.complete")
        assert written.strip() == "", written

        docker = run(root, *common, "--sandbox=docker", *cloud_args(emulator, "rt-docker", tmp_path / "r"))
        out = docker.stdout + docker.stderr
        assert docker.returncode == 0, out
        assert "code already there" not in out, "a runtime with the Docker SDK is another bundle: it is sent"
        results = results_of(tmp_path / "r", "rt-docker", "add")
        assert len(results) == 2 and all(r["outcome"] == "passed" for r in results.values()), results
        boxes = [json.loads(p.read_text()) for p in (tmp_path / "r" / "rt-docker" / "add").glob("*/sandbox.json")]
        assert [b["sandbox"] for b in boxes] == ["docker", "docker"], boxes
        assert "docker" in on_vm(vm, "cd /var/tmp/cloudeval/runs/rt-docker/site && python3 -c "
                                     "\"import zipfile; print(zipfile.ZipFile('runtime.zip').namelist())\"")
    finally:
        sweep = run(root, "--cleanup", *cloud_args(emulator, None, tmp_path / "r"))
        assert sweep.returncode == 0, sweep.stdout + sweep.stderr
    assert not run_instances(emulator, f"ce-pool-{pool}-"), "nothing left"
