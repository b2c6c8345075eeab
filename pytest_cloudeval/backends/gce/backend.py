"""``GceBackend``: the provider verbs for Google Compute Engine (plan, provision, teardown, sweep); its
VMs are reached by the SSH transport."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ...errors import BackendError
from ..base import BootConfig, CloudVm, Host, Progress, Provider, ProvisionResult, VmPlan, WorkerPlan
from ..pricing import PRICE_SOURCE, format_usd, vm_hourly_usd
from .compute import ComputeApi, GoogleCompute, InstanceInfo, InstanceSpec
from .config import GceConfig
from .labels import MARKER_LABEL, MARKER_VALUE, POOL_LABEL, RUN_LABEL, label_value, run_labels, vm_names
from .provisioner import GceProvisioner

if TYPE_CHECKING:
    import pytest

    from ...settings import Settings

STORAGE_SCOPE = "https://www.googleapis.com/auth/devstorage.read_write"
LOGGING_SCOPE = "https://www.googleapis.com/auth/logging.write"


class GceBackend(Provider):
    """Workers on GCE VMs. ``api`` may be any ``ComputeApi`` (tests pass fakes)."""

    name = "gce"

    def __init__(self, cfg: GceConfig, settings: Settings, api: ComputeApi | None = None) -> None:
        self.cfg = cfg
        self.settings = settings
        self._api = api
        self._provisioner: GceProvisioner | None = None
        self._keep: set[str] = set()
        self._up: dict[str, Host] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config: pytest.Config, settings: Settings) -> GceBackend:
        return cls(GceConfig.from_config(config), settings)

    def preflight(self) -> None:
        self.cfg.require_project()

    @property
    def api(self) -> ComputeApi:
        if self._api is None:
            self._api = GoogleCompute(self.cfg.require_project(), self.cfg.api_endpoint)
        return self._api

    def provisioner(self, progress: Progress) -> GceProvisioner:
        if self._provisioner is None:
            self._provisioner = GceProvisioner(self.api, self.cfg.zones, progress=progress,
                                               op_timeout=max(60.0, self.cfg.ready_timeout_s))
        return self._provisioner

    # -- plan -------------------------------------------------------------------------------------
    def plan(self, run_id: str, workers: int, workers_per_vm: int, pool: str | None) -> WorkerPlan:
        count = -(-workers // workers_per_vm)
        names = vm_names(run_id, count, pool)
        vms = tuple(VmPlan(name, min(workers_per_vm, workers - i * workers_per_vm)) for i, name in enumerate(names))
        price = vm_hourly_usd(self.cfg.machine_type, self.cfg.spot, self.cfg.disk_gb)
        details = {"image": self.cfg.image, "disk": f"{self.cfg.disk_gb} GB",
                   "project": self.cfg.project or "(unset)", "ssh user": self.cfg.ssh_user,
                   "idle power-off": f"{self.cfg.idle_minutes:g} min"}
        if self.cfg.api_endpoint:
            details["endpoint"] = self.cfg.api_endpoint
        return WorkerPlan(cloud=self.name, run_id=run_id, workers=workers, workers_per_vm=workers_per_vm, vms=vms,
                          machine_type=self.cfg.machine_type, zones=self.cfg.zones, spot=self.cfg.spot, pool=pool,
                          usd_per_vm_hour=price, details=details, login_user=self.cfg.ssh_user,
                          idle_seconds=self.cfg.idle_minutes * 60.0, ready_timeout_s=self.cfg.ready_timeout_s)

    def describe(self, plan: WorkerPlan) -> list[str]:
        zones = plan.zones[0] + (f" (then {', '.join(plan.zones[1:])})" if len(plan.zones) > 1 else "")
        kind = "Spot " if plan.spot else ""
        pool = f", warm pool {plan.pool!r} (kept after the run)" if plan.pool else ""
        lines = [f"cloudeval gce plan: {len(plan.vms)} {kind}VM(s) {plan.machine_type} in {zones}, "
                 f"{plan.workers_per_vm} worker(s) per VM, {plan.workers} worker(s){pool}",
                 "cloudeval gce plan: " + ", ".join(f"{k} {v}" for k, v in plan.details.items())]
        if plan.usd_per_vm_hour is None:
            lines.append(f"cloudeval gce estimate: {format_usd(None)}")
        else:
            lines.append(f"cloudeval gce estimate: {format_usd(plan.usd_per_vm_hour)}/VM-hour, "
                         f"{format_usd(plan.usd_per_hour)}/hour for all {len(plan.vms)} VM(s) ({PRICE_SOURCE})")
        return lines

    # -- provision ----------------------------------------------------------------------------------
    def instance_specs(self, plan: WorkerPlan, boot: BootConfig) -> list[InstanceSpec]:
        labels = run_labels(plan.run_id, plan.pool)
        metadata = {"startup-script": boot.startup_script}
        if set(boot.access) - {"user", "public_key"}:
            raise BackendError(f"GCE VMs can only be given an SSH login, not {sorted(boot.access)}")
        if boot.access:
            metadata["ssh-keys"] = f"{boot.access['user']}:{boot.access['public_key']}"
        scopes: tuple[str, ...] = ()
        if self.cfg.service_account:
            scopes = (LOGGING_SCOPE, STORAGE_SCOPE) if self.settings.artifacts_url else (LOGGING_SCOPE,)
        return [InstanceSpec(name=vm.name, machine_type=plan.machine_type, image=self.cfg.image,
                             disk_gb=self.cfg.disk_gb, spot=plan.spot, labels=labels, metadata=metadata,
                             service_account=self.cfg.service_account, scopes=scopes) for vm in plan.vms]

    def provision(self, plan: WorkerPlan, boot: BootConfig, progress: Progress, cancel: threading.Event,
                  on_up: Callable[[Host], None] | None = None) -> ProvisionResult:
        t0 = time.monotonic()
        prov = self.provisioner(progress)
        prov.cancel = cancel
        specs = self.instance_specs(plan, boot)
        slots = {vm.name: vm.slots for vm in plan.vms}

        def handle(info: InstanceInfo, reused: bool) -> Host:
            return Host(name=info.name, zone=info.zone, address=info.address, user=boot.access.get("user", ""),
                            slots=slots.get(info.name, 1), created_at=info.created_at, reused=reused,
                            labels=dict(info.labels))

        if on_up is not None:
            prov.on_up = lambda info, reused: on_up(handle(info, reused))
        if plan.pool:
            pool_labels = {MARKER_LABEL: MARKER_VALUE, POOL_LABEL: label_value(plan.pool)}
            outcome = prov.reuse_or_create(specs, pool_labels, self.cfg.ready_timeout_s)
        else:
            outcome = prov.create_all(specs, self.cfg.ready_timeout_s)
        handles = [handle(info, info.name in outcome.reused) for info in sorted(outcome.up, key=lambda i: i.name)]
        with self._lock:
            self._up.update({h.name: h for h in handles})
            if plan.pool:
                self._keep.update(h.name for h in handles)
        if not handles:
            reasons = "; ".join(f"{name}: {why}" for name, why in outcome.failed) or "no reason given"
            raise BackendError(f"no GCE VM came up ({reasons})")
        return ProvisionResult(vms=tuple(handles), failed=tuple(outcome.failed),
                               seconds=time.monotonic() - t0, notes=tuple(outcome.notes))

    def is_alive(self, vm: Host) -> bool:
        try:
            info = self.api.get(vm.zone, vm.name)
        except BackendError:
            return False
        return info is not None and info.status == "RUNNING"

    def forget(self, vm: Host) -> None:
        with self._lock:
            self._keep.discard(vm.name)
            self._up.pop(vm.name, None)
        if self._provisioner is not None and vm.name in self._provisioner.asked:
            self._provisioner.delete_all([(vm.zone, vm.name)])

    def teardown(self, progress: Progress) -> int:
        if self._provisioner is None:
            return 0
        self._provisioner.cancel.set()
        with self._lock:
            keep = set(self._keep)
        deleted, errors = self._provisioner.delete_all(self._provisioner.asked_targets(keep))
        if errors:
            raise BackendError("could not delete " + "; ".join(errors) +
                               " (delete them by hand, or run `pytest --cleanup --cloud=gce`)")
        return len(deleted)

    def vm_seconds(self) -> dict[str, float]:
        return self._provisioner.vm_seconds() if self._provisioner is not None else {}

    # -- without a run ------------------------------------------------------------------------------
    @classmethod
    def _for_sweep(cls, config: pytest.Config, settings: Settings) -> GceBackend:
        backend = cls.from_config(config, settings)
        backend.cfg.require_project()
        return backend

    @classmethod
    def cleanup(cls, config: pytest.Config, settings: Settings) -> str:
        """Delete every VM with the marker label; only one run's (``--run-id``) or one pool's
        (``--keep-workers``) when those are given, so a sweep in CI spares the other runs."""
        backend = cls._for_sweep(config, settings)
        labels = {MARKER_LABEL: MARKER_VALUE}
        from ...cleanup import cleanup_run_id  # the run id from every source, --resume included

        run_id = cleanup_run_id(config)
        pool = config.getoption("cloudeval_keep_workers", default=None)
        if run_id:
            labels[RUN_LABEL] = label_value(run_id)
        if pool:
            labels[POOL_LABEL] = label_value(pool)
        found = backend.api.list(labels)
        scope = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))
        if not found:
            return f"no VMs labelled {scope} in project {backend.cfg.project}"
        prov = GceProvisioner(backend.api, backend.cfg.zones, progress=lambda line: None)
        deleted, errors = prov.delete_all([(i.zone, i.name) for i in found])
        if errors:
            raise BackendError("could not delete " + "; ".join(errors))
        names = ", ".join(sorted(i.name for i in found))
        return f"deleted {len(found)} VM(s) labelled {scope} ({len(deleted)} still existed): {names}"

    @classmethod
    def status(cls, config: pytest.Config, settings: Settings) -> list[CloudVm]:
        backend = cls._for_sweep(config, settings)
        found = backend.api.list({MARKER_LABEL: MARKER_VALUE})
        return [CloudVm(name=i.name, zone=i.zone, status=i.status, created_at=i.created_at,
                        run_id=i.labels.get(RUN_LABEL, ""), pool=i.labels.get(POOL_LABEL, ""), address=i.address)
                for i in sorted(found, key=lambda i: (i.created_at, i.name))]
