"""The one price table: estimated hourly prices of GCE machine types (plan estimates, run.json cost).

List prices of us-central1 in USD (on-demand and Spot, per vCPU-hour and per GB-hour of memory,
2025). Other regions cost up to ~40% more and Spot prices move daily, so every figure printed from
here is called an *estimate*. Update the table here and nowhere else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PRICE_SOURCE = "GCE us-central1 list prices, 2025 (estimate)"


@dataclass(frozen=True)
class FamilyRate:
    vcpu_hour: float
    gb_hour: float
    spot_vcpu_hour: float
    spot_gb_hour: float


# Per machine family: on-demand and Spot price of one vCPU-hour and one GB-hour of memory.
FAMILY_RATES: dict[str, FamilyRate] = {
    "e2": FamilyRate(0.021811, 0.002923, 0.006543, 0.000877),
    "n1": FamilyRate(0.031611, 0.004237, 0.006655, 0.000892),
    "n2": FamilyRate(0.031611, 0.004237, 0.007650, 0.001025),
    "n2d": FamilyRate(0.027502, 0.003686, 0.006655, 0.000892),
    "t2d": FamilyRate(0.027502, 0.003686, 0.006655, 0.000892),
    "c2": FamilyRate(0.033982, 0.004555, 0.008223, 0.001102),
    "c2d": FamilyRate(0.029563, 0.003959, 0.007154, 0.000958),
    "c3": FamilyRate(0.034650, 0.003938, 0.008385, 0.000953),
    "c3d": FamilyRate(0.029563, 0.003959, 0.007154, 0.000958),
    "n4": FamilyRate(0.030800, 0.004200, 0.007453, 0.001016),
}

# Memory (GB) per vCPU of the predefined shapes; n1 has its own ratios.
SHAPE_GB_PER_VCPU = {"standard": 4.0, "highmem": 8.0, "highcpu": 1.0}
N1_GB_PER_VCPU = {"standard": 3.75, "highmem": 6.5, "highcpu": 0.9}

# Shared-core types have fixed prices: (on-demand, spot) per hour.
SHARED_CORE: dict[str, tuple[float, float]] = {
    "e2-micro": (0.008376, 0.002513),
    "e2-small": (0.016751, 0.005025),
    "e2-medium": (0.033503, 0.010051),
    "f1-micro": (0.007600, 0.002100),
    "g1-small": (0.025700, 0.007000),
}

DISK_GB_MONTH = {"pd-balanced": 0.100, "pd-standard": 0.040, "pd-ssd": 0.170}
HOURS_PER_MONTH = 730.0

_PREDEFINED = re.compile(r"^(?P<family>[a-z0-9]+)-(?P<shape>standard|highmem|highcpu)-(?P<vcpus>\d+)$")
_CUSTOM = re.compile(r"^(?:(?P<family>[a-z0-9]+)-)?custom-(?P<vcpus>\d+)-(?P<mb>\d+)$")


def vm_hourly_usd(machine_type: str, spot: bool = False, disk_gb: int = 0,
                  disk_type: str = "pd-balanced") -> float | None:
    """Estimated USD per hour of one VM (machine + boot disk), or None for an unknown type."""
    machine = _machine_hourly(machine_type, spot)
    if machine is None:
        return None
    disk = disk_gb * DISK_GB_MONTH.get(disk_type, DISK_GB_MONTH["pd-balanced"]) / HOURS_PER_MONTH
    return machine + disk


def _machine_hourly(machine_type: str, spot: bool) -> float | None:
    if machine_type in SHARED_CORE:
        on_demand, spot_price = SHARED_CORE[machine_type]
        return spot_price if spot else on_demand
    match = _PREDEFINED.match(machine_type)
    if match:
        family, shape, vcpus = match["family"], match["shape"], int(match["vcpus"])
        ratios = N1_GB_PER_VCPU if family == "n1" else SHAPE_GB_PER_VCPU
        memory_gb = vcpus * ratios[shape]
    else:
        match = _CUSTOM.match(machine_type)
        if not match:
            return None
        family, vcpus, memory_gb = match["family"] or "n1", int(match["vcpus"]), int(match["mb"]) / 1024
    rate = FAMILY_RATES.get(family)
    if rate is None:
        return None
    if spot:
        return vcpus * rate.spot_vcpu_hour + memory_gb * rate.spot_gb_hour
    return vcpus * rate.vcpu_hour + memory_gb * rate.gb_hour


def cost_usd(vm_seconds: float, usd_per_vm_hour: float | None) -> float | None:
    """Estimated cost of ``vm_seconds`` VM-seconds (GCE bills per second after the first minute)."""
    if usd_per_vm_hour is None:
        return None
    return vm_seconds / 3600.0 * usd_per_vm_hour


def format_usd(value: float | None) -> str:
    if value is None:
        return "unknown (machine type not in the price table)"
    return f"${value:.4f}" if value < 1 else f"${value:.2f}"


# -- pods (--cloud=gke) ------------------------------------------------------------------------------
POD_PRICE_SOURCE = "GKE Autopilot general-purpose pod list prices, us-central1, 2025 (estimate)"
POD_RATES = FamilyRate(vcpu_hour=0.0445, gb_hour=0.0049225, spot_vcpu_hour=0.0133, spot_gb_hour=0.0014767)
"""GKE Autopilot bills a pod's requests: per vCPU-hour and per GiB-hour of memory (on-demand and Spot).
On GKE Standard the nodes are billed as GCE VMs instead; the pod figure then estimates the share of
the nodes the pods ask for."""


def pod_hourly_usd(vcpus: float, memory_gib: float, spot: bool = False) -> float:
    """Estimated USD per hour of one pod requesting ``vcpus`` and ``memory_gib``."""
    rate = POD_RATES
    if spot:
        return vcpus * rate.spot_vcpu_hour + memory_gib * rate.spot_gb_hour
    return vcpus * rate.vcpu_hour + memory_gib * rate.gb_hour
