"""The result store's options and its frozen settings section, in one place.

Resolved once on the controller (``resolve_store``) into ``Settings.store`` and shipped to the
workers with the rest of the settings; workers never read these options themselves.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..options import Option, byte_size, non_negative_int, resolve

if TYPE_CHECKING:
    import pytest

    from .uploader import RetryPolicy

UPLOAD_THREADS = 4  # per process; uploads wait on the network, not the CPU
MAX_CONTROLLER_THREADS = 16
"""The controller uploads for its local workers with one thread per worker, at least UPLOAD_THREADS."""

ARTIFACT_OPTIONS: tuple[Option, ...] = (
    Option("--upload-retries", "cloudeval_upload_retries", "retries of an upload after a transient store "
           "error (429, 5xx, connection trouble), with exponential backoff", type=non_negative_int, default=5,
           env="CLOUDEVAL_UPLOAD_RETRIES", ini="cloudeval_upload_retries", metavar="N"),
    Option("--upload-max-bytes", "cloudeval_upload_max_bytes", "files larger than this are not uploaded "
           "(they are listed in the summary), e.g. 256m", type=byte_size, default=256 * 1024 ** 2,
           env="CLOUDEVAL_UPLOAD_MAX_BYTES", ini="cloudeval_upload_max_bytes", metavar="SIZE"),
)


@dataclass(frozen=True)
class StoreSettings:
    """Where and how task folders are uploaded (``--artifacts-url`` and the upload options)."""

    url: str
    retries: int = 5
    max_bytes: int = 256 * 1024 ** 2
    backoff_s: float = 0.5
    threads: int = UPLOAD_THREADS

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StoreSettings:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    @property
    def policy(self) -> RetryPolicy:
        from .uploader import RetryPolicy

        return RetryPolicy(retries=self.retries, base_s=self.backoff_s)


def resolve_store(config: pytest.Config, url: str, environ: Mapping[str, str] | None = None) -> StoreSettings:
    """The store section from the options (CLI > environment > ini). Raises: pytest.UsageError."""
    env = dict(os.environ if environ is None else environ)
    values = {opt.dest: resolve(config, opt, env) for opt in ARTIFACT_OPTIONS}
    return StoreSettings(url=url.rstrip("/"), retries=values["cloudeval_upload_retries"],
                         max_bytes=values["cloudeval_upload_max_bytes"])
