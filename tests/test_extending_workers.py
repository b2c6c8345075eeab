"""The worker seam works for a provider and a transport that are not built in: a conftest.py
registers a toy provider (its "hosts" are folders on this machine) and a toy transport (local
``popen`` interpreters), and a tiny benchmark runs through the whole cloud path: plan, bring-up,
bundle shipping, runtime check, xdist wiring, results shipped back, teardown."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.usaco_factory import write_benchmark

CONFTEST = '''
import os
import sys
import threading

import pytest

from pytest_cloudeval.backends.base import CloudVm, Host, Provider, ProvisionResult, VmPlan, WorkerPlan
from pytest_cloudeval.backends.transport import Transport

LOG = os.environ["TOY_LOG"]


def log(line):
    with open(LOG, "a") as f:
        f.write(line + "\\n")


class ToyTransport(Transport):
    """Hosts are this machine: every slot is a local interpreter started in the host's folder."""

    name = "toy-popen"
    # Workers start from the shipped runtime in the host's folder, as on a real remote host, not
    # from the controller's sys.path.
    popen_runs_elsewhere = True

    def gateway(self, group, host, python, deadline, cancel):
        log(f"gateway {host.name}")
        gateway = group.makegateway(f"popen//python={sys.executable}")
        channel = gateway.remote_exec("channel.send(1)")
        channel.receive(timeout=30)
        return gateway

    def slot_spec(self, slot, python, chdir):
        return f"popen//python={python}//chdir={chdir}//toyslot={slot}"

    def point(self, slot, host):
        log(f"point {slot} {host.name}")

    def slot_of(self, spec):
        return getattr(spec, "toyslot", None)

    def answers(self, host):
        return True


class ToyProvider(Provider):
    name = "toy"
    transport = "toy-popen"

    def __init__(self):
        self.up = {}

    @classmethod
    def from_config(cls, config, settings):
        return cls()

    def remote_base(self):
        return os.environ["TOY_BASE"]

    def plan(self, run_id, workers, workers_per_vm, pool):
        count = -(-workers // workers_per_vm)
        vms = tuple(VmPlan(f"toy-{i}", min(workers_per_vm, workers - i * workers_per_vm)) for i in range(count))
        return WorkerPlan(cloud=self.name, run_id=run_id, workers=workers, workers_per_vm=workers_per_vm,
                          vms=vms, machine_type="local", zones=("here",), usd_per_vm_hour=0.0)

    def describe(self, plan):
        return [f"cloudeval toy plan: {len(plan.vms)} host(s)"]

    def provision(self, plan, boot, progress, cancel, on_up=None):
        log(f"provision access={sorted(boot.access)}")
        hosts = tuple(Host(name=vm.name, zone="here", address="localhost", slots=vm.slots) for vm in plan.vms)
        for host in hosts:
            self.up[host.name] = host
            if on_up is not None:
                on_up(host)
        return ProvisionResult(vms=hosts)

    def is_alive(self, vm):
        return vm.name in self.up

    def teardown(self, progress):
        log(f"teardown {len(self.up)}")
        count, self.up = len(self.up), {}
        return count

    def vm_seconds(self):
        return {name: 1.0 for name in self.up}

    @classmethod
    def cleanup(cls, config, settings):
        return "nothing to clean"

    @classmethod
    def status(cls, config, settings):
        return []


def pytest_configure(config):
    if hasattr(config, "workerinput"):
        import pytest_cloudeval

        log(f"worker imports {pytest_cloudeval.__file__}")


# The registration: one line each.
@pytest.hookimpl
def pytest_cloudeval_backends():
    return {"toy": lambda: ToyProvider}


@pytest.hookimpl
def pytest_cloudeval_transports():
    return {"toy-popen": lambda: ToyTransport}
'''


@pytest.mark.slow
def test_a_provider_and_transport_registered_from_a_conftest_run_a_benchmark(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\n")
    write_benchmark(pytester.path / "bench")
    log, base = tmp_path / "toy.log", tmp_path / "hosts"
    monkeypatch.setenv("TOY_LOG", str(log))
    monkeypatch.setenv("TOY_BASE", str(base))
    result = pytester.runpytest_subprocess("bench", "--agent", "oracle", "--cloud", "toy", "-n", "2",
                                           "--workers-per-vm", "2", "--run-id", "toy-run", "-p", "no:randomly")
    out = result.stdout.str() + result.stderr.str()
    assert result.ret == 0, out
    result.stdout.fnmatch_lines(["*cloudeval toy plan: 1 host(s)*", "*2 worker(s) on 1 VM(s) ready*",
                                 "*3 passed*"])
    lines = log.read_text().splitlines()
    assert lines[0] == "provision access=[]", "the transport asked for nothing to be installed"
    assert "gateway toy-0" in lines and {"point cloudeval-w0 toy-0", "point cloudeval-w1 toy-0"} <= set(lines)
    assert lines[-1] == "teardown 1"
    imports = [line.split(" ", 2)[2] for line in lines if line.startswith("worker imports ")]
    assert len(imports) == 2 and all(path.startswith(str(base / "runs" / "toy-run" / "site")) for path in imports), \
        imports
    # The code went through the bundle to the host's folder, and the tasks ran there.
    assert (base / "runs" / "toy-run" / "src" / "bench" / "benchmark.toml").is_file()
    assert len(list((base / "runs" / "toy-run" / "results" / "toy-run" / "bench").glob("*/result.json"))) == 3
    # ... and their folders were shipped back to the controller's results.
    stored = list((pytester.path / "results" / "toy-run" / "bench").glob("*/result.json"))
    assert len(stored) == 3
