"""The GCE provider's options and its frozen settings section, in one place (CLI > environment > ini).

Read only on the controller (VM workers never provision), when ``--cloud=gce`` is given.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import pytest

from ...options import Option, positive_float, positive_int, resolve

ZONE_RE = re.compile(r"^[a-z]+-[a-z]+[0-9]+-[a-z]$")
MACHINE_TYPE_RE = re.compile(r"^[a-z][a-z0-9]*-[a-z0-9-]+$")
SSH_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


def zone_list(text: str) -> tuple[str, ...]:
    zones = tuple(z.strip() for z in text.split(",") if z.strip())
    if not zones:
        raise ValueError("give at least one zone, e.g. us-central1-a")
    for zone in zones:
        if not ZONE_RE.match(zone):
            raise ValueError(f"{zone!r} is not a zone name like us-central1-a")
    if len(set(zones)) != len(zones):
        raise ValueError("a zone is listed twice")
    return zones


def machine_type(text: str) -> str:
    if not MACHINE_TYPE_RE.match(text):
        raise ValueError("expected a machine type like e2-standard-2")
    return text


def ssh_user(text: str) -> str:
    if not SSH_USER_RE.match(text) or text == "root":
        raise ValueError("a Linux user name: lowercase letters, digits, '_' or '-', not root")
    return text


def endpoint(text: str) -> str:
    if not re.match(r"^https?://[^/\s]+", text):
        raise ValueError("expected a URL like http://127.0.0.1:8089")
    return text.rstrip("/")


def disk_gb(text: str) -> int:
    value = positive_int(text)
    if value < 10:
        raise ValueError("a boot disk has at least 10 GB")
    return value


def project_id(text: str) -> str:
    if not re.match(r"^([a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$", text):
        raise ValueError("expected a project id like my-project-123")
    return text


GCE_OPTIONS: tuple[Option, ...] = (
    Option("--gce-project", "cloudeval_gce_project", "Google Cloud project of the VMs", type=project_id,
           env="GCP_PROJECT_ID", ini="gce_project", metavar="PROJECT"),
    Option("--gce-zone", "cloudeval_gce_zone", "zone, or comma-separated zones tried in order when one "
           "is out of capacity or quota", type=zone_list, default=("us-central1-a",), env="GCP_ZONE",
           ini="gce_zone", metavar="ZONE[,ZONE...]"),
    Option("--gce-machine-type", "cloudeval_gce_machine_type", "machine type of the VMs", type=machine_type,
           default="e2-standard-2", env="CLOUDEVAL_GCE_MACHINE_TYPE", ini="gce_machine_type",
           metavar="TYPE"),
    Option("--gce-spot", "cloudeval_gce_spot", "use Spot VMs (cheaper, may be preempted: lost tasks run "
           "again elsewhere)", action="store_true", env="CLOUDEVAL_GCE_SPOT", ini="gce_spot"),
    Option("--gce-image", "cloudeval_gce_image", "boot image (needs python3 >= 3.10; Docker is installed "
           "by the startup script for --sandbox docker)",
           default="projects/debian-cloud/global/images/family/debian-12", env="CLOUDEVAL_GCE_IMAGE",
           ini="gce_image", metavar="IMAGE"),
    Option("--gce-disk-gb", "cloudeval_gce_disk_gb", "boot disk size", type=disk_gb, default=20,
           env="CLOUDEVAL_GCE_DISK_GB", ini="gce_disk_gb", metavar="GB"),
    Option("--gce-api-endpoint", "cloudeval_gce_api_endpoint", "Compute API endpoint (the local emulator: "
           "anonymous credentials are used)", type=endpoint, env="CLOUDEVAL_GCE_API_ENDPOINT",
           ini="gce_api_endpoint", metavar="URL"),
    Option("--gce-service-account", "cloudeval_gce_service_account", "service account of the VMs "
           "(default: none, the VMs get no Google API access)", env="CLOUDEVAL_GCE_SERVICE_ACCOUNT",
           ini="gce_service_account", metavar="EMAIL"),
    Option("--gce-ssh-user", "cloudeval_gce_ssh_user", "login created on the VMs for the run's SSH key",
           type=ssh_user, default="cloudeval", env="CLOUDEVAL_GCE_SSH_USER", ini="gce_ssh_user",
           metavar="USER"),
    Option("--gce-idle-minutes", "cloudeval_gce_idle_minutes", "a VM powers itself off after this long "
           "without a controller (so a killed run stops billing)", type=positive_float, default=30.0,
           env="CLOUDEVAL_GCE_IDLE_MINUTES", ini="gce_idle_minutes", metavar="MIN"),
    Option("--gce-ready-timeout", "cloudeval_gce_ready_timeout", "seconds a VM may take from creation "
           "to a working SSH login", type=positive_float, default=300.0, env="CLOUDEVAL_GCE_READY_TIMEOUT",
           ini="gce_ready_timeout", metavar="SECONDS"),
)


@dataclass(frozen=True)
class GceConfig:
    project: str | None
    zones: tuple[str, ...]
    machine_type: str
    spot: bool
    image: str
    disk_gb: int
    api_endpoint: str | None
    service_account: str | None
    ssh_user: str
    idle_minutes: float
    ready_timeout_s: float

    @classmethod
    def from_config(cls, config: pytest.Config, environ: Mapping[str, str] | None = None) -> GceConfig:
        env = dict(os.environ if environ is None else environ)
        v = {o.dest: resolve(config, o, env) for o in GCE_OPTIONS}
        return cls(project=v["cloudeval_gce_project"], zones=tuple(v["cloudeval_gce_zone"]),
                   machine_type=v["cloudeval_gce_machine_type"], spot=bool(v["cloudeval_gce_spot"]),
                   image=v["cloudeval_gce_image"], disk_gb=v["cloudeval_gce_disk_gb"],
                   api_endpoint=v["cloudeval_gce_api_endpoint"],
                   service_account=v["cloudeval_gce_service_account"], ssh_user=v["cloudeval_gce_ssh_user"],
                   idle_minutes=v["cloudeval_gce_idle_minutes"], ready_timeout_s=v["cloudeval_gce_ready_timeout"])
    def require_project(self) -> str:
        if not self.project:
            raise pytest.UsageError("--cloud=gce needs a project: --gce-project PROJECT, the environment "
                                    "variable GCP_PROJECT_ID, or gce_project in the ini file")
        return self.project

    def public_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["zones"] = list(self.zones)
        return data
