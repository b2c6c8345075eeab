"""Unit tests of the GCE backend: the provisioning state machine against a typed fake of the
Compute API (parallel inserts, zone fallback, partial capacity, teardown), names and labels, the
xdist wiring (specs, worker argv, settings), bundles, prices and the lost-task bookkeeping.

No Docker, no network: the end-to-end path against the emulator is ``test_gce_e2e.py``.
"""

from __future__ import annotations

import io
import re
import subprocess
import tarfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from pytest_cloudeval.backends import bundle, pricing, wiring
from pytest_cloudeval.backends.base import BootConfig
from pytest_cloudeval.backends.gce import GceBackend
from pytest_cloudeval.backends.gce.compute import ComputeError, InstanceInfo, InstanceSpec, ZoneUnavailable
from pytest_cloudeval.backends.gce.config import GceConfig
from pytest_cloudeval.backends.gce.labels import instance_name, label_value, run_labels, vm_names
from pytest_cloudeval.backends.gce.provisioner import GceProvisioner
from pytest_cloudeval.backends.plugin import CloudXdistHooks
from pytest_cloudeval.backends.ssh import tx_spec
from pytest_cloudeval.backends.watchdog import startup_script
from pytest_cloudeval.errors import BackendError
from pytest_cloudeval.settings import Settings
from tests.waiting import eventually

NAME_RE = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
LABEL_RE = re.compile(r"^[a-z0-9_-]{0,63}$")


# -- a typed fake of the Compute API -------------------------------------------------------------
@dataclass
class Refusal:
    code: str
    count: int | None = None  # None: every insert


@dataclass
class FakeCompute:
    """``ComputeApi`` in memory. Inserts take ``insert_s``; zones can refuse; VMs can fail to start."""

    insert_s: float = 0.0
    refuse: dict[str, Refusal] = field(default_factory=dict)
    broken_names: set[str] = field(default_factory=set)  # created, then TERMINATED before RUNNING
    failing_deletes: set[str] = field(default_factory=set)
    instances: dict[tuple[str, str], InstanceInfo] = field(default_factory=dict)
    inserts: list[tuple[str, str]] = field(default_factory=list)
    deletes: list[tuple[str, str]] = field(default_factory=list)
    starts: list[str] = field(default_factory=list)
    active: int = 0
    max_active: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def insert(self, zone: str, spec: InstanceSpec, timeout: float) -> None:
        with self.lock:
            self.inserts.append((zone, spec.name))
            refusal = self.refuse.get(zone)
            if refusal is not None and refusal.count != 0:
                if refusal.count is not None:
                    refusal.count -= 1
                raise ZoneUnavailable(zone, refusal.code, f"{refusal.code}: no room in {zone}")
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            status = "TERMINATED" if spec.name in self.broken_names else "PROVISIONING"
            self.instances[(zone, spec.name)] = InstanceInfo(spec.name, zone, status, "", dict(spec.labels),
                                                             created_at=time.time())
        try:
            time.sleep(self.insert_s)
        finally:
            with self.lock:
                self.active -= 1
                info = self.instances.get((zone, spec.name))
                if info is not None and info.status == "PROVISIONING":
                    index = len(self.instances)
                    self.instances[(zone, spec.name)] = replace(info, status="RUNNING", address=f"10.0.0.{index}")

    def get(self, zone: str, name: str) -> InstanceInfo | None:
        with self.lock:
            return self.instances.get((zone, name))

    def delete(self, zone: str, name: str, timeout: float) -> bool:
        with self.lock:
            self.deletes.append((zone, name))
            if name in self.failing_deletes:
                raise ComputeError(f"delete {name}: permission denied")
            return self.instances.pop((zone, name), None) is not None

    def start(self, zone: str, name: str, timeout: float) -> None:
        with self.lock:
            self.starts.append(name)
            info = self.instances[(zone, name)]
            self.instances[(zone, name)] = replace(info, status="RUNNING", address=info.address or "10.0.1.1")

    def list(self, labels: Mapping[str, str]) -> list[InstanceInfo]:
        with self.lock:
            return [i for i in self.instances.values() if all(i.labels.get(k) == v for k, v in labels.items())]


def specs(names: list[str], labels: dict[str, str] | None = None) -> list[InstanceSpec]:
    return [InstanceSpec(name=n, machine_type="e2-small", image="img", disk_gb=10, spot=False,
                         labels=labels or {"cloudeval": "true"}, metadata={}) for n in names]


def provisioner(api: FakeCompute, zones: tuple[str, ...] = ("zone-a",), lines: list[str] | None = None
                ) -> GceProvisioner:
    out = lines if lines is not None else []
    return GceProvisioner(api, zones, progress=out.append, poll_s=0.01)


def gce_config(**changes: Any) -> GceConfig:
    base = GceConfig(project="emu-project", zones=("us-central1-a", "us-central1-b"), machine_type="e2-standard-2",
                     spot=False, image="img", disk_gb=20, api_endpoint=None, service_account=None,
                     ssh_user="cloudeval", idle_minutes=30.0, ready_timeout_s=30.0)
    return replace(base, **changes)


BOOT = BootConfig(startup_script="#!/bin/sh\n", access={"user": "cloudeval", "public_key": "ssh-ed25519 AAAA test"})


# -- the provisioning state machine ------------------------------------------------------------
def test_inserts_run_in_parallel() -> None:
    api = FakeCompute(insert_s=0.3)
    t0 = time.monotonic()
    outcome = provisioner(api).create_all(specs([f"vm-{i}" for i in range(8)]), ready_timeout=30)
    elapsed = time.monotonic() - t0
    assert sorted(i.name for i in outcome.up) == [f"vm-{i}" for i in range(8)]
    assert api.max_active == 8, "all eight inserts should be in flight together"
    assert elapsed < 8 * 0.3 / 2, f"8 inserts of 0.3 s took {elapsed:.2f} s: not parallel"
    assert all(i.status == "RUNNING" and i.address for i in outcome.up)


def test_zone_out_of_capacity_falls_back_to_the_next_zone() -> None:
    api = FakeCompute(refuse={"zone-a": Refusal("ZONE_RESOURCE_POOL_EXHAUSTED")})
    lines: list[str] = []
    prov = provisioner(api, ("zone-a", "zone-b"), lines)
    outcome = prov.create_all(specs(["vm-0", "vm-1", "vm-2"]), ready_timeout=30)
    assert sorted(i.name for i in outcome.up) == ["vm-0", "vm-1", "vm-2"]
    assert {i.zone for i in outcome.up} == {"zone-b"}
    assert not outcome.failed
    assert prov.exhausted == {"zone-a": "ZONE_RESOURCE_POOL_EXHAUSTED"}
    assert any("zone-a" in note for note in outcome.notes)
    assert sum("refused" in line and "trying zone-b" in line for line in lines) == 1
    # A refused zone is not asked again once known to be out of capacity.
    assert len([z for z, _ in api.inserts if z == "zone-a"]) < 3


def test_quota_exceeded_also_falls_back() -> None:
    api = FakeCompute(refuse={"zone-a": Refusal("QUOTA_EXCEEDED", count=1)})
    outcome = provisioner(api, ("zone-a", "zone-b")).create_all(specs(["vm-0"]), ready_timeout=30)
    assert [(i.name, i.zone) for i in outcome.up] == [("vm-0", "zone-b")]


def test_partial_capacity_returns_what_came_up() -> None:
    api = FakeCompute(refuse={"zone-a": Refusal("ZONE_RESOURCE_POOL_EXHAUSTED", count=1)})
    outcome = provisioner(api, ("zone-a",)).create_all(specs([f"vm-{i}" for i in range(4)]), ready_timeout=30)
    assert len(outcome.up) == 3
    assert len(outcome.failed) == 1 and "ZONE_RESOURCE_POOL_EXHAUSTED" in outcome.failed[0][1]


def test_backend_reports_partial_capacity_and_fails_when_nothing_came_up() -> None:
    api = FakeCompute(refuse={"us-central1-a": Refusal("ZONE_RESOURCE_POOL_EXHAUSTED", count=1)})
    backend = GceBackend(gce_config(zones=("us-central1-a",)), Settings(run_id="r1"), api=api)
    plan = backend.plan("r1", workers=3, workers_per_vm=1, pool=None)
    result = backend.provision(plan, BOOT, lambda line: None, threading.Event())
    assert len(result.vms) == 2 and len(result.failed) == 1
    assert {vm.ssh_user for vm in result.vms} == {"cloudeval"}

    api2 = FakeCompute(refuse={"us-central1-a": Refusal("QUOTA_EXCEEDED"), "us-central1-b": Refusal("QUOTA_EXCEEDED")})
    backend2 = GceBackend(gce_config(), Settings(run_id="r2"), api=api2)
    with pytest.raises(BackendError, match="QUOTA_EXCEEDED"):
        backend2.provision(backend2.plan("r2", 2, 1, None), BOOT, lambda line: None, threading.Event())
    assert backend2.teardown(lambda line: None) == 0 and not api2.instances


def test_teardown_after_a_failure_halfway_deletes_everything_asked_for() -> None:
    api = FakeCompute(broken_names={"ce-r3-1"})
    backend = GceBackend(gce_config(zones=("us-central1-a",)), Settings(run_id="r3"), api=api)
    result = backend.provision(backend.plan("r3", 3, 1, None), BOOT, lambda line: None, threading.Event())
    assert [vm.name for vm in result.vms] == ["ce-r3-0", "ce-r3-2"]
    assert result.failed and "TERMINATED" in result.failed[0][1]
    assert len(api.instances) == 3, "the broken VM exists until teardown"
    assert backend.teardown(lambda line: None) == 3
    assert not api.instances
    # Idempotent: a second teardown finds nothing (not-found counts as deleted), raises nothing.
    assert backend.teardown(lambda line: None) == 0


def test_cancel_during_creation_leaves_nothing() -> None:
    api = FakeCompute(insert_s=1.0)
    backend = GceBackend(gce_config(zones=("us-central1-a",)), Settings(run_id="r4"), api=api)
    cancel = threading.Event()
    plan = backend.plan("r4", 4, 1, None)
    worker = threading.Thread(target=lambda: _swallow(backend.provision, plan, BOOT, lambda line: None, cancel))
    worker.start()
    # Cancel only once an insert is really in flight (a cancel before any insert proves nothing).
    assert eventually(lambda: api.active > 0, timeout=10), "no insert was in flight to cancel"
    with api.lock:
        in_flight = {name for _, name in api.inserts if ("us-central1-a", name) in api.instances}
    cancel.set()
    backend.teardown(lambda line: None)
    worker.join(10)
    assert not worker.is_alive(), "provisioning did not stop after cancel"
    backend.teardown(lambda line: None)
    assert in_flight and in_flight <= {name for _, name in api.deletes}, "VMs being created are deleted too"
    assert not api.instances, f"left behind: {sorted(api.instances)}"


def _swallow(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except BackendError:
        pass


def test_delete_of_a_missing_vm_is_done_and_errors_are_collected() -> None:
    api = FakeCompute(failing_deletes={"b", "c"})
    prov = provisioner(api)
    prov.create_all(specs(["a", "b", "c", "d"]), ready_timeout=30)
    api.instances.pop(("zone-a", "d"))  # someone deleted it already
    deleted, errors = prov.delete_all(prov.asked_targets())
    assert deleted == ["a"]
    assert len(errors) == 2 and all("permission denied" in e for e in errors)
    assert {name for _, name in api.deletes} == {"a", "b", "c", "d"}, "every deletion is tried"


def test_teardown_raises_once_with_every_failure() -> None:
    api = FakeCompute(failing_deletes={"ce-r5-0", "ce-r5-1"})
    backend = GceBackend(gce_config(zones=("us-central1-a",)), Settings(run_id="r5"), api=api)
    backend.provision(backend.plan("r5", 3, 1, None), BOOT, lambda line: None, threading.Event())
    with pytest.raises(BackendError) as info:
        backend.teardown(lambda line: None)
    assert "ce-r5-0" in str(info.value) and "ce-r5-1" in str(info.value)
    assert ("us-central1-a", "ce-r5-2") not in api.instances


def test_warm_pool_is_reused_started_and_kept() -> None:
    api = FakeCompute()
    labels = run_labels("old-run", "warm")
    names = vm_names("r6", 3, "warm")
    api.instances[("us-central1-a", names[0])] = InstanceInfo(names[0], "us-central1-a", "RUNNING", "10.0.0.9", labels)
    api.instances[("us-central1-a", names[1])] = InstanceInfo(names[1], "us-central1-a", "TERMINATED", "10.0.0.8",
                                                              labels)
    backend = GceBackend(gce_config(zones=("us-central1-a",)), Settings(run_id="r6"), api=api)
    result = backend.provision(backend.plan("r6", 3, 1, "warm"), BOOT, lambda line: None, threading.Event())
    assert sorted(vm.name for vm in result.vms) == sorted(names)
    assert {vm.name for vm in result.vms if vm.reused} == {names[0], names[1]}
    assert api.starts == [names[1]]
    assert [n for _, n in api.inserts] == [names[2]], "only the missing pool VM is created"
    assert backend.teardown(lambda line: None) == 0
    assert len(api.instances) == 3, "a pool is kept after the run"


# -- names, labels, plan, prices ----------------------------------------------------------------
@pytest.mark.parametrize("text", ["20250101-120000-ab12", "My.Run_ID", "UPPER/with spaces", "x" * 200, "é-ü"])
def test_label_values_and_names_are_valid(text: str) -> None:
    value = label_value(text)
    assert LABEL_RE.match(value) and len(value) <= 63
    for name in vm_names(text, 3) + vm_names("r", 2, pool="pool_1"):
        assert NAME_RE.match(name), name
    assert label_value("x" * 200) != label_value("x" * 199 + "y"), "long values stay distinct"
    assert instance_name("ce", "1abc", 0).startswith("ce-")


def test_run_labels_carry_marker_run_and_pool() -> None:
    assert run_labels("R.1", None) == {"cloudeval": "true", "cloudeval-run": "r-1"}
    assert run_labels("R.1", "warm")["cloudeval-pool"] == "warm"


def test_plan_packs_workers_and_prices_them() -> None:
    backend = GceBackend(gce_config(), Settings(run_id="r7"), api=FakeCompute())
    plan = backend.plan("r7", workers=5, workers_per_vm=2, pool=None)
    assert [vm.slots for vm in plan.vms] == [2, 2, 1]
    assert plan.usd_per_vm_hour is not None and plan.usd_per_hour == pytest.approx(3 * plan.usd_per_vm_hour)
    text = "\n".join(backend.describe(plan))
    assert "3 VM(s) e2-standard-2" in text and "us-central1-b" in text and "$" in text
    spot = GceBackend(gce_config(spot=True), Settings(run_id="r7"), api=FakeCompute()).plan("r7", 5, 2, None)
    assert spot.usd_per_vm_hour is not None and spot.usd_per_vm_hour < plan.usd_per_vm_hour


def test_price_table() -> None:
    assert pricing.vm_hourly_usd("e2-standard-2") == pytest.approx(2 * 0.021811 + 8 * 0.002923)
    assert pricing.vm_hourly_usd("n1-standard-4") == pytest.approx(4 * 0.031611 + 15 * 0.004237)
    assert pricing.vm_hourly_usd("e2-small") == pricing.SHARED_CORE["e2-small"][0]
    assert pricing.vm_hourly_usd("n2-custom-4-8192") is not None
    assert pricing.vm_hourly_usd("zz9-mega-1") is None
    assert pricing.cost_usd(3600, 0.5) == pytest.approx(0.5)
    assert "unknown" in pricing.format_usd(None)


def test_instance_spec_metadata_and_minimal_access() -> None:
    backend = GceBackend(gce_config(), Settings(run_id="r8"), api=FakeCompute())
    [spec] = backend.instance_specs(backend.plan("r8", 1, 1, None), BOOT)
    assert spec.metadata["ssh-keys"] == "cloudeval:ssh-ed25519 AAAA test"
    assert spec.metadata["startup-script"] == BOOT.startup_script
    assert spec.service_account is None and spec.scopes == ()
    backend_sa = GceBackend(gce_config(service_account="sa@p.iam.gserviceaccount.com"),
                            Settings(run_id="r8", artifacts_url="gs://b/x"), api=FakeCompute())
    [spec_sa] = backend_sa.instance_specs(backend_sa.plan("r8", 1, 1, None), BOOT)
    assert spec_sa.service_account and any("devstorage" in s for s in spec_sa.scopes)


# -- xdist wiring -------------------------------------------------------------------------------
def layout(tmp_path: Path, invocation: str = "") -> wiring.RemoteLayout:
    root = tmp_path / "proj"
    (root / "bench").mkdir(parents=True, exist_ok=True)
    return wiring.RemoteLayout("run-1", root, root / invocation if invocation else root)


def test_remote_layout_and_tx_spec(tmp_path: Path) -> None:
    lay = layout(tmp_path, "bench")
    assert lay.root == "/var/tmp/cloudeval/runs/run-1/src"
    assert lay.invocation_dir == lay.root + "/bench"
    assert lay.remote_path(Path("x.toml")) == lay.root + "/bench/x.toml"
    site = "/var/tmp/cloudeval/runs/run-1/site"
    assert lay.python() == f"env PYTHONPATH={site}:{site}/runtime.zip python3"
    spec = tx_spec("cloudeval-w0", Path("/tmp/k/w0.conf"), lay.python(), lay.invocation_dir)
    assert spec.split("//") == ["ssh=cloudeval-w0", "ssh_config=/tmp/k/w0.conf",
                                f"python=env PYTHONPATH={site}:{site}/runtime.zip python3",
                                "chdir=/var/tmp/cloudeval/runs/run-1/src/bench"]
    with pytest.raises(BackendError):
        tx_spec("a", Path("/tmp/x"), "python3", "/x//y")
    with pytest.raises(BackendError, match="outside the rootdir"):
        lay.remote_path(tmp_path / "elsewhere")


def test_worker_argv_strips_controller_options_and_maps_paths(tmp_path: Path) -> None:
    lay = layout(tmp_path)
    argv = ["bench", "--agent", "oracle", "-n", "4", "--cloud=gce", "--gce-zone", "a-b1-c", "--gce-spot",
            "--keep-workers", "warm", "--junitxml", "/tmp/j.xml", "-k", "bench", "-pmyplugin", "-p", "no:cacheprovider",
            "--results-dir=/tmp/r", "-c", "bench/pytest.ini", "--max-worker-restart", "3", "-x", "--tx", "popen"]
    with_value = {"--agent", "-k", "-c", "-n", "--junitxml", "--gce-zone", "--keep-workers", "--tx"}
    out, warnings = wiring.worker_args(argv, ["bench"], lay, keep_plugin=lambda name: False,
                                       takes_value=with_value.__contains__)
    assert out == ["--agent", "oracle", "-k", "bench", "-p", "no:cacheprovider", "-c", lay.root + "/bench/pytest.ini",
                   "-x", lay.root + "/bench", f"--rootdir={lay.root}"]
    assert warnings == ["-p myplugin is not passed to the VM workers (it cannot be imported there)"]
    out2, _ = wiring.worker_args(["-n4", "bench::t1"], ["bench::t1"], lay)
    assert out2 == [lay.root + "/bench::t1", f"--rootdir={lay.root}"]


def test_option_arity_comes_from_pytests_parser(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfig()
    takes_value = wiring.option_arity(config)
    assert takes_value("-k") and takes_value("--agent") and takes_value("--gce-zone")
    assert not takes_value("-x") and not takes_value("--gce-spot") and not takes_value("--nonsense")


def test_worker_settings_point_at_the_vm(tmp_path: Path) -> None:
    lay = layout(tmp_path)
    data = wiring.worker_settings(Settings(run_id="run-1", results_dir="/home/me/results").to_dict(), lay,
                                  "/var/x/agent.py:run", "gce")
    again = Settings.from_dict(data)
    assert again.results_dir == lay.results_dir and again.rootdir == lay.root and again.ship_results
    assert again.agent == "/var/x/agent.py:run" and again.cloud == "gce"


def test_agent_code_reaches_the_vm(tmp_path: Path) -> None:
    lay = layout(tmp_path)
    (lay.local_rootdir / "agents").mkdir()
    (lay.local_rootdir / "agents" / "a.py").write_text("def run(input, **kw):\n    return {}\n")
    inside = wiring.plan_agent("agents/a.py:run", lay)
    assert inside.remote_spec == "agents/a.py:run" and inside.in_root == (lay.local_rootdir / "agents",)
    outside_dir = tmp_path / "mine"
    outside_dir.mkdir()
    (outside_dir / "b.py").write_text("def run(input, **kw):\n    return {}\n")
    outside = wiring.plan_agent(f"{outside_dir}/b.py:run", lay)
    assert outside.remote_spec == f"{lay.root}/_cloudeval_agent/mine/b.py:run"
    assert outside.extra == ((outside_dir, "_cloudeval_agent/mine"),)
    assert wiring.plan_agent("oracle", lay).remote_spec == "oracle"


def test_slots_and_relocation_targets() -> None:
    assert wiring.assign_slots(["a", "b"], 5, 2) == ["a", "a", "b", "b", "b"]
    assert wiring.least_loaded(["b", "c"], {"a": 3, "b": 2, "c": 1}) == "c"
    assert wiring.least_loaded([], {}) is None


# -- bundles ------------------------------------------------------------------------------------
def test_bundle_digest_depends_on_content_not_on_time(tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_text("one")
    first = bundle.make_bundle("src", [(f, "a.txt")])
    time.sleep(0.01)
    f.write_text("one")  # new mtime, same content
    assert bundle.make_bundle("src", [(f, "a.txt")]).digest == first.digest
    assert bundle.make_bundle("src", [(f, "a.txt")]).data == first.data, "the tar.gz itself is reproducible"
    f.chmod(0o755)
    assert bundle.make_bundle("src", [(f, "a.txt")]).digest != first.digest, "the executable bit counts"
    f.write_text("two")
    assert bundle.make_bundle("src", [(f, "a.txt")]).digest != first.digest
    assert bundle.make_bundle("src", [(f, "b.txt")]).digest != first.digest


def test_project_files_take_the_benchmark_ini_and_conftests(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    bench = root / "suite" / "bench"
    (bench / "__pycache__").mkdir(parents=True)
    (bench / "__pycache__" / "x.pyc").write_bytes(b"")
    (bench / "benchmark.toml").write_text("format='usaco'\n")
    (root / "suite" / "conftest.py").write_text("")
    (root / "conftest.py").write_text("")
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "unrelated.txt").write_text("no")
    (bench / "results").mkdir()
    (bench / "results" / "old.json").write_text("{}")
    files = bundle.project_files(root, [bench], exclude=[bench / "results"], inifile=root / "pytest.ini")
    names = sorted(arc for _, arc in files)
    assert names == ["conftest.py", "pytest.ini", "suite/bench/benchmark.toml", "suite/conftest.py"]
    with pytest.raises(BackendError, match="outside the rootdir"):
        bundle.project_files(root, [tmp_path])


def test_runtime_bundle_is_pure_python_with_entry_points() -> None:
    files = bundle.runtime_files()
    names = {arc for _, arc in files}
    for module in ("pytest/__init__.py", "_pytest/main.py", "xdist/remote.py", "execnet/__init__.py",
                   "pluggy/__init__.py", "pytest_cloudeval/plugin.py", "pytest_cloudeval/backends/plugin.py"):
        assert module in names, module
    assert not any(arc.endswith((".so", ".pyc")) for arc in names)
    entry_points = {arc: src for src, arc in files if arc.endswith("entry_points.txt")}
    cloudeval = next(src for arc, src in entry_points.items() if arc.startswith("pytest_cloudeval-"))
    assert isinstance(cloudeval, bytes) and b"pytest_cloudeval.plugin" in cloudeval
    assert any(arc.startswith("pytest_xdist-") for arc in entry_points)
    data = bundle.make_bundle("rt", files).data
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        assert "xdist/plugin.py" in tar.getnames()


# -- the VM's boot script -------------------------------------------------------------------------
def test_startup_script_is_valid_bash_with_the_idle_limit() -> None:
    script = startup_script(90, "cloudeval", want_docker=True)
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0
    assert "IDLE_S=90" in script and "WANT_DOCKER=1" in script and "poweroff" in script
    assert "CHECK_S=15" in script
    assert "CHECK_S=1\n" in startup_script(3, "u", want_docker=False)


# -- lost tasks -----------------------------------------------------------------------------------
class FakeSched:
    def __init__(self) -> None:
        self.pending: list[str] = []

    def mark_test_pending(self, item: str) -> None:
        self.pending.append(item)


@dataclass
class FakeReport:
    nodeid: str
    outcome: str = "failed"
    longrepr: str = "worker 'gw1' crashed while running 't'"
    when: str = "???"
    cloudeval_result: dict[str, Any] | None = None


def hooks(attempts: int) -> CloudXdistHooks:
    run: Any = type("Run", (), {"settings": Settings(run_id="r", attempts=attempts, agent="oracle"), "notes": [],
                                "say": staticmethod(lambda line: None)})()
    return CloudXdistHooks(run, session=None)


def test_a_lost_task_is_queued_again_until_attempts_run_out() -> None:
    h, sched = hooks(attempts=2), FakeSched()
    first = FakeReport("b/benchmark.toml::t")
    h.pytest_handlecrashitem(crashitem=first.nodeid, report=first, sched=sched)
    assert first.outcome == "rerun" and sched.pending == [first.nodeid]
    assert h.attempts[first.nodeid] == 2
    assert h.pytest_report_teststatus(first) == ("rerun", "R", ("RERUN", {"yellow": True}))
    second = FakeReport(first.nodeid)
    h.pytest_handlecrashitem(crashitem=second.nodeid, report=second, sched=sched)
    assert second.outcome == "failed" and sched.pending == [first.nodeid], "no endless re-queue"
    assert second.when == "setup", "a lost task is an error, not a failure"
    assert "--attempts 2" in second.longrepr
    assert second.cloudeval_result is not None and second.cloudeval_result["verdict"] == "LOST"


def test_no_requeue_with_a_scheduler_that_cannot() -> None:
    class EachSched:
        def mark_test_pending(self, item: str) -> None:
            raise NotImplementedError

    h, report = hooks(attempts=3), FakeReport("x::t")
    h.pytest_handlecrashitem(crashitem="x::t", report=report, sched=EachSched())
    assert report.outcome == "failed"
    # Not left as xdist made it: not queued again, and turned into an error that carries a result.
    assert "x::t" not in h.attempts and h.reruns == 0
    assert report.when == "setup" and "--attempts 3" in report.longrepr
    assert report.cloudeval_result is not None and report.cloudeval_result["verdict"] == "LOST"
    assert report.cloudeval_result["attempt"] == 1


# -- options, through pytest itself (nothing is provisioned: no endpoint is ever contacted) ----------
def test_bad_option_values_are_usage_errors_naming_their_source(pytester: pytest.Pytester,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    result = pytester.runpytest_subprocess("--cloud=gce", "-n", "2", "--gce-project=emu-project", "--gce-zone=nowhere")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*option --gce-zone: invalid value 'nowhere'*zone name like us-central1-a*"])
    monkeypatch.setenv("GCP_ZONE", "us-central1-a,us-central1-a")
    result = pytester.runpytest_subprocess("--cloud=gce", "-n", "2", "--gce-project=emu-project")
    result.stderr.fnmatch_lines(["*environment variable GCP_ZONE: invalid value*listed twice*"])
    monkeypatch.delenv("GCP_ZONE")
    result = pytester.runpytest_subprocess("--cloud=gce", "--gce-project=emu-project")
    result.stderr.fnmatch_lines(["*--cloud needs the number of workers: add -n N*"])
    result = pytester.runpytest_subprocess("--cloud=gce", "-n", "1")
    result.stderr.fnmatch_lines(["*--cloud=gce needs a project*GCP_PROJECT_ID*"])
    result = pytester.runpytest_subprocess("--cloud=nimbus", "-n", "1")
    result.stderr.fnmatch_lines(["*--cloud 'nimbus': unknown cloud (known: gce, gke)*"])
    pytester.makeini("[pytest]\ngce_disk_gb = 5\n")
    result = pytester.runpytest_subprocess("--cloud=gce", "-n", "1", "--gce-project=emu-project")
    result.stderr.fnmatch_lines(["*ini option gce_disk_gb: invalid value '5'*"])


def test_dry_run_prints_the_plan_and_provisions_nothing(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--cloud=gce", "--cloud-dry-run", "-n", "5", "--workers-per-vm", "2",
                                           "--gce-spot", "--gce-api-endpoint=http://127.0.0.1:9")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(["*3 Spot VM(s) e2-standard-2 in us-central1-a, 2 worker(s) per VM, 5 worker(s)*",
                                 "*estimate: $*/VM-hour*", "*dry run, nothing was provisioned*"])


def test_collect_only_and_help_provision_nothing(pytester: pytest.Pytester) -> None:
    # Port 9 (discard) refuses connections: any attempt to provision would fail the run.
    args = ("--cloud=gce", "-n", "2", "--gce-project=emu-project", "--gce-api-endpoint=http://127.0.0.1:9")
    assert pytester.runpytest_subprocess(*args, "--help").ret == 0
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess(*args, "--collect-only", "-q")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["test_x.py::test_x"])
    assert "cloudeval gce plan" not in result.stdout.str()
