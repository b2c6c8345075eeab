"""The ``kubectl`` transport: each xdist worker is one long-lived ``kubectl exec -i POD -- python3``
stream (an execnet ``popen`` gateway whose interpreter runs in the pod).

One stream per worker, kept for the whole run, instead of one exec per command: an exec is checked by
the API server (and on GKE Autopilot by an admission webhook) when it opens, so per-command execs
are throttled (Harbor users report about 35 trials/min on Autopilot; not measured here); a stream
opened once is not. A stream that drops
ends its kubectl, which xdist sees as a lost worker: the controller re-queues the task and restarts
the worker on the same pod if it still runs, or on a replacement.

Like the SSH transport's ssh_config files, each worker slot's spec names a small launcher script in
the run's private folder (``popen//python=<private>/<slot>.kubectl//chdir=...``): the spec stays the
same for the whole run, and ``point`` rewrites the script (atomically) to aim the slot at another pod.
The stream the controller ships a pod's code over is started exactly as a worker slot's would be (same
pod, container and ``python``), so it is kept and handed to xdist as the pod's first worker
(``hands_over_gateways``): a pod with one worker costs one exec stream, one kubectl process and one
interpreter start, not two. The kubectl command line carries the kubeconfig path, context, namespace, pod and the interpreter
only: no secret (API servers log exec URLs); the worker's settings travel over the stream's stdin.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import BackendError
from .transport import Transport

if TYPE_CHECKING:
    from .base import Host

CONTAINER = "worker"
SUFFIX = ".kubectl"
PROBE_TIMEOUT_S = 10.0


class KubectlTransport(Transport):
    """Worker pods reached with ``kubectl exec -i`` (``configure`` names the kubeconfig, context, namespace)."""

    name = "kubectl"
    popen_runs_elsewhere = True
    hands_over_gateways = True

    def __init__(self, private: Path, key_dir: Path, label: str) -> None:
        super().__init__(private, key_dir, label)
        self.kubeconfig: str | None = None
        self.context: str | None = None
        self.namespace = "default"
        self.container = CONTAINER
        self.kubectl = "kubectl"
        self._python: dict[str, str] = {}

    def configure(self, options: Mapping[str, str]) -> None:
        self.kubeconfig = options.get("kubeconfig") or None
        self.context = options.get("context") or None
        self.namespace = options.get("namespace") or self.namespace
        self.container = options.get("container") or self.container

    def prepare(self) -> None:
        found = shutil.which(self.kubectl)
        if found is None:
            raise BackendError("kubectl was not found on PATH: --cloud=gke reaches its worker pods with "
                               "`kubectl exec` (install kubectl >= 1.30, e.g. from google-cloud-cli)")
        self.kubectl = found

    # -- command lines --------------------------------------------------------------------------------
    def base_command(self) -> list[str]:
        cmd = [self.kubectl]
        if self.kubeconfig:
            cmd += ["--kubeconfig", self.kubeconfig]
        if self.context:
            cmd += ["--context", self.context]
        return cmd + ["--namespace", self.namespace]

    def exec_command(self, pod: str, python: str) -> list[str]:
        """``kubectl exec -i POD -c worker -- <python...>`` (never ``-t``: a TTY corrupts execnet)."""
        return self.base_command() + ["exec", "-i", pod, "-c", self.container, "--", *shlex.split(python)]

    def script_text(self, pod: str, python: str) -> str:
        return ("#!/bin/sh\n# cloudeval: one xdist worker's interpreter, in a worker pod\n"
                f"exec {shlex.join(self.exec_command(pod, python))} \"$@\"\n")

    def _write(self, path: Path, text: str) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.chmod(tmp, 0o700)
        os.replace(tmp, path)  # atomic: xdist may start this slot's worker at any moment

    def script_path(self, name: str) -> Path:
        return self.private / f"{name}{SUFFIX}"

    # -- the Transport verbs --------------------------------------------------------------------------
    def gateway(self, group: Any, host: Host, python: str, deadline: float, cancel: threading.Event) -> Any:
        import execnet

        path = self.script_path(f"host-{host.name}")
        self._write(path, self.script_text(host.address, python))
        last: BaseException | None = None
        while True:
            gateway = None
            try:
                gateway = group.makegateway(f"popen//python={path}")
                channel = gateway.remote_exec("channel.send(1)")
                channel.receive(timeout=30)
                return gateway
            except (OSError, EOFError, execnet.TimeoutError, execnet.RemoteError) as e:
                last = e
                if gateway is not None:
                    gateway.exit()
            phase = self.phase(host)
            if phase not in ("Running", ""):
                raise BackendError(f"pod {host.address} is {phase}, no longer running: no Python gateway ({last})")
            if time.monotonic() > deadline:
                raise BackendError(f"cannot open a Python gateway with kubectl exec to pod {host.address}: {last}")
            if cancel.wait(0.5):
                raise BackendError("cancelled")

    def slot_spec(self, slot: str, python: str, chdir: str) -> str:
        path = self.script_path(slot)
        for value in (str(path), chdir):
            if "//" in value:
                raise BackendError(f"{value!r} contains '//', which execnet specs cannot carry")
        self._python[slot] = python
        self._write(path, "#!/bin/sh\necho 'cloudeval: this worker slot has no pod yet' >&2\nexit 1\n")
        return f"popen//python={path}//chdir={chdir}"

    def point(self, slot: str, host: Host) -> None:
        python = self._python.get(slot)
        if python is None:
            raise BackendError(f"worker slot {slot} was pointed before it had a spec")
        self._write(self.script_path(slot), self.script_text(host.address, python))

    def slot_of(self, spec: Any) -> str | None:
        python = getattr(spec, "python", None)
        if not python:
            return None
        path = Path(str(python))
        if path.parent != self.private or not path.name.endswith(SUFFIX):
            return None
        return path.name[: -len(SUFFIX)]

    def phase(self, host: Host) -> str:
        """The pod's phase (``Gone`` when it does not exist), "" when kubectl could not tell."""
        try:
            proc = subprocess.run(self.base_command() + ["get", "pod", host.address, "-o", "jsonpath={.status.phase}"],
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        if proc.returncode != 0:
            return "Gone" if "NotFound" in proc.stderr or "not found" in proc.stderr else ""
        return proc.stdout.strip()

    def answers(self, host: Host) -> bool:
        """Whether an exec into the pod works right now (a quick ``true``)."""
        try:
            proc = subprocess.run(self.base_command() + ["exec", host.address, "-c", self.container, "--", "true"],
                                  stdin=subprocess.DEVNULL, capture_output=True, timeout=PROBE_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return proc.returncode == 0
