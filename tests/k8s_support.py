"""The Kubernetes emulator for the test suite: one per test process, started on first use.

It needs Docker (its pods are containers), so it FAILS (or skips with CLOUDEVAL_SKIP_DOCKER=1) like
the other docker tests. ``k8s_section()`` is the ``Settings.k8s`` section pointing at it.
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
    emu.access_log = folder / "access.log"  # type: ignore[attr-defined]
    atexit.register(emu.stop)
    _state["emu"] = emu
    return emu


def k8s_section(**changes: Any) -> Any:
    from pytest_cloudeval.sandbox.k8s_config import K8sConfig

    emu = emulator()
    return K8sConfig.from_dict({"kubeconfig": str(emu.kubeconfig), "start_timeout_s": 60.0, **changes})


def access_log_lines() -> list[dict[str, Any]]:
    path = emulator().access_log
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def start_registry(folder: Path) -> tuple[Any, str]:
    """Debian's ``docker-registry`` on a free loopback port, storage in ``folder``: (process, host:port).

    The engine treats 127.0.0.0/8 as insecure, so ``docker push 127.0.0.1:PORT/name:tag`` needs no TLS.
    """
    import shutil
    import socket
    import subprocess
    import time

    binary = shutil.which("docker-registry")
    assert binary, "docker-registry is missing: scripts/setup-docker.sh installs it (apt-get install docker-registry)"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (folder / "storage").mkdir(parents=True, exist_ok=True)
    config = folder / "registry.yml"
    config.write_text(f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {folder / 'storage'}\n"
                      f"  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n")
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=subprocess.DEVNULL,
                            stderr=open(folder / "registry.log", "wb"))  # noqa: SIM115 - lives with the process
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, f"127.0.0.1:{port}"
        except OSError:
            assert proc.poll() is None, (folder / "registry.log").read_text()
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("docker-registry did not listen within 15 s")


def use_emulator(**changes: Any) -> Any:
    """Point this process's k8s sandboxes at the emulator (the section a run's controller would ship)."""
    from pytest_cloudeval.sandbox import k8s_config

    section = k8s_section(**changes)
    k8s_config.use(section)
    return section
