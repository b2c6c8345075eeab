"""The local sandbox: a fresh temporary folder per attempt, processes in a cgroup (or marked with a
token) so that all of them die with the attempt, a memory limit, and group kills on timeout.

It keeps processes from outliving their attempt, but isolates neither the network nor the host's
filesystem outside its folder (see the README); use ``--sandbox=docker`` for real isolation.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..capture import CappedBuffer, pump
from ..errors import SandboxError
from . import local_jail
from .base import Capability, CopyReport, ExecResult, HostLaunch, Sandbox, SandboxOptions, SandboxSpec

BASE_ENV_NAMES = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM", "USER", "LOGNAME", "SHELL", "TMPDIR")
"""All a local command inherits from the controller; secrets come only from --secrets-env/--pass-env."""


def base_environment(home: Path) -> dict[str, str]:
    """A minimal environment: the basics above, HOME in the sandbox folder, nothing else of ours."""
    env = {name: os.environ[name] for name in BASE_ENV_NAMES if name in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.setdefault("LANG", "C.UTF-8")
    env["HOME"] = str(home)
    return env


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _join_cgroups(pid: int, cgroups: Sequence[str]) -> None:
    data = str(pid).encode()
    for procs in cgroups:
        try:
            fd = os.open(procs, os.O_WRONLY)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        except OSError:
            pass


def _limit_values(memory_mb: int | None, cpu_s: float | None) -> list[tuple[int, int, int]]:
    limits = [(resource.RLIMIT_CORE, 0, 0)]
    if memory_mb:
        size = memory_mb * 1024 * 1024
        limits.append((resource.RLIMIT_AS, size, size))
    if cpu_s:
        seconds = int(cpu_s) + 1
        limits.append((resource.RLIMIT_CPU, seconds, seconds + 1))
    return limits


def _limits_preexec(memory_mb: int | None, cpu_s: float | None,  # type: ignore[no-untyped-def]
                    cgroups: Sequence[str] = ()):
    limits = _limit_values(memory_mb, cpu_s)

    def apply() -> None:
        # before exec: nothing the command starts is outside the cgroup
        _join_cgroups(os.getpid(), cgroups)
        for kind, soft, hard in limits:
            resource.setrlimit(kind, (soft, hard))

    return apply


def _limits_adopt(memory_mb: int | None, cpu_s: float | None,
                  cgroups: Sequence[str] = ()) -> Callable[[int], None]:
    """``_limits_preexec`` done from this process, on a child held at a gate until it returns."""
    limits = _limit_values(memory_mb, cpu_s)

    def adopt(pid: int) -> None:
        _join_cgroups(pid, cgroups)
        for kind, soft, hard in limits:
            resource.prlimit(pid, kind, (soft, hard))

    return adopt


def run_process(
    argv: Sequence[str],
    *,
    cwd: str,
    env: Mapping[str, str],
    timeout: float | None,
    stdin: bytes | None = None,
    memory_mb: int | None = None,
    cap_head: int = 256 * 1024,
    cap_tail: int = 256 * 1024,
    on_start=None,  # type: ignore[no-untyped-def]
    cgroups: Sequence[str] = (),
) -> ExecResult:
    """Run argv in its own session with bounded output; kill the whole group on timeout or exit."""
    out, err = CappedBuffer(cap_head, cap_tail), CappedBuffer(cap_head, cap_tail)
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=_limits_preexec(memory_mb, None, cgroups),
        )
    except OSError as e:
        return ExecResult(exit_code=127, stdout="", stderr=f"cannot start {argv[0]!r}: {e}")
    if on_start is not None:
        on_start(proc.pid)
    assert proc.stdout is not None and proc.stderr is not None
    threads = [pump(proc.stdout, out), pump(proc.stderr, err)]
    if stdin is not None:
        assert proc.stdin is not None
        try:
            proc.stdin.write(stdin)
            proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        # The command's own children die with it: nothing started by an exec outlives it unless
        # it left the process group on purpose (setsid), and close() sweeps those.
        kill_group(proc.pid)
        proc.wait()
    for t in threads:
        t.join(timeout=5)
    return ExecResult(
        exit_code=None if timed_out else proc.returncode,
        stdout=out.text(),
        stderr=err.text(),
        timed_out=timed_out,
        duration_s=time.monotonic() - started,
        output_truncated=out.truncated or err.truncated,
    )


class LocalSandbox(Sandbox):
    """Runs commands as local processes in a fresh temporary folder removed at close."""

    name = "local"
    capabilities = Capability.PROCESS

    def __init__(self, spec: SandboxSpec) -> None:
        super().__init__(spec)
        self._root: Path | None = None
        self._groups: set[int] = set()
        self._jail: local_jail.ProcessJail | None = None
        self._closed = False

    @classmethod
    def session_cleanup(cls, run_id: str | None) -> None:
        """Kill what local sandboxes of killed workers left running and remove their folders."""
        problems = local_jail.sweep(run_id)
        if problems:
            raise SandboxError("; ".join(problems[:3]))

    def start(self) -> None:
        options: SandboxOptions = self.spec.options
        base = options.work_root or None
        try:
            if base:
                Path(base).mkdir(parents=True, exist_ok=True)
            self._root = Path(tempfile.mkdtemp(prefix=f"cloudeval-{self.spec.name[:40]}-", dir=base))
        except OSError as e:
            raise SandboxError(f"cannot create a sandbox folder: {e}") from e
        self._jail = local_jail.ProcessJail(self.spec.run_id or "run", self._root.name, self._root,
                                            self.spec.memory_mb)

    @property
    def root(self) -> Path:
        if self._closed:
            raise SandboxError("sandbox used after close()")
        if self._root is None:
            raise SandboxError("sandbox used before start()")
        return self._root

    @property
    def workdir(self) -> str:
        return str(self.root)

    @property
    def host_root(self) -> Path | None:
        return self.root

    def host_launch(self) -> HostLaunch | None:
        """The sandbox's token, a preexec that joins its cgroup (and sets the per-process memory limit
        where no cgroup carries one), and its list of process groups to kill. None for a subclass that
        changes how commands run (its own ``exec``): what it wraps them in must wrap the judge's too."""
        if type(self).exec is not LocalSandbox.exec:
            return None
        jail = self._jail
        if jail is None:
            raise SandboxError("sandbox used before start()" if not self._closed else "sandbox used after close()")
        memory_mb = None if jail.memory_applied else self.spec.memory_mb
        return HostLaunch(env={local_jail.TOKEN_VAR: jail.token},
                          preexec=_limits_preexec(memory_mb, None, jail.join_files()),
                          on_start=self._groups.add,
                          adopt=_limits_adopt(memory_mb, None, jail.join_files()) if hasattr(resource, "prlimit")
                          else None)

    def _path(self, path: str) -> Path:
        p = Path(path)
        return p if p.is_absolute() else self.root / p

    def exec(
        self,
        cmd: Sequence[str] | str,
        *,
        timeout: float | None,
        stdin: bytes | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        user: str | None = None,
    ) -> ExecResult:
        argv = ["bash", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        jail = self._jail
        if jail is None:
            raise SandboxError("sandbox used before start()" if not self._closed else "sandbox used after close()")
        # Never the controller's whole environment (cloud keys, tokens): the basics, then the task's
        # variables and what --secrets-env/--pass-env named.
        full_env = base_environment(self.root)
        full_env.update(self.spec.env)
        if env:
            full_env.update(env)
        full_env[local_jail.TOKEN_VAR] = jail.token
        workdir = str(self._path(cwd)) if cwd else str(self.root)
        cap = self.spec.options.output_cap_bytes // 2
        return run_process(
            argv,
            cwd=workdir,
            env=full_env,
            timeout=timeout,
            stdin=stdin,
            # One limit for all the sandbox's processes in its cgroup; else per process (address space).
            memory_mb=None if jail.memory_applied else self.spec.memory_mb,
            cap_head=cap,
            cap_tail=cap,
            on_start=self._groups.add,
            cgroups=jail.join_files(),
        )

    def write_file(self, path: str, data: bytes | str, mode: int = 0o644) -> None:
        target = self._path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data.encode() if isinstance(data, str) else data)
        target.chmod(mode)

    def read_file(self, path: str, max_bytes: int = 16 * 1024 * 1024) -> bytes:
        with open(self._path(path), "rb") as f:
            return f.read(max_bytes)

    def make_dirs(self, paths: Sequence[str], mode: int = 0o755) -> None:
        for path in paths:
            target = self._path(path)
            try:
                target.mkdir(parents=True, exist_ok=True)
                target.chmod(mode)
            except OSError as e:
                raise SandboxError(f"cannot create {target}: {e}") from e

    def copy_in(self, src: Path, dest: str) -> None:
        target = self._path(dest)
        if not src.exists():
            raise FileNotFoundError(f"{src} does not exist")
        if src.is_dir():
            shutil.copytree(src, target, dirs_exist_ok=True, symlinks=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)

    def copy_out_report(self, src: str, dest: Path, max_bytes: int | None = None, *,
                        max_files: int | None = None,
                        only: Callable[[str], bool] | None = None) -> CopyReport | None:
        source = self._path(src)
        if not os.path.lexists(source):
            return None
        limit_bytes = self.spec.options.copy_max_bytes if max_bytes is None else max_bytes
        limit_files = self.spec.options.copy_max_files if max_files is None else max_files
        report = CopyReport()
        if not source.is_dir() or source.is_symlink():
            _copy_one(source, dest, source.name, report, limit_bytes, limit_files)
            return report
        dest.mkdir(parents=True, exist_ok=True)
        for folder, dirs, files in os.walk(source):  # does not follow links to folders
            dirs.sort()
            base = Path(folder)
            rel_base = base.relative_to(source)
            for name in dirs:
                rel = (rel_base / name).as_posix()
                if (base / name).is_symlink():
                    report.skip(f"{rel} (not a regular file)")
                elif only is None or only(rel):
                    (dest / rel).mkdir(parents=True, exist_ok=True)
            for name in sorted(files):
                rel = (rel_base / name).as_posix()
                if only is not None and not only(rel):
                    continue
                _copy_one(base / name, dest / rel, rel, report, limit_bytes, limit_files)
        return report

    def stop_processes(self) -> None:
        jail = self._jail
        if jail is None:
            return
        for pgid in self._groups:
            kill_group(pgid)
        self._groups.clear()
        if not jail.kill_all():
            raise SandboxError(f"processes of sandbox {self.spec.name} survived SIGKILL")

    def describe(self) -> dict[str, Any]:
        jail = self._jail
        limits: dict[str, Any] = {}
        if self.spec.memory_mb:
            limits["memory_mb"] = self.spec.memory_mb
            if jail is not None:
                limits["memory_by"] = "cgroup (all processes)" if jail.memory_applied else "RLIMIT_AS (per process)"
        limits["network"] = "host (not isolated)"
        return {"sandbox": "local", "root": str(self._root) if self._root else None, "workdir": str(self._root),
                "processes": ("cgroup + environment token" if jail is not None and jail.groups
                              else "environment token"),
                "notes": list(jail.notes) if jail is not None else [], "limits": limits,
                "copy_caps": {"max_files": self.spec.options.copy_max_files,
                              "max_bytes": self.spec.options.copy_max_bytes}}

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for pgid in self._groups:
            kill_group(pgid)
        self._groups.clear()
        if self._jail is not None:
            self._jail.close()
            self._jail = None
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)


def _copy_one(source: Path, dest: Path, rel: str, report: CopyReport, max_bytes: int, max_files: int) -> None:
    if source.is_symlink() or not source.is_file():
        report.skip(f"{rel} (not a regular file)")
        return
    size = source.stat().st_size
    if report.files >= max_files:
        report.skip(f"{rel} (over the {max_files}-file cap)")
        return
    if report.bytes + size > max_bytes:
        report.skip(f"{rel} ({size} bytes, over the {max_bytes}-byte cap)")
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, dest)
    os.chmod(dest, source.stat().st_mode & 0o755 | 0o600)
    report.files += 1
    report.bytes += size
