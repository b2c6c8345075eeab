"""Cloud workers: xdist workers on hosts the plugin provisions (``--cloud=gce -n N``).

``base.py`` states the verbs every provider implements (make, find, delete hosts);
``transport.py`` how a host is reached (``ssh.py``: the SSH transport); ``controller.py`` does the
provider- and transport-independent rest (shipping code, xdist wiring, lost workers, cost);
``plugin.py`` holds the pytest hooks; ``options.py`` the cloud options and their section.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import (
        Backend,
        BootConfig,
        CloudVm,
        ProvisionResult,
        VmHandle,
        VmPlan,
        WorkerHandle,
        WorkerPlan,
    )

__all__ = ["Backend", "BootConfig", "CloudVm", "ProvisionResult", "VmHandle", "VmPlan", "WorkerHandle",
           "WorkerPlan"]


def __getattr__(name: str) -> Any:
    # Lazily: every xdist worker imports this package (for ``options``), none needs the provider
    # verbs of ``base`` (~10 ms of its start).
    if name in __all__:
        from . import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
