"""Google Compute Engine workers (``--cloud=gce``); google-cloud-compute is imported only when used.

``config.py`` (options and settings) is imported when the plugin adds its options; the provider
itself (``GceBackend``) only when a run asks for it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["GceBackend"]


def __getattr__(name: str) -> Any:
    if name == "GceBackend":
        from .backend import GceBackend

        return GceBackend
    raise AttributeError(name)
