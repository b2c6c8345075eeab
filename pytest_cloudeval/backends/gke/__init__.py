"""Kubernetes (GKE) worker pods (``--cloud=gke``); the ``kubernetes`` client is imported only when used.

``config.py`` (options and settings) is imported when the plugin adds its options; the provider
itself (``GkeProvider``) only when a run asks for it. Its pods are reached by the ``kubectl``
transport (``backends/kubectl.py``): one long-lived ``kubectl exec -i`` stream per worker.
"""

from __future__ import annotations

from typing import Any

__all__ = ["GkeProvider"]


def __getattr__(name: str) -> Any:
    if name == "GkeProvider":
        from .backend import GkeProvider

        return GkeProvider
    raise AttributeError(name)
