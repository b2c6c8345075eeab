"""The one place where the run's Settings become what sandboxes read (``SandboxOptions``).

Sandboxes never see Settings: this narrow read keeps them independent of how settings are organised.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import SandboxOptions

if TYPE_CHECKING:
    from ..settings import Settings


def options_from_settings(settings: Settings) -> SandboxOptions:
    return SandboxOptions(
        run_id=settings.run_id,
        default_image=settings.sandbox_image,
        force_build=settings.force_build,
        output_cap_bytes=settings.output_cap_bytes,
        work_root=settings.work_root,
        copy_max_files=settings.copy_max_files,
    )
