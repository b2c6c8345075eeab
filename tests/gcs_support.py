"""The GCS emulator as a test fixture (tests/test_gcs_store.py, tests/test_upload_placement.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

BUCKET = "results"


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A gcp-storage-emulator with ``BUCKET`` behind its fault gate, the SDK pointed at it."""
    from pytest_cloudeval.testing.gcs import GcsEmulator

    with GcsEmulator(buckets=[BUCKET], gate=True) as emu:
        for name, value in emu.env().items():
            monkeypatch.setenv(name, value)
        yield emu
