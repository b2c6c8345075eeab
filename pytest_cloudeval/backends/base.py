"""The verbs every worker provider implements, and the frozen types that cross the provider boundary.

A provider (``--cloud NAME``) only makes, finds and deletes *hosts* (VMs, pods, ...); how the
controller reaches a host is a :class:`~.transport.Transport`'s business (SSH today), and everything
after "a host is up" (readiness, shipping the code, xdist wiring, lost hosts, cost, teardown) is the
same for every provider and lives in ``controller.py``. Modelled on SkyPilot's ``sky/provision``: a
few verbs, typed results, teardown by label, not-found counts as deleted, errors collected and
raised once; and, like SkyPilot's ``get_command_runners``, the provider names the transport its
hosts are reached by.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import pytest

    from ..settings import Settings

Progress = Callable[[str], None]
"""Where a backend writes progress lines (the terminal on the controller)."""


@dataclass(frozen=True)
class VmPlan:
    """One VM of a plan: its name and how many xdist workers (slots) it hosts."""

    name: str
    slots: int


@dataclass(frozen=True)
class WorkerPlan:
    """What a run will ask the cloud for; printed (with its cost) before anything is created."""

    cloud: str
    run_id: str
    workers: int
    """xdist workers asked for (``-n N``)."""
    workers_per_vm: int
    vms: tuple[VmPlan, ...]
    machine_type: str
    zones: tuple[str, ...]
    """Zones in fallback order."""
    spot: bool = False
    pool: str | None = None
    """``--keep-workers NAME``: VMs are kept after the run and reused by the next one."""
    login_user: str = "cloudeval"
    """The login the transport's access is installed for (SSH); ignored by transports without one."""
    idle_seconds: float = 1800.0
    """The VM-side watchdog powers a VM off after this long without a controller."""
    ready_timeout_s: float = 300.0
    """How long a host may take from the create request to a working transport."""
    usd_per_vm_hour: float | None = None
    """Estimated price of one VM (None when the price table does not know the machine type)."""
    details: Mapping[str, str] = field(default_factory=dict)
    """Cloud-specific lines of the plan (image, disk, endpoint, ...)."""
    unit: str = "VM"
    """What a host is called in messages and the cost line ("VM", "pod")."""
    price_source: str = ""
    """Where ``usd_per_vm_hour`` comes from (default: the GCE price table's source)."""

    @property
    def usd_per_hour(self) -> float | None:
        return None if self.usd_per_vm_hour is None else self.usd_per_vm_hour * len(self.vms)


@dataclass(frozen=True)
class BootConfig:
    """What every host gets at creation: the boot script and the transport's access."""

    startup_script: str
    """Run as root when the host boots (the idle watchdog; Docker for ``--sandbox docker``), for
    providers whose hosts run one."""
    access: Mapping[str, str] = field(default_factory=dict)
    """What the transport needs installed on each host (``Transport.access()``); for SSH ``user``
    and ``public_key``. A provider that cannot install what is asked raises ``BackendError``."""


@dataclass(frozen=True)
class Host:
    """A host that is up (running, reachable by the provider's transport at ``address``)."""

    name: str
    zone: str
    address: str
    """How the transport finds the host: an IP for SSH, a pod name for ``kubectl exec``."""
    user: str = ""
    """The login the transport uses (SSH), empty when it needs none."""
    port: int = 22
    slots: int = 1
    created_at: float = 0.0
    """Epoch seconds when the host was created (or started again, for a reused pool host)."""
    reused: bool = False
    """True when the host came from a warm pool instead of being created by this run."""
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def ssh_user(self) -> str:
        """The SSH login (the name this field had when every host was an SSH VM)."""
        return self.user


VmHandle = Host
"""The older name of :class:`Host` (GCE hosts are VMs)."""


@dataclass(frozen=True)
class WorkerHandle:
    """One xdist worker slot (a stable name the transport points at a host) on a host."""

    alias: str
    vm: Host
    slot: int


@dataclass(frozen=True)
class ProvisionResult:
    """What came up. ``failed`` names the VMs that did not, with the reason (partial capacity)."""

    vms: tuple[Host, ...]
    failed: tuple[tuple[str, str], ...] = ()
    seconds: float = 0.0
    notes: tuple[str, ...] = ()
    """Lines worth printing: zone fallbacks, reused VMs, partial capacity."""


@dataclass(frozen=True)
class CloudVm:
    """A VM carrying our marker label, as ``status``/``cleanup`` list them."""

    name: str
    zone: str
    status: str
    created_at: float
    run_id: str = ""
    pool: str = ""
    address: str = ""


class Provider(ABC):
    """A cloud (or cluster) that can make hosts for xdist workers (``--cloud NAME``).

    Contract, for every implementation:

    - ``transport`` names the registered :class:`~.transport.Transport` that reaches its hosts
      (``"ssh"`` by default); the provider installs ``BootConfig.access`` on every host it makes.

    - Construction reads the backend's own options (``from_config``) and never calls the cloud;
      bad values raise ``pytest.UsageError`` naming the option and where it came from.
    - ``provision`` is the only verb that creates VMs. It creates them in parallel, remembers every
      VM it *asked for* before asking (so ``teardown`` finds VMs whose creation was interrupted),
      falls back through the plan's zones on capacity or quota errors, and returns the VMs that came
      up. It raises ``BackendError`` only when none did. It stops early when ``cancel`` is set.
    - ``teardown`` deletes every VM this object asked for (keeping warm-pool VMs when the plan has a
      pool), in parallel; a VM that is already gone counts as deleted; errors are collected and
      raised once as ``BackendError`` after every deletion was tried. Calling it twice is harmless.
    - ``is_alive`` answers from the cloud's view (a preempted or powered-off VM is not alive).
    - ``replace`` may return a new host for a lost one, up and running (or None when the backend does
      not replace, or could not): the controller makes it ready and moves the lost host's slots there.
    - ``cleanup`` and ``status`` work without a run: they find VMs by the marker label.
    """

    name: ClassVar[str]
    transport: ClassVar[str] = "ssh"

    @classmethod
    @abstractmethod
    def from_config(cls, config: pytest.Config, settings: Settings) -> Provider:
        """Read the backend's options. Raises: pytest.UsageError for bad or missing values."""

    def remote_base(self) -> str:
        """The folder on every host where runs live (bundles, the rootdir's copy, results)."""
        from .watchdog import REMOTE_BASE

        return REMOTE_BASE

    def preflight(self) -> None:  # noqa: B027 - optional check, no-op by default
        """Raise ``pytest.UsageError`` for what a real run needs but is missing (no cloud call)."""

    def adjust_worker_settings(self, data: dict[str, Any]) -> None:  # noqa: B027 - optional, no-op by default
        """Change (in place) the settings a worker on one of this provider's hosts receives, after
        the generic remote paths were filled in (e.g. how a worker pod reaches its own cluster)."""

    def transport_options(self) -> Mapping[str, str]:
        """What the transport needs to reach this provider's hosts (``Transport.configure``)."""
        return {}

    def check(self) -> list[str]:
        """``--cloud-check``: ask the cloud whether this run could be made (credentials, permissions,
        quota) without creating anything; one line per problem found. Raises: BackendError when the
        cloud cannot be asked. Default: nothing is checked beyond the plan."""
        return []

    def check_summary(self) -> str:
        """What ``check`` verified, for the line printed when nothing is missing."""
        return "nothing beyond the plan (this cloud has no checks)"

    @abstractmethod
    def plan(self, run_id: str, workers: int, workers_per_vm: int, pool: str | None) -> WorkerPlan:
        """The VMs this run needs (ceil(workers / workers_per_vm)); no cloud call."""

    @abstractmethod
    def describe(self, plan: WorkerPlan) -> list[str]:
        """Lines that show the plan and its estimated cost before anything is created."""

    @abstractmethod
    def provision(self, plan: WorkerPlan, boot: BootConfig, progress: Progress, cancel: threading.Event,
                  on_up: Callable[[Host], None] | None = None) -> ProvisionResult:
        """Create (or reuse, for a pool) the plan's VMs in parallel and wait until they run.

        ``on_up(vm)``, when given, is called (from any thread) as soon as each VM runs, so the
        caller can start using it while the others are still being created; it must not block.
        Returns: the VMs that came up, RUNNING with an address.
        Raises: BackendError when no VM came up.
        """

    @abstractmethod
    def is_alive(self, vm: Host) -> bool:
        """Whether the cloud still reports the VM as running."""

    def replace(self, vm: Host, boot: BootConfig, progress: Progress) -> Host | None:
        """A new VM in place of a lost one, or None (the default: lost slots move to live VMs)."""
        return None

    def forget(self, vm: Host) -> None:  # noqa: B027 - optional hook, no-op by default
        """Delete one VM now (a VM that failed its health check); default: left to ``teardown``."""

    @abstractmethod
    def teardown(self, progress: Progress) -> int:
        """Delete every VM this run asked for (not kept pool VMs); returns how many were deleted.

        Raises: BackendError listing every VM that could not be deleted.
        """

    @abstractmethod
    def vm_seconds(self) -> dict[str, float]:
        """Seconds each VM of this run has existed so far (creation to deletion or now)."""

    @classmethod
    @abstractmethod
    def cleanup(cls, config: pytest.Config, settings: Settings) -> str:
        """Delete every VM that carries the marker label; return a one-line account."""

    @classmethod
    @abstractmethod
    def status(cls, config: pytest.Config, settings: Settings) -> list[CloudVm]:
        """Every VM that carries the marker label."""


Backend = Provider
"""The older name of :class:`Provider` (kept for imports that predate the transport split)."""
