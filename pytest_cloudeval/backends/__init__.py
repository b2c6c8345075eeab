"""Cloud workers: xdist workers on hosts the plugin provisions (``--cloud=gce -n N``).

``base.py`` states the verbs every provider implements (make, find, delete hosts);
``transport.py`` how a host is reached (``ssh.py``: the SSH transport); ``controller.py`` does the
provider- and transport-independent rest (shipping code, xdist wiring, lost workers, cost);
``plugin.py`` holds the pytest hooks; ``options.py`` the cloud options and their section.
"""

from __future__ import annotations

from .base import Backend, BootConfig, CloudVm, ProvisionResult, VmHandle, VmPlan, WorkerHandle, WorkerPlan

__all__ = ["Backend", "BootConfig", "CloudVm", "ProvisionResult", "VmHandle", "VmPlan", "WorkerHandle",
           "WorkerPlan"]
