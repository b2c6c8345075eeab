"""The Kubernetes emulator for the test suite: one per test process, started on first use.

It needs Docker (its pods are containers), so it FAILS (or skips with CLOUDEVAL_SKIP_DOCKER=1) like
the other docker tests. ``k8s_settings_extra()`` is what ``Settings.extra`` carries for the sandbox.
"""

from __future__ import annotations

import atexit
import json
import tempfile
from pathlib import Path
from typing import Any

from tests.docker_support import require_docker

_state: dict[str, Any] = {}


def emulator() -> Any:
    """The process's emulator (``.kubeconfig``, ``.access_log``, ``.endpoint``, ``.cluster``, ``.faults``)."""
    require_docker()
    found = _state.get("emu")
    if found is not None:
        return found
    from pytest_cloudeval.testing.k8s_emulator import K8sEmulator

    folder = Path(tempfile.mkdtemp(prefix="cloudeval-k8s-"))
    emu = K8sEmulator(kubeconfig=folder / "kubeconfig", access_log=folder / "access.log")
    emu.start()
    emu.access_log = folder / "access.log"
    atexit.register(emu.stop)
    _state["emu"] = emu
    return emu


def k8s_settings_extra(**changes: Any) -> dict[str, Any]:
    emu = emulator()
    return {"k8s": {"kubeconfig": str(emu.kubeconfig), "start_timeout_s": 60.0, **changes}}


def access_log_lines() -> list[dict[str, Any]]:
    path = emulator().access_log
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
