"""The sandbox contract every backend implements (local processes, Docker, ...), and the agent's handle.

A sandbox is one isolated place for one task attempt. The contract is written on :class:`Sandbox`
(Args/Returns/Raises per method) and checked by the conformance suite shipped in
:mod:`pytest_cloudeval.testing.sandbox_conformance`, which CI runs against every built-in sandbox and
a third-party sandbox can run against its own.
"""

from __future__ import annotations

import enum
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..model import TaskEnvironment

if TYPE_CHECKING:
    from ..model import Task

DEFAULT_COPY_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_COPY_MAX_FILES = 10_000


class Capability(enum.Flag):
    """What a sandbox offers, so a task format can say what it needs (``TaskFormat.requires``)."""

    NONE = 0
    PROCESS = enum.auto()
    """Runs commands (every sandbox)."""
    CONTAINER = enum.auto()
    """Runs a task's own image (``TaskEnvironment.image`` or ``build_context``), with root inside it."""

    def names(self) -> list[str]:
        return [c.name.lower() for c in Capability if c.name and c.value and c in self]


@dataclass(frozen=True)
class ExecResult:
    """The end of one command: ``exit_code`` is None when it was killed for its timeout."""

    exit_code: int | None
    stdout: str
    stderr: str
    timed_out: bool = False
    duration_s: float = 0.0
    output_truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


@dataclass(frozen=True)
class HostLaunch:
    """How a process that the worker starts itself (not through ``exec``) becomes one of a sandbox's
    own, so that ``stop_processes`` and ``close`` find and kill it like any other (see
    :meth:`Sandbox.host_launch`)."""

    env: Mapping[str, str]
    """Variables the process must carry (the local sandbox's token)."""
    preexec: Callable[[], None]
    """Runs in the forked child before exec (joins the sandbox's cgroup); system calls only."""
    on_start: Callable[[int], None]
    """Told the pid of the new process, which leads its own process group."""
    adopt: Callable[[int], None] | None = None
    """``preexec``'s work done from the worker on the new process's pid, for a launcher that holds
    the process at a gate until then (and so can spawn it with ``vfork``); None: use ``preexec``."""


@dataclass
class CopyReport:
    """What a copy out of a sandbox brought back, and what it left out (over a cap, not a file)."""

    files: int = 0
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)
    """Relative paths left out, with the reason (at most ``SKIPPED_LISTED`` named; see ``skipped_count``)."""
    skipped_count: int = 0
    stopped_early: bool = False
    """The copy stopped reading (far over a cap): later entries are not even listed."""

    SKIPPED_LISTED: ClassVar[int] = 1000

    def skip(self, entry: str) -> None:
        self.skipped_count += 1
        if len(self.skipped) < self.SKIPPED_LISTED:
            self.skipped.append(entry)

    def left_out(self) -> list[str]:
        """Human-readable lines naming what is missing (empty when the copy is complete)."""
        lines = list(self.skipped)
        if self.skipped_count > len(self.skipped):
            lines.append(f"... and {self.skipped_count - len(self.skipped)} more")
        if self.stopped_early:
            lines.append("(stopped reading after the cap: later files not listed)")
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {"files": self.files, "bytes": self.bytes, "skipped": self.skipped_count,
                "stopped_early": self.stopped_early}


@dataclass(frozen=True)
class SandboxOptions:
    """The run's sandbox options (the same for every attempt): all a sandbox reads of the configuration.

    Built once from the run's settings by ``pytest_cloudeval.sandbox.options_from_settings``;
    sandboxes never see the whole Settings.
    """

    run_id: str = ""
    default_image: str = "cloudeval/runner:bookworm"
    """The image of tasks that bring none (container sandboxes)."""
    force_build: bool = False
    """Build a task's ``build_context`` even when its image is present."""
    output_cap_bytes: int = 1024 * 1024
    """Bytes of one command's output kept (head and tail halves)."""
    work_root: str | None = None
    """Host folder for local sandbox folders (None: the system's temporary folder)."""
    copy_max_files: int = DEFAULT_COPY_MAX_FILES
    copy_max_bytes: int = DEFAULT_COPY_MAX_BYTES


@dataclass(frozen=True)
class SandboxSpec:
    """Everything a sandbox needs to come up for one attempt of one task."""

    task: Task
    run_id: str
    name: str
    """Unique per attempt (repeats and retries never collide)."""
    image: str | None = None
    """An image to run as is (overrides ``environment``); None: the environment's, else the default."""
    cpus: float | None = None
    memory_mb: int | None = None
    storage_mb: int | None = None
    network: bool = True
    pids_limit: int | None = 512
    workdir: str | None = None
    """Where commands start; None: ``environment.workdir``, else the image's WORKDIR (or a fresh folder)."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Secrets and task variables: reach processes as environment, never a command line."""
    labels: Mapping[str, str] = field(default_factory=dict)
    user: str | None = None
    environment: TaskEnvironment = field(default_factory=TaskEnvironment)
    """The task's declared environment (image or build context, workdir, agent user)."""
    options: SandboxOptions = field(default_factory=SandboxOptions)


class Sandbox(ABC):
    """One task attempt's isolated environment.

    Lifecycle: ``start()`` once, any number of ``exec``/file calls, ``stop_processes()`` between
    phases, ``close()`` (idempotent, also after a failed start). Every method that talks to an engine
    has a timeout. Errors: the sandbox's own trouble (engine down, connection lost, image missing)
    raises :class:`~pytest_cloudeval.errors.SandboxError`, which the runner reports as a pytest
    *error*; a command that fails or times out is reported in its :class:`ExecResult` (the agent's
    business, a *failure*).

    Register a sandbox with the ``pytest_cloudeval_sandboxes`` hook (``{"name": loader}``).
    """

    name: ClassVar[str] = ""
    capabilities: ClassVar[Capability] = Capability.PROCESS
    """What tasks may rely on (see :class:`Capability`); a task whose format needs more is skipped."""

    prepares_ahead: ClassVar[bool] = False
    """``prepare()`` does real work: a worker then calls it for its *next* attempt while the current
    one runs (see ``prepare``); False (the default) and nothing is done ahead."""

    def __init__(self, spec: SandboxSpec) -> None:
        """Args: spec: the attempt's spec. Must not talk to any engine (``start`` does)."""
        self.spec = spec

    # -- session-wide lifecycle (class level, no-op by default) ------------------------------
    @classmethod
    def warm_up(cls, options: SandboxOptions) -> None:
        """Optional: make this process's first sandbox quicker (open a client, negotiate with the
        engine). Called once per process of an agent run, in a background thread, as soon as the
        class is loaded (while pytest collects), concurrently with anything else; it must create no
        sandbox and need no cleanup. Errors are ignored (the first real call reports them)."""

    @classmethod
    def session_teardown(cls) -> None:
        """Called once per process (controller and every worker) at the end of its session: wait,
        bounded, for work this process left running in the background (e.g. removals of closed
        sandboxes). Never raises; what is still left is for ``session_cleanup``."""

    @classmethod
    def session_cleanup(cls, run_id: str | None) -> None:
        """Remove whatever sandboxes of ``run_id`` (all runs if None) were left behind, also by
        processes that died (``kill -9``). Called on the controller at the end of every run and by
        ``pytest --cleanup``. Idempotent.

        Raises:
            SandboxError: something could not be removed (named in the message).
        """

    @classmethod
    def cleanup_skipped(cls) -> str | None:
        """Why ``session_cleanup`` would sweep nothing in this process (e.g. no cluster was named),
        for ``pytest --cleanup`` to say so instead of "swept"; None (the default): it sweeps."""
        return None

    # -- per attempt -------------------------------------------------------------------------
    def prepare(self) -> None:
        """Optional: do ahead of time the part of ``start()`` that depends on the spec alone (for a
        container: find or build the image, create and run it), so that ``start()`` is quick.

        Only called when ``prepares_ahead`` is True, at most once, before ``start()``, and possibly in
        another thread than every later call (the caller waits for it to return before calling
        anything else, ``close()`` included). It must not depend on any earlier attempt's outcome and
        must not put a task's hidden material (tests, answers) into the sandbox: the spec carries none,
        and formats copy that in at grading time as always. A prepared sandbox may never be used (the
        worker gets another item, the run stops): it is then ``close()``d like any other.

        Raises:
            SandboxError: it cannot come up. The caller closes this sandbox and starts a fresh one
                the normal way (whose ``start()`` reports the trouble, if it persists).
        """

    @abstractmethod
    def start(self) -> None:
        """Bring the sandbox up (for a container: find, pull or build its image, then run it).
        After a successful ``prepare()`` it only finishes what is left (possibly nothing).

        Raises:
            SandboxError: it cannot come up; the message names the image/task and what was tried.
        """

    @property
    @abstractmethod
    def workdir(self) -> str:
        """The folder, inside the sandbox, where commands start and relative paths resolve."""

    @property
    def host_root(self) -> Path | None:
        """The host folder that *is* the sandbox's workdir, when its files are the host's (local)."""
        return None

    def host_launch(self) -> HostLaunch | None:
        """How the worker may start a process of this sandbox on the host itself, or None (the
        default) when the sandbox's processes do not run on this host. The USACO judge uses it to
        judge in the worker without an extra interpreter per attempt.

        Raises:
            SandboxError: the sandbox is not started or already closed.
        """
        return None

    @abstractmethod
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
        """Run a command and wait for it.

        Args:
            cmd: argv, or a string run by ``bash -c``.
            timeout: seconds; on expiry every process the command started is killed.
            stdin: bytes fed to the command (None: end of input at once).
            env: variables added to the spec's ``env`` for this command.
            cwd: where it starts (relative to ``workdir``); default ``workdir``.
            user: run as this user (container sandboxes); default the sandbox's user.

        Returns:
            ExecResult with capped output (head and tail kept); ``exit_code`` 127 for a missing
            program; ``timed_out`` and ``exit_code`` None on timeout.

        Raises:
            SandboxError: the sandbox itself failed (also mid-command, e.g. a lost engine
                connection): never reported as the command's exit code.
        """

    @abstractmethod
    def write_file(self, path: str, data: bytes | str, mode: int = 0o644) -> None:
        """Write a file, creating its parents, owned by the sandbox's user.

        Args:
            path: absolute, or relative to ``workdir``.
            data: the content (str is UTF-8 encoded).
            mode: permission bits.

        Raises:
            SandboxError: the sandbox failed.
        """

    @abstractmethod
    def read_file(self, path: str, max_bytes: int = 16 * 1024 * 1024) -> bytes:
        """Read at most ``max_bytes`` of a file, following symbolic links.

        Raises:
            FileNotFoundError: no such file.
            IsADirectoryError: it is a folder.
            SandboxError: the sandbox failed.
        """

    @abstractmethod
    def make_dirs(self, paths: Sequence[str], mode: int = 0o755) -> None:
        """Create folders (and parents), owned by the sandbox's user, with ``mode``; existing
        folders get ``mode``. Relative paths are under ``workdir``.

        Raises:
            SandboxError: a folder cannot be created.
        """

    @abstractmethod
    def copy_in(self, src: Path, dest: str) -> None:
        """Copy a host file or folder to ``dest`` in the sandbox (a folder's contents go into dest).

        Raises:
            FileNotFoundError: ``src`` does not exist.
            SandboxError: the sandbox failed.
        """

    @abstractmethod
    def copy_out_report(self, src: str, dest: Path, max_bytes: int | None = None, *,
                        max_files: int | None = None,
                        only: Callable[[str], bool] | None = None) -> CopyReport | None:
        """Copy a sandbox file or folder to the host ``dest``, within caps, saying what was left out.

        Only regular files and folders come back (links, devices and names escaping ``dest`` are
        left out and listed).

        Args:
            src: the sandbox path (relative to ``workdir``).
            dest: the host path it becomes (a folder's contents go into it).
            max_bytes: total bytes copied at most (default ``options.copy_max_bytes``).
            max_files: files copied at most (default ``options.copy_max_files``).
            only: keeps a relative path (``a/b.txt``) when it returns True.

        Returns:
            The report, or None when ``src`` does not exist.

        Raises:
            SandboxError: the sandbox failed.
        """

    def copy_out(self, src: str, dest: Path, max_bytes: int | None = None) -> bool:
        """``copy_out_report`` without the report: False if ``src`` does not exist."""
        return self.copy_out_report(src, dest, max_bytes) is not None

    @abstractmethod
    def stop_processes(self) -> None:
        """Kill every process that commands of this sandbox started, also those that left their
        process group or session (``setsid``, daemons); the sandbox stays usable. The runner calls it
        between the agent and the judge, so nothing an agent left behind can touch the verdict.

        Raises:
            SandboxError: the processes could not be stopped (the attempt must not be judged).
        """

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """What this sandbox is, for the attempt's ``sandbox.json``: its kind, image, user, workdir and
        ``limits`` as applied (or why one could not be, e.g. ``"not applied (...): reason"``)."""

    @abstractmethod
    def close(self) -> None:
        """Stop and remove the sandbox and everything it started. Idempotent, never raises."""

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class SandboxHandle:
    """The small handle that agents acting *in* the sandbox receive.

    ``run(cmd, timeout=...)`` runs a command, ``read_file``/``write_file`` move text; every call is
    bounded by both its own timeout and the agent's remaining time.
    """

    def __init__(self, sandbox: Sandbox, deadline: float | None) -> None:
        self._sandbox = sandbox
        self._deadline = deadline

    @property
    def workdir(self) -> str:
        return self._sandbox.workdir

    def _bound(self, timeout: float | None) -> float | None:
        if self._deadline is None:
            return timeout
        left = max(0.0, self._deadline - time.monotonic())
        if left <= 0:
            raise TimeoutError("the agent's time is up")
        return left if timeout is None else min(timeout, left)

    def revoke(self) -> None:
        """End the agent's access (its phase is over): every later call raises TimeoutError."""
        self._deadline = 0.0

    def run(self, cmd: Sequence[str] | str, timeout: float | None = 60.0, stdin: str | bytes | None = None,
            cwd: str | None = None) -> ExecResult:
        data = stdin.encode() if isinstance(stdin, str) else stdin
        return self._sandbox.exec(cmd, timeout=self._bound(timeout), stdin=data, cwd=cwd)

    def read_file(self, path: str) -> str:
        self._bound(None)
        return self._sandbox.read_file(path).decode("utf-8", errors="replace")

    def write_file(self, path: str, content: str | bytes) -> None:
        self._bound(None)
        self._sandbox.write_file(path, content)
