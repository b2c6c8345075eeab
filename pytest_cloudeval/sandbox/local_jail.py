"""Finding every process a local sandbox started, also those that left its process group
(``setsid``, double-forked daemons), so none outlives its attempt or a killed worker.

Two nets: a cgroup per sandbox (v1 ``pids`` + ``memory`` hierarchies or a
v2 group, created below this process's own cgroup, when this user may write there), which no
process can leave without rights over the cgroup tree; and a token in every process's environment
(``CLOUDEVAL_SANDBOX_ID``), found by a sweep of ``/proc`` when there is no cgroup (and at the
controller's end-of-run sweep). The cgroup also carries the memory limit
(one total for all the sandbox's processes). A registry file per sandbox under the temporary folder
lets the controller sweep what a ``kill -9``ed worker left (processes and sandbox folders).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

TOKEN_VAR = "CLOUDEVAL_SANDBOX_ID"
CGROUP_ROOT = Path("/sys/fs/cgroup")
KILL_ROUNDS = 100


def registry_dir(run_id: str | None = None) -> Path:
    base = Path(tempfile.gettempdir()) / "cloudeval-local-sandboxes"
    return base / run_id if run_id else base


def _own_cgroup_paths() -> dict[str, str]:
    """``{hierarchy: path}`` of this process (``""`` is the v2 unified hierarchy)."""
    paths: dict[str, str] = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return paths
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) == 3:
            for name in parts[1].split(","):
                paths[name] = parts[2]
    return paths


def cgroup_dirs(token: str) -> list[Path]:
    """Where this sandbox's cgroups go (not created): v1 ``pids`` and ``memory``, or the v2 group."""
    own = _own_cgroup_paths()
    leaf = "cloudeval-" + token.replace("/", "--")
    if (CGROUP_ROOT / "cgroup.controllers").exists():  # pure v2
        return [CGROUP_ROOT / own.get("", "/").lstrip("/") / leaf]
    return [CGROUP_ROOT / ctl / own.get(ctl, "/").lstrip("/") / leaf for ctl in ("pids", "memory")
            if (CGROUP_ROOT / ctl).is_dir()]


class ProcessJail:
    """The processes of one local sandbox: join at start, limit memory, kill them all."""

    def __init__(self, run_id: str, name: str, root: Path, memory_mb: int | None) -> None:
        self.token = f"{run_id}/{name}"
        self.run_id = run_id
        self.groups: list[Path] = []
        self.memory_applied: int | None = None
        self.notes: list[str] = []
        self.registry = registry_dir(run_id) / f"{name}.json"
        entry = json.dumps({"root": str(root), "token": self.token, "pid": os.getpid()})
        for tries_left in range(2, -1, -1):
            try:
                self.registry.parent.mkdir(parents=True, exist_ok=True)
                self.registry.write_text(entry)
                break
            except FileNotFoundError as e:  # the run's folder went with another sandbox's close(): again
                if not tries_left:
                    self.notes.append(f"no registry for the controller's sweep: {e}")
            except OSError as e:
                self.notes.append(f"no registry for the controller's sweep: {e}")
                break
        for group in cgroup_dirs(self.token):
            try:
                group.mkdir(parents=False, exist_ok=True)
            except OSError:
                continue
            self.groups.append(group)
        if not self.groups:
            self.notes.append("no writable cgroup: processes are found by their environment token only")
        if memory_mb:
            self._limit_memory(memory_mb)

    def _limit_memory(self, memory_mb: int) -> None:
        size = str(memory_mb * 1024 * 1024)
        for group in self.groups:
            files = (["memory.max", "memory.swap.max"] if (group / "memory.max").exists()
                     else ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"])
            if not (group / files[0]).exists():
                continue
            try:
                (group / files[0]).write_text(size)
                self.memory_applied = memory_mb
            except OSError:
                continue
            try:
                (group / files[1]).write_text("0" if files[1] == "memory.swap.max" else size)
            except OSError:
                pass  # no swap accounting: swap is not a way around it when there is no swap

    def join_files(self) -> list[str]:
        """The ``cgroup.procs`` files a new process writes its pid into (in the child, before exec)."""
        return [str(g / "cgroup.procs") for g in self.groups]

    def pids(self) -> set[int]:
        # A cgroup holds every descendant (the /proc sweep costs ~50 ms: only without one).
        return _cgroup_pids(self.groups) if self.groups else _token_pids(self.token)

    def kill_all(self) -> bool:
        """SIGKILL every process of the sandbox until none is left; False if some survived."""
        return kill_until_gone(self.pids)

    def close(self) -> None:
        self.kill_all()
        for group in self.groups:
            _rmdir_cgroup(group)
        try:
            self.registry.unlink()
        except OSError:
            pass
        try:  # the run's folder goes with its last sandbox (empty folders would pile up in /tmp)
            self.registry.parent.rmdir()
        except OSError:
            pass  # other sandboxes of the run are registered there


def _cgroup_pids(groups: list[Path]) -> set[int]:
    found: set[int] = set()
    for group in groups:
        try:
            found.update(int(p) for p in (group / "cgroup.procs").read_text().split())
        except (OSError, ValueError):
            continue
    return found


def _token_pids(token: str, prefix: bool = False) -> set[int]:
    """Processes (of this user) whose environment carries the token (or a token starting with it)."""
    me = os.getpid()
    needle = f"{TOKEN_VAR}={token}".encode()
    found: set[int] = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        for var in env.split(b"\0"):
            if var == needle or (prefix and var.startswith(needle)):
                found.add(int(entry.name))
                break
    return found


def kill_until_gone(find: Callable[[], set[int]]) -> bool:
    me = os.getpid()
    for round_ in range(KILL_ROUNDS):
        pids = {p for p in find() if p != me}
        if not pids:
            return True
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.002 * min(round_ + 1, 20))
    return not {p for p in find() if p != me}


def _rmdir_cgroup(group: Path) -> None:
    for _ in range(50):  # a killed process leaves its cgroup a moment after the signal
        try:
            group.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.02)


def sweep(run_id: str | None) -> list[str]:
    """Kill the processes and remove the folders and cgroups of every local sandbox of ``run_id``
    (all runs if None) that is still registered: what killed workers left. Returns what failed."""
    problems: list[str] = []
    base = registry_dir(run_id)
    entries = sorted(base.glob("*.json") if run_id else base.glob("*/*.json"))
    for entry in entries:
        try:
            data = json.loads(entry.read_text())
        except (OSError, ValueError):
            continue
        owner = data.get("pid")
        if isinstance(owner, int) and owner != os.getpid() and _alive(owner):
            continue  # its worker is still running (another session with the same run id): leave it
        token = str(data.get("token", ""))
        groups = cgroup_dirs(token) if token else []
        if token and not kill_until_gone(lambda g=groups, t=token: _cgroup_pids(g) | _token_pids(t)):  # type: ignore[misc]
            problems.append(f"processes of local sandbox {token} survived SIGKILL")
        for group in groups:
            _rmdir_cgroup(group)
        root = data.get("root")
        if isinstance(root, str) and Path(root).name.startswith("cloudeval-"):
            shutil.rmtree(root, ignore_errors=True)
        try:
            entry.unlink()
        except OSError:
            pass
    if run_id:
        try:
            base.rmdir()
        except OSError:
            pass
    return problems


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie worker is dead
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
