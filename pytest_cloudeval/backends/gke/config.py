"""The GKE provider's options and its frozen settings section (CLI > environment > ini).

The cluster is named by the Kubernetes sandbox's own options (``--kubeconfig``, ``--k8s-context``,
``--k8s-namespace``, ``--image-registry``, ``--k8s-node-selector``, ``--k8s-tolerations``,
``--k8s-start-timeout``): one cluster per run, for the worker pods and the task pods alike. Read only
on the controller (worker pods never create workers), when ``--cloud=gke`` is given.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from ...options import Option, positive_float, positive_int, resolve

CPU_RE = re.compile(r"^(\d+(\.\d+)?|\d+m)$")
MEMORY_RE = re.compile(r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$")
_MEMORY_UNITS = {"": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
DEFAULT_WORKER_IMAGE = "cloudeval/runner:bookworm"
JOB_TTL_S = 600
"""``ttlSecondsAfterFinished`` of a worker Job: a Job that ended on its own (deadline) is removed by
the cluster 10 minutes later, with its pod, even when nobody sweeps."""


def cpu_quantity(text: str) -> str:
    text = text.strip()
    if not CPU_RE.match(text) or cpu_cores(text) <= 0:
        raise ValueError("expected CPUs like 1, 0.5 or 500m")
    return text


def cpu_cores(text: str) -> float:
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def memory_quantity(text: str) -> str:
    text = text.strip()
    if not MEMORY_RE.match(text) or memory_bytes(text) < 64 * 2**20:
        raise ValueError("expected memory like 2Gi or 512Mi (at least 64Mi)")
    return text


def memory_bytes(text: str) -> float:
    match = re.match(r"^(\d+(?:\.\d+)?)([A-Za-z]*)$", text)
    if not match:
        raise ValueError(f"not a memory quantity: {text!r}")
    return float(match[1]) * _MEMORY_UNITS[match[2]]


GKE_OPTIONS: tuple[Option, ...] = (
    Option("--workers-per-pod", "cloudeval_gke_workers_per_pod", "xdist workers packed in one worker pod "
           "(ceil(N/K) pods for -n N; default: --workers-per-vm)", type=positive_int,
           env="CLOUDEVAL_WORKERS_PER_POD", ini="cloudeval_workers_per_pod", metavar="K"),
    Option("--worker-image", "cloudeval_gke_worker_image", "image of the worker pods (needs python3 >= 3.10; "
           "default: the runner image, pushed to --image-registry when it exists only locally)",
           env="CLOUDEVAL_WORKER_IMAGE", ini="cloudeval_worker_image", metavar="IMAGE"),
    Option("--worker-cpu", "cloudeval_gke_worker_cpu", "CPU request of one xdist worker (a pod asks for K "
           "times this)", type=cpu_quantity, default="1", env="CLOUDEVAL_WORKER_CPU", ini="cloudeval_worker_cpu",
           metavar="CPUS"),
    Option("--worker-memory", "cloudeval_gke_worker_memory", "memory request (and limit) of one xdist worker",
           type=memory_quantity, default="2Gi", env="CLOUDEVAL_WORKER_MEMORY", ini="cloudeval_worker_memory",
           metavar="QUANTITY"),
    Option("--k8s-spot", "cloudeval_gke_spot", "run the worker pods on GKE Spot capacity (node selector and "
           "toleration cloud.google.com/gke-spot=true; lost tasks run again elsewhere)", action="store_true",
           env="CLOUDEVAL_K8S_SPOT", ini="cloudeval_k8s_spot"),
    Option("--k8s-max-run-minutes", "cloudeval_gke_max_run_minutes", "a worker pod ends by itself after this "
           "long (the Job's activeDeadlineSeconds), even when the controller was killed", type=positive_float,
           default=240.0, env="CLOUDEVAL_K8S_MAX_RUN_MINUTES", ini="cloudeval_k8s_max_run_minutes",
           metavar="MINUTES"),
)


@dataclass(frozen=True)
class GkeConfig:
    """The worker pods' shape; the cluster itself is a ``K8sConfig`` (``cluster``)."""

    cluster: Any
    """The ``sandbox.k8s_config.K8sConfig`` of the run (kubeconfig, context, namespace, registry, ...)."""
    workers_per_pod: int | None = None
    worker_image: str | None = None
    worker_cpu: str = "1"
    worker_memory: str = "2Gi"
    spot: bool = False
    max_run_minutes: float = 240.0
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: pytest.Config, environ: Mapping[str, str] | None = None) -> GkeConfig:
        from ...sandbox.k8s_config import resolve_config

        env = dict(os.environ if environ is None else environ)
        v = {o.dest[len("cloudeval_gke_"):]: resolve(config, o, env) for o in GKE_OPTIONS}
        return cls(cluster=resolve_config(config), workers_per_pod=v["workers_per_pod"],
                   worker_image=v["worker_image"], worker_cpu=v["worker_cpu"], worker_memory=v["worker_memory"],
                   spot=bool(v["spot"]), max_run_minutes=v["max_run_minutes"])

    @property
    def deadline_s(self) -> int:
        return max(10, int(self.max_run_minutes * 60))
