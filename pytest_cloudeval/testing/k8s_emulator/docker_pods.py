"""Pods as Docker containers: create/start/inspect/remove through the SDK's low-level API.

One container per pod (the emulator takes one-container pods), named ``k8s-emu-<ns>-<pod>-<uid8>``
and labelled ``cloudeval.emulator=k8s`` plus the emulator's state label, namespace, pod name and uid,
so leftovers are found by label. The mapping from a pod spec to engine options lives here:
resources.limits -> nano_cpus / mem_limit, a deny-all NetworkPolicy -> ``network none``,
securityContext -> user, read-only root, dropped capabilities, no-new-privileges.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from pytest_cloudeval.testing.k8s_emulator.resources import quantity

LABEL = "cloudeval.emulator"
STATE_LABEL = "cloudeval.k8s.emulator"

_api: Any = None
_api_lock = threading.Lock()


def api() -> Any:
    """One low-level client for the emulator process (the SDK's APIClient is thread-safe for calls)."""
    global _api
    with _api_lock:
        if _api is None:
            import docker

            _api = docker.APIClient(version="auto", timeout=120)
        return _api


def container_name(namespace: str, pod: str, uid: str) -> str:
    return f"k8s-emu-{namespace}-{pod}"[:200] + f"-{uid[:8]}"


class PullFailed(Exception):
    pass


def ensure_image(image: str, policy: str) -> None:
    """Pull ``image`` unless present (IfNotPresent) or always (Always); PullFailed with the engine's words."""
    import docker.errors

    client = api()
    if policy != "Always":
        try:
            client.inspect_image(image)
            return
        except docker.errors.NotFound:
            if policy == "Never":
                raise PullFailed(f'Container image "{image}" is not present with pull policy of Never') from None
        except docker.errors.APIError as e:
            raise PullFailed(str(e.explanation or e)) from e
    repository, tag = _split(image)
    try:
        for _ in client.pull(repository, tag=tag, stream=True, decode=True):
            if isinstance(_, dict) and _.get("error"):
                raise PullFailed(str(_["error"]))
        client.inspect_image(image)
    except docker.errors.DockerException as e:
        raise PullFailed(str(getattr(e, "explanation", None) or e)) from e


def _split(image: str) -> tuple[str, str | None]:
    if "@" in image:
        return image, None
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:
        return image, "latest"
    return name, tag


def engine_options(container: Mapping[str, Any], pod_spec: Mapping[str, Any], network: bool,
                   network_mode: str | None = None) -> dict[str, Any]:
    """host_config options for a pod's container (see the module docstring)."""
    resources = container.get("resources") or {}
    limits = resources.get("limits") or {}
    options: dict[str, Any] = {"network_mode": network_mode or ("bridge" if network else "none")}
    if "cpu" in limits:
        options["nano_cpus"] = int(quantity(limits["cpu"], "resources.limits.cpu") * 1e9)
    if "memory" in limits:
        memory = int(quantity(limits["memory"], "resources.limits.memory"))
        options["mem_limit"] = memory
        options["memswap_limit"] = memory  # Kubernetes nodes run without swap
    security = {**(pod_spec.get("securityContext") or {}), **(container.get("securityContext") or {})}
    if security.get("privileged"):
        options["privileged"] = True
    if security.get("readOnlyRootFilesystem"):
        options["read_only"] = True
    drops = (security.get("capabilities") or {}).get("drop") or []
    if drops:
        options["cap_drop"] = ["ALL" if str(d).upper() == "ALL" else str(d) for d in drops]
    adds = (security.get("capabilities") or {}).get("add") or []
    if adds:
        options["cap_add"] = [str(a) for a in adds]
    if security.get("allowPrivilegeEscalation") is False:
        options["security_opt"] = ["no-new-privileges"]
    return options


def user_of(container: Mapping[str, Any], pod_spec: Mapping[str, Any]) -> str | None:
    security = {**(pod_spec.get("securityContext") or {}), **(container.get("securityContext") or {})}
    uid, gid = security.get("runAsUser"), security.get("runAsGroup")
    if uid is None:
        return None
    return f"{uid}:{gid}" if gid is not None else str(uid)


def create(name: str, container: Mapping[str, Any], pod: Mapping[str, Any], labels: Mapping[str, str],
           network: bool, network_mode: str | None = None, env: Mapping[str, str] | None = None,
           files: Mapping[str, bytes] | None = None) -> str:
    """Create and start the pod's container; returns its id.

    ``network_mode`` ``container:ID`` joins another container's network namespace (the pod's API
    proxy, ``api_proxy.py``); the hostname is then that container's.
    ``env`` is added to the spec's (the kubelet's own variables); ``files`` (absolute path -> bytes,
    mode 0644) are copied in before the container starts (the ServiceAccount token volume).
    """
    client = api()
    spec = pod.get("spec") or {}
    env = {**{str(e["name"]): str(e.get("value", "")) for e in container.get("env") or [] if "name" in e},
           **(env or {})}
    host_config = client.create_host_config(**engine_options(container, spec, network, network_mode))
    joined = bool(network_mode and network_mode.startswith("container:"))
    reply = client.create_container(
        image=container["image"], name=name, labels=dict(labels), environment=env,
        entrypoint=container.get("command") or None, command=container.get("args") or None,
        working_dir=container.get("workingDir") or None, user=user_of(container, spec) or "",
        hostname=None if joined else str((pod.get("metadata") or {}).get("name", ""))[:63], host_config=host_config,
        stdin_open=bool(container.get("stdin")))
    if files:
        client.put_archive(reply["Id"], "/", _tar(files))
    client.start(reply["Id"])
    return str(reply["Id"])


def remove(ref: str, grace_s: float | None) -> None:
    """Stop (SIGTERM, then SIGKILL after ``grace_s``) and remove; grace 0 or None kills at once."""
    import docker.errors

    client = api()
    try:
        if grace_s:
            client.stop(ref, timeout=int(max(1, grace_s)))
        client.remove_container(ref, force=True, v=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as e:
        if "already in progress" not in str(e):
            raise


def states(state_label: str) -> dict[str, dict[str, Any]]:
    """Container id -> {status, exit code, oom} for every container of this emulator (one engine call)."""
    client = api()
    found = client.containers(all=True, filters={"label": [f"{LABEL}=k8s", f"{STATE_LABEL}={state_label}"]})
    return {str(c["Id"]): {"state": c.get("State", ""), "status": c.get("Status", "")} for c in found}


def running(ref: str) -> bool:
    """True while the container runs (False when gone or stopped)."""
    import docker.errors

    try:
        return bool((api().inspect_container(ref).get("State") or {}).get("Running"))
    except docker.errors.NotFound:
        return False


def exit_info(ref: str) -> tuple[int, bool, str]:
    """(exit code, OOM killed, finished at) of a stopped container."""
    import docker.errors

    try:
        state = api().inspect_container(ref).get("State") or {}
    except docker.errors.NotFound:
        return 137, False, ""
    return int(state.get("ExitCode") or 0), bool(state.get("OOMKilled")), str(state.get("FinishedAt") or "")


def sweep(state_label: str | None) -> int:
    """Remove the containers of one emulator (every k8s emulator's if None)."""
    client = api()
    labels = [f"{LABEL}=k8s"] + ([f"{STATE_LABEL}={state_label}"] if state_label else [])
    found = client.containers(all=True, quiet=True, filters={"label": labels})
    for c in found:
        remove(c["Id"], None)
    return len(found)


def _tar(files: Mapping[str, bytes]) -> bytes:
    """A tar of ``files`` (absolute paths) with their folders, root-owned, world-readable."""
    import io
    import tarfile
    import time

    buffer = io.BytesIO()
    folders: set[str] = set()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, data in sorted(files.items()):
            parts = path.strip("/").split("/")
            for depth in range(1, len(parts)):
                folder = "/".join(parts[:depth])
                if folder not in folders:
                    folders.add(folder)
                    info = tarfile.TarInfo(folder)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, int(time.time())
                    tar.addfile(info)
            info = tarfile.TarInfo("/".join(parts))
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
