"""Sandboxes: where agents and judges run (a local process folder, a Docker container, ...)."""

from __future__ import annotations

from .base import (
    Capability,
    CopyReport,
    ExecResult,
    HostLaunch,
    Sandbox,
    SandboxHandle,
    SandboxOptions,
    SandboxSpec,
)
from .config import options_from_settings

__all__ = ["Capability", "CopyReport", "ExecResult", "HostLaunch", "Sandbox", "SandboxHandle", "SandboxOptions",
           "SandboxSpec", "options_from_settings"]
