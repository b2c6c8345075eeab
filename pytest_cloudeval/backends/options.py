"""Options of the cloud workers and their frozen settings section, in one place (no cloud SDK here).

``CLOUD_OPTIONS`` are the provider-independent ones (``CloudSettings``); each provider declares its
own table next to its own section (``gce/config.py``). ``BACKEND_OPTIONS`` lists every table
``plugin.py`` adds to pytest's parser: a new provider's table is one more entry there.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..options import Option, positive_int, resolve
from .gce.config import GCE_OPTIONS
from .gke.config import GKE_OPTIONS

if TYPE_CHECKING:
    import pytest

LABEL_VALUE_RE = re.compile(r"^[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?$")


def pool_name(text: str) -> str:
    """A warm-pool name: it becomes a label value and part of host names, so it is checked, not mangled."""
    if not LABEL_VALUE_RE.match(text) or len(text) > 30:
        raise ValueError("a pool name is 1-30 lowercase letters, digits, '-' or '_' "
                         "(starting and ending with a letter or digit)")
    return text


CLOUD_OPTIONS: tuple[Option, ...] = (
    Option("--cloud", "cloudeval_cloud", "run the xdist workers (-n N) on VMs of this cloud (gce) or as "
           "pods of a Kubernetes cluster (gke: the current kubeconfig context)",
           env="CLOUDEVAL_CLOUD", ini="cloudeval_cloud", metavar="NAME"),
    Option("--workers-per-vm", "cloudeval_workers_per_vm", "xdist workers packed on one VM (ceil(N/K) VMs "
           "for -n N)", type=positive_int, default=1, env="CLOUDEVAL_WORKERS_PER_VM",
           ini="cloudeval_workers_per_vm", metavar="K"),
    Option("--keep-workers", "cloudeval_keep_workers", "keep the VMs after the run as the warm pool NAME "
           "and reuse it next time (no new VMs when it is big enough)", type=pool_name,
           env="CLOUDEVAL_KEEP_WORKERS", ini="cloudeval_keep_workers", metavar="NAME"),
    Option("--cloud-status", "cloudeval_cloud_status", "list this plugin's VMs (age, run id, pool) "
           "in --cloud, then exit", action="store_true"),
    Option("--cloud-dry-run", "cloudeval_cloud_dry_run", "print the VM plan and its estimated cost, "
           "provision nothing, run nothing", action="store_true"),
    Option("--cloud-check", "cloudeval_cloud_check", "print the plan, then ask the cloud whether this run "
           "could be made (credentials, namespace, every permission it needs), name what is missing, "
           "create nothing, exit", action="store_true"),
)

BACKEND_OPTIONS: tuple[Option, ...] = CLOUD_OPTIONS + GCE_OPTIONS + GKE_OPTIONS
"""Every option of the cloud workers (controller-only: stripped from the workers' argv)."""


@dataclass(frozen=True)
class CloudSettings:
    """The provider-independent cloud options, resolved once on the controller."""

    cloud: str | None
    workers_per_vm: int = 1
    keep_workers: str | None = None
    status: bool = False
    dry_run: bool = False
    check: bool = False
    workers: int = 0
    """xdist workers of the run (``-n N``), filled in when the run is planned."""

    @classmethod
    def from_config(cls, config: pytest.Config, environ: Mapping[str, str] | None = None) -> CloudSettings:
        env = dict(os.environ if environ is None else environ)
        values = {o.dest: resolve(config, o, env) for o in CLOUD_OPTIONS}
        return cls(cloud=values["cloudeval_cloud"], workers_per_vm=values["cloudeval_workers_per_vm"],
                   keep_workers=values["cloudeval_keep_workers"], status=bool(values["cloudeval_cloud_status"]),
                   dry_run=bool(values["cloudeval_cloud_dry_run"]), check=bool(values["cloudeval_cloud_check"]))

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> CloudSettings:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})  # type: ignore[arg-type]


CloudOptions = CloudSettings
"""The older name of :class:`CloudSettings`."""


def option(flag: str) -> Option:
    for opt in BACKEND_OPTIONS:
        if opt.flag == flag:
            return opt
    raise KeyError(flag)
