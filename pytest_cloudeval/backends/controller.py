"""The controller side of a cloud run, the same for every provider and transport: bring hosts
up, make them ready (reachable, code, runtime), point xdist's worker slots at them, move slots off
lost hosts, account for cost, tear down.

The provider (``base.Provider``) only creates and deletes hosts; the transport
(``transport.Transport``) reaches them and owns the xdist specs; this module owns the bundles and
the slots, and never asks which transport it drives.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from ..errors import BackendError
from ..settings import Settings
from .base import BootConfig, Host, Provider, WorkerHandle, WorkerPlan
from .bundle import (
    Bundle,
    ShipReport,
    check_runtime,
    check_runtime_in_place,
    make_bundle,
    project_files,
    runtime_bundle,
    ship,
)
from .pricing import PRICE_SOURCE, cost_usd, format_usd
from .runtime_zip import install_importer
from .transport import Transport
from .watchdog import startup_script
from .wiring import (
    AgentShipping,
    RemoteLayout,
    least_loaded,
    plan_agent,
    positional_paths,
    slot_aliases,
)

DOCKER_WAIT_S = 600.0
SENDING_AT_ONCE = 4
"""Bundles being sent at once (each costs two transient copies on the controller; see ``ship``)."""


def runtime_needs(sandbox: str) -> tuple[tuple[str, ...], bool]:
    """What the workers' runtime adds for ``sandbox``: extra distributions (with their dependencies)
    and whether the Docker SDK goes. Workers that make ``--sandbox=k8s`` pods need the Kubernetes
    client (its image helpers use the Docker SDK too); only workers whose tasks run as local
    processes can do without the Docker SDK (a sandbox from a plugin keeps it: it may use it)."""
    return (("kubernetes",) if sandbox == "k8s" else ()), sandbox != "local"


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pytest-cloudeval"


class Once:
    """Runs a check on the first VM that asks while the others wait for its verdict: every VM gets
    the same bundle and image, so one import check per run is enough (it costs a second of CPU)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._state = "todo"
        self._error = ""

    def run(self, check: Callable[[], None], timeout: float = 300.0) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._state != "running", timeout)
            if self._state == "ok":
                return
            if self._state == "failed":
                raise BackendError(self._error)
            self._state = "running"
        try:
            check()
        except BackendError as e:
            self._settle("failed", str(e))
            raise
        except BaseException:
            self._settle("todo", "")  # this VM broke, not the runtime: the next VM checks
            raise
        self._settle("ok", "")

    def _settle(self, state: str, error: str) -> None:
        with self._cond:
            self._state, self._error = state, error
            self._cond.notify_all()


class CloudRun:
    """One run's VMs and worker slots. Created in ``pytest_configure``; provisions only when xdist
    sets up its nodes (so ``--help``, ``--collect-only`` and ``--cloud-dry-run`` create nothing)."""

    def __init__(self, config: pytest.Config, settings: Settings, backend: Provider, workers: int,
                 workers_per_vm: int, pool: str | None, say: Callable[[str], None],
                 transport_cls: type[Transport]) -> None:
        self.config = config
        self.settings = settings
        self.backend = backend
        self.workers = workers
        self.say = say
        self.plan: WorkerPlan = backend.plan(settings.run_id, workers, workers_per_vm, pool)
        self.layout = RemoteLayout(settings.run_id, Path(config.rootpath), Path(config.invocation_params.dir),
                                   base=backend.remote_base())
        self.agent: AgentShipping = plan_agent(settings.agent, self.layout)
        self.private = Path(tempfile.mkdtemp(prefix=f"cloudeval-{settings.run_id}-"))
        key_dir = self._pool_dir() if pool else self.private
        self.transport = transport_cls(self.private, key_dir, f"cloudeval-{pool or settings.run_id}")
        self.transport.configure(backend.transport_options())
        self.aliases = slot_aliases(workers)
        self.python = self.layout.python(self.agent.pythonpath)
        self.cancel = threading.Event()
        self._lock = threading.Lock()
        self.boot: BootConfig | None = None
        self.vms: dict[str, Host] = {}
        self.slots: dict[str, WorkerHandle] = {}
        self.dead: dict[str, str] = {}
        self.ship_reports: dict[str, ShipReport] = {}
        self.notes: list[str] = []
        self.ready_seconds: float | None = None
        self.teardown_seconds: float | None = None
        self.torn_down = False
        self._runtime_check = Once()
        self._sending = threading.BoundedSemaphore(SENDING_AT_ONCE)
        self._bundles: Future[list[Bundle]] | None = None
        self._replace_lock = threading.Lock()
        self.replacements: dict[str, Host | None] = {}
        """Lost host name -> the host that replaced it (None: the provider made none)."""
        self.handed_over_count = 0
        """Workers started on the interpreter their host's code was shipped over."""
        self._handover: dict[str, tuple[Any, Any]] = {}
        """Host name -> (execnet group, gateway) the code was shipped over, kept for xdist to adopt
        as that host's first worker (``Transport.hands_over_gateways``)."""

    # -- configure-time wiring ----------------------------------------------------------------------
    def tx_specs(self) -> list[str]:
        return [self.transport.slot_spec(alias, self.python, self.layout.invocation_dir) for alias in self.aliases]

    def _pool_dir(self) -> Path:
        project = self.plan.details.get("project", "default")
        return cache_dir() / "pools" / f"{self.plan.cloud}-{project}-{self.plan.pool}"

    # -- bring-up -------------------------------------------------------------------------------------
    def bring_up(self) -> int:
        """Provision, make every host ready, point the slots at them; return the slot count.

        Raises: BackendError when no VM could be made ready (what was created is deleted by teardown).
        """
        t0 = time.monotonic()
        for line in self.backend.describe(self.plan):
            self.say(line)
        self.transport.prepare()
        want_docker = self.settings.sandbox == "docker"
        self.boot = BootConfig(startup_script=startup_script(self.plan.idle_seconds, self.plan.login_user,
                                                             want_docker, base=self.layout.base),
                               access=dict(self.transport.access(self.plan.login_user)))
        deadline = time.monotonic() + self.plan.ready_timeout_s
        # Each VM is made ready (SSH, code, runtime) as soon as it runs, while others still boot.
        builder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cloudeval-bundle")
        readying = ThreadPoolExecutor(max_workers=min(len(self.plan.vms), 32), thread_name_prefix="cloudeval-ready")
        futures: dict[str, tuple[Host, Future[ShipReport]]] = {}

        def on_up(vm: Host) -> None:
            with self._lock:
                if vm.name not in futures:
                    futures[vm.name] = (vm, readying.submit(self._ready_one, vm, bundles_future, deadline, True))

        try:
            bundles_future = builder.submit(self.build_bundles)
            self._bundles = bundles_future
            result = self.backend.provision(self.plan, self.boot, self.say, self.cancel, on_up=on_up)
            for note in result.notes:
                self.say(f"cloudeval {self.plan.cloud}: {note}")
            for name, why in result.failed:
                self.notes.append(f"{self.plan.unit} {name} did not come up: {why}")
                self.say(f"cloudeval {self.plan.cloud}: {self.plan.unit} {name} did not come up: {why}")
            self.say(f"cloudeval {self.plan.cloud}: {len(result.vms)}/{len(self.plan.vms)} {self.plan.unit}(s) running after "
                     f"{time.monotonic() - t0:.1f} s")
            for vm in result.vms:
                on_up(vm)  # a backend that does not call on_up itself
            ready = self._collect_ready(futures)
        except BaseException:
            self.cancel.set()
            self.drop_handovers()
            raise
        finally:
            builder.shutdown(wait=False, cancel_futures=True)
            readying.shutdown(wait=not self.cancel.is_set(), cancel_futures=True)
        if not ready:
            raise BackendError(f"no {self.plan.unit} became ready ({'; '.join(self.notes) or 'no reason given'})")
        count = self._assign(ready)
        self.ready_seconds = time.monotonic() - t0
        partial = ""
        if count < self.workers:
            partial = f" (partial capacity: {count} of the {self.workers} workers asked for)"
            self.notes.append(f"partial capacity: ran {count} of {self.workers} workers on {len(ready)} of "
                              f"{len(self.plan.vms)} {self.plan.unit}s")
        self.say(f"cloudeval {self.plan.cloud}: {count} worker(s) on {len(ready)} {self.plan.unit}(s) ready in "
                 f"{self.ready_seconds:.1f} s{partial}")
        return count

    def build_bundles(self) -> list[Bundle]:
        config = self.config
        paths = positional_paths([str(a) for a in config.args], Path(config.invocation_params.dir))
        # Never shipped: results, pytest's temporary folder, and the secrets file (secrets reach the
        # workers in memory, with the settings; a file on the VM's disk would outlive the run).
        exclude = [Path(self.settings.results_dir)]
        basetemp = config.option.basetemp
        if basetemp:
            exclude.append(Path(basetemp))
        if self.settings.secrets_file:
            exclude.append(Path(self.settings.secrets_file))
        files = project_files(Path(config.rootpath), paths, exclude=exclude, inifile=config.inipath,
                              extra=self.agent.extra, agent_paths=self.agent.in_root)
        extra, docker = runtime_needs(self.settings.sandbox)
        return [runtime_bundle(cache_dir=cache_dir() / "bundles", extra_roots=extra, docker=docker),
                make_bundle("src", files)]

    def _collect_ready(self, futures: dict[str, tuple[Host, Future[ShipReport]]]) -> list[Host]:
        ready: list[Host] = []
        for name, (vm, future) in sorted(futures.items()):
            try:
                self.ship_reports[name] = future.result()
            except Exception as e:  # noqa: BLE001 - one VM's failure is partial capacity
                self.notes.append(f"{self.plan.unit} {name} is not usable: {e}")
                self.say(f"cloudeval {self.plan.cloud}: {self.plan.unit} {name} is not usable: {e}")
                self.backend.forget(vm)
                continue
            ready.append(vm)
        return ready

    def _ready_one(self, vm: Host, bundles_future: Future[list[Bundle]], deadline: float,
                   hand_over: bool = False) -> ShipReport:
        """Make ``vm`` ready: reachable, code shipped, runtime checked (once per run in a separate
        interpreter; with a hand-over, on each host in the interpreter kept). With ``hand_over``
        (and a transport that can), the gateway used is the interpreter a worker needs, kept for
        ``handed_over``."""
        import execnet

        t0 = time.monotonic()
        self.transport.wait_ready(vm, deadline, self.cancel)
        hand_over = hand_over and self.transport.hands_over_gateways
        group = execnet.Group()
        if hand_over:
            group.set_execmodel("thread", "main_thread_only")  # what xdist's workers run with
        kept = False
        try:
            gateway = self.transport.gateway(group, vm, self.python if hand_over else "python3", deadline,
                                             self.cancel)
            t_reach = time.monotonic()
            bundles = bundles_future.result()
            t_bundle = time.monotonic()
            report = ship(gateway, self.layout.base, bundles, self.layout.run_dir,
                          {"site": bundles[0].name, "src": bundles[1].name},
                          want_docker=self.settings.sandbox == "docker",
                          wait_docker_s=max(5.0, min(DOCKER_WAIT_S, deadline - time.monotonic())),
                          sending=self._sending)
            t_ship = time.monotonic()
            if hand_over:
                # This interpreter becomes the host's first worker: install the runtime's importer
                # and import the runtime here, where the worker needs it (no second interpreter).
                install_importer(gateway)
                check_runtime_in_place(gateway)
            else:
                self._runtime_check.run(lambda: check_runtime(gateway, self.layout.site))
            if hand_over and not self.cancel.is_set():
                with self._lock:
                    self._handover[vm.name] = (group, gateway)
                kept = True
        finally:
            if not kept:
                group.terminate(timeout=5)
        sizes = {b.name: len(b.data) / 2**20 for b in bundles}
        sent = (f"shipped {' + '.join(f'{sizes[name]:.1f} MB' for name in report.sent)}" if report.sent
                else "code already there")
        self.say(f"cloudeval {self.plan.cloud}: {vm.name} ready (python {'.'.join(map(str, report.python))}, {sent}; "
                 f"{self.transport.name} {t_reach - t0:.1f} s, ship {t_ship - t_bundle:.1f} s, check {time.monotonic() - t_ship:.1f} s)")
        return report

    def handed_over(self, group: Any, spec: Any) -> Any | None:
        """The gateway the code was shipped over to the host of ``spec``'s slot, adopted into
        ``group`` as ``spec``'s (once per host: its other slots, and restarts, get fresh ones), or
        None."""
        from .gateways import adopt

        vm = self.vm_of(self.transport.slot_of(spec))
        with self._lock:
            kept = self._handover.pop(vm.name, None) if vm is not None else None
        if kept is None:
            return None
        own, gateway = kept
        try:
            adopted = adopt(gateway, group, spec)
        except Exception:  # noqa: BLE001 - gone or broken since: the caller opens a fresh one
            own.terminate(timeout=5)
            return None
        with self._lock:
            self.handed_over_count += 1
        return adopted

    def prepare_gateway(self, gateway: Any, timeout: float = 60.0) -> None:
        """Before a worker's gateway runs xdist's worker code: ``runtime_zip.install_importer``."""
        from .runtime_zip import install_importer

        install_importer(gateway, timeout)

    def drop_handovers(self) -> None:
        """Close the kept gateways nobody adopted (hosts without a slot, runs that stop early)."""
        with self._lock:
            kept, self._handover = list(self._handover.values()), {}
        for group, _gateway in kept:
            threading.Thread(target=group.terminate, kwargs={"timeout": 5}, daemon=True).start()

    def _assign(self, ready: list[Host]) -> int:
        """Give each slot a host (in plan order, up to each host's slots) and point it there."""
        order = {vm.name: i for i, vm in enumerate(self.plan.vms)}
        ready = sorted(ready, key=lambda vm: order.get(vm.name, len(order)))
        places = [vm for vm in ready for _ in range(vm.slots)]
        count = min(self.workers, len(places))
        self.aliases = self.aliases[:count]
        for slot, (alias, vm) in enumerate(zip(self.aliases, places, strict=False)):
            self.slots[alias] = WorkerHandle(alias=alias, vm=vm, slot=slot)
            self.transport.point(alias, vm)
        self.vms = {vm.name: vm for vm in ready}
        return count

    # -- lost VMs -------------------------------------------------------------------------------------
    def vm_of(self, alias: str | None) -> Host | None:
        handle = self.slots.get(alias or "")
        return handle.vm if handle else None

    def slot_of(self, spec: Any) -> str | None:
        """The slot a worker's execnet spec belongs to."""
        return self.transport.slot_of(spec)

    def is_alive(self, vm: Host) -> bool:
        if vm.name in self.dead:
            return False
        return self.transport.answers(vm) and self.backend.is_alive(vm)

    def relocate(self, alias: str) -> Host | None:
        """Called when the worker of ``alias`` died: if its VM is gone, point the alias at a live
        VM (the least loaded) so xdist's restart lands there. Returns the VM the alias now names,
        or None when no VM is left (restarts must stop)."""
        vm = self.vm_of(alias)
        if vm is None:
            return None
        if self.is_alive(vm):
            return vm
        with self._lock:
            if vm.name not in self.dead:
                self.dead[vm.name] = time.strftime("%H:%M:%S")
                self.notes.append(f"{self.plan.unit} {vm.name} was lost mid-run (preempted or crashed)")
                self.say(f"\ncloudeval {self.plan.cloud}: {self.plan.unit} {vm.name} is gone (preempted or crashed)")
                threading.Thread(target=self.backend.forget, args=(vm,), daemon=True).start()
            load: dict[str, int] = {}
            for handle in self.slots.values():
                load[handle.vm.name] = load.get(handle.vm.name, 0) + 1
            live = [name for name in self.vms if name not in self.dead]
        target = self._replacement(vm)
        if target is None:
            target_name = least_loaded((n for n in live if self.is_alive(self.vms[n])), load)
            if target_name is None:
                return None
            target = self.vms[target_name]
        with self._lock:
            self.slots[alias] = WorkerHandle(alias=alias, vm=target, slot=self.slots[alias].slot)
            self.transport.point(alias, target)
        self.say(f"cloudeval {self.plan.cloud}: worker slot {alias} moves to {target.name}")
        return target

    def _replacement(self, lost: Host) -> Host | None:
        """A ready host in place of ``lost`` from the provider's ``replace`` (pods are cheap; VMs get
        none by default), made once per lost host: its other slots follow to the same one. At most
        one replacement per planned host per run, so hosts that die at once do not loop."""
        with self._replace_lock:
            if lost.name in self.replacements:
                return self.replacements[lost.name]
            made = sum(1 for host in self.replacements.values() if host is not None)
            new: Host | None = None
            if self.boot is not None and self._bundles is not None and not self.cancel.is_set() \
                    and made < max(2, len(self.plan.vms)):
                try:
                    new = self.backend.replace(lost, self.boot, self.say)
                except BackendError as e:
                    self.say(f"cloudeval {self.plan.cloud}: no replacement for {lost.name}: {e}")
                if new is not None:
                    try:
                        deadline = time.monotonic() + self.plan.ready_timeout_s
                        self.ship_reports[new.name] = self._ready_one(new, self._bundles, deadline)
                    except Exception as e:  # noqa: BLE001 - the slots then move to live hosts
                        self.say(f"cloudeval {self.plan.cloud}: replacement {new.name} is not usable: {e}")
                        self.notes.append(f"replacement {new.name} for {lost.name} was not usable: {e}")
                        self.backend.forget(new)
                        new = None
            self.replacements[lost.name] = new
            if new is not None:
                with self._lock:
                    self.vms[new.name] = new
                self.notes.append(f"{self.plan.unit} {new.name} replaced the lost {lost.name}")
            return new

    # -- after the run --------------------------------------------------------------------------------
    def cost_summary(self) -> dict[str, Any]:
        seconds = self.backend.vm_seconds()
        total = sum(seconds.values())
        cost = cost_usd(total, self.plan.usd_per_vm_hour)
        return {
            "cloud": self.plan.cloud,
            "machine_type": self.plan.machine_type,
            "spot": self.plan.spot,
            "zones": list(self.plan.zones),
            "pool": self.plan.pool,
            "workers": len(self.slots),
            "vms": sorted(self.vms),
            "lost_vms": sorted(self.dead),
            "ready_seconds": None if self.ready_seconds is None else round(self.ready_seconds, 2),
            "vm_seconds": round(total, 1),
            "vm_seconds_by_vm": {k: round(v, 1) for k, v in sorted(seconds.items())},
            "usd_per_vm_hour": self.plan.usd_per_vm_hour,
            "estimated_cost_usd": None if cost is None else round(cost, 6),
            "price_source": self.plan.price_source or PRICE_SOURCE,
            "unit": self.plan.unit,
            "notes": list(self.notes),
        }

    def cost_line(self) -> str:
        data = self.cost_summary()
        kept = f"; pool {self.plan.pool!r} kept" if self.plan.pool else ""
        unit = self.plan.unit
        return (f"cloud {self.plan.cloud}: {len(data['vm_seconds_by_vm'])} {unit}(s) {self.plan.machine_type}"
                f"{' spot' if self.plan.spot else ''}, {data['vm_seconds']:.0f} {unit}-seconds so far, estimated "
                f"{format_usd(data['estimated_cost_usd'])}{kept}")

    def teardown(self) -> None:
        """Delete the run's VMs (keeping a pool's), remove the private folder. Idempotent."""
        if self.torn_down:
            return
        self.torn_down = True
        self.cancel.set()
        self.drop_handovers()
        t0 = time.monotonic()
        try:
            deleted = self.backend.teardown(self.say)
            self.teardown_seconds = time.monotonic() - t0
            unit = self.plan.unit
            kept = (f", kept {len(self.vms) - len(self.dead)} pool {unit}(s) {self.plan.pool!r}"
                    if self.plan.pool else "")
            if deleted or kept:
                self.say(f"cloudeval {self.plan.cloud}: deleted {deleted} {unit}(s) in {self.teardown_seconds:.1f} s"
                         f"{kept}")
        except BackendError as e:
            self.say(f"cloudeval {self.plan.cloud}: TEARDOWN FAILED: {e}")
            print(f"cloudeval {self.plan.cloud}: TEARDOWN FAILED: {e}", file=sys.stderr)
        finally:
            shutil.rmtree(self.private, ignore_errors=True)
