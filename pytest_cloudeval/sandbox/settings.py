"""The sandbox's settings section: what a sandbox needs from the run's settings, typed and frozen.

The options behind it (``--sandbox``, ``--sandbox-image``, ``--cpus``, ``--memory``, ``--network``,
``--output-cap``) are rows of ``settings.CORE_OPTIONS``, resolved once with the rest of the core
settings on the controller and shipped to workers; ``Settings.sandbox_section`` is this view of
them, so a sandbox can be handed its section instead of the whole ``Settings``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SandboxSettings:
    name: str = "local"
    """The sandbox kind (``--sandbox``)."""
    image: str = "cloudeval/runner:bookworm"
    """Image for tasks that name none (container sandboxes)."""
    cpus: float | None = None
    """``--cpus``: overrides the task's CPU limit when set."""
    memory_mb: int | None = None
    """``--memory``: overrides the task's memory limit when set."""
    network: str = "auto"
    """``auto`` (the task decides), ``none`` or ``bridge``."""
    output_cap_bytes: int = 1024 * 1024
    """Bytes of a command's output kept (head and tail)."""
    work_root: str | None = None
    """Where local sandboxes make their folders (None: the system's temporary folder)."""
    run_id: str = ""
