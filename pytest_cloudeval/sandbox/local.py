"""The local sandbox: a fresh temporary folder per attempt and processes with rlimits and group kills.

It isolates files and cleans up processes, but not the network or the filesystem outside its folder;
use ``--sandbox=docker`` for real isolation.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..capture import CappedBuffer, pump
from ..errors import SandboxError
from .base import ExecResult, Sandbox

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


def _limits_preexec(memory_mb: int | None, cpu_s: float | None):  # type: ignore[no-untyped-def]
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if memory_mb:
            size = memory_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (size, size))
        if cpu_s:
            seconds = int(cpu_s) + 1
            resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 1))

    return apply


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
            preexec_fn=_limits_preexec(memory_mb, None),
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
    capabilities = frozenset({"process"})

    def __init__(self, spec, settings) -> None:  # type: ignore[no-untyped-def]
        super().__init__(spec, settings)
        self._root: Path | None = None
        self._groups: set[int] = set()

    def start(self) -> None:
        base = self.settings.work_root if self.settings.work_root else None
        try:
            if base:
                Path(base).mkdir(parents=True, exist_ok=True)
            self._root = Path(tempfile.mkdtemp(prefix=f"cloudeval-{self.spec.name[:40]}-", dir=base))
        except OSError as e:
            raise SandboxError(f"cannot create a sandbox folder: {e}") from e

    @property
    def root(self) -> Path:
        if self._root is None:
            raise SandboxError("sandbox used before start()")
        return self._root

    @property
    def workdir(self) -> str:
        return str(self.root)

    @property
    def host_root(self) -> Path | None:
        return self.root

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
        # Never the controller's whole environment (cloud keys, tokens): the basics, then the task's
        # variables and what --secrets-env/--pass-env named.
        full_env = base_environment(self.root)
        full_env.update(self.spec.env)
        if env:
            full_env.update(env)
        workdir = str(self._path(cwd)) if cwd else str(self.root)
        return run_process(
            argv,
            cwd=workdir,
            env=full_env,
            timeout=timeout,
            stdin=stdin,
            memory_mb=self.spec.memory_mb,
            cap_head=self.settings.output_cap_bytes // 2,
            cap_tail=self.settings.output_cap_bytes // 2,
            on_start=self._groups.add,
        )

    def write_file(self, path: str, data: bytes | str, mode: int = 0o644) -> None:
        target = self._path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data.encode() if isinstance(data, str) else data)
        target.chmod(mode)

    def read_file(self, path: str, max_bytes: int = 16 * 1024 * 1024) -> bytes:
        with open(self._path(path), "rb") as f:
            return f.read(max_bytes)

    def copy_in(self, src: Path, dest: str) -> None:
        target = self._path(dest)
        if src.is_dir():
            shutil.copytree(src, target, dirs_exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)

    def copy_out(self, src: str, dest: Path, max_bytes: int = 256 * 1024 * 1024) -> bool:
        source = self._path(src)
        if not source.exists():
            return False
        if source.is_dir():
            shutil.copytree(source, dest, dirs_exist_ok=True)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest)
        return True

    def close(self) -> None:
        for pgid in self._groups:
            kill_group(pgid)
        self._groups.clear()
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None
