"""The Docker sandbox: one container per task attempt, with limits the engine enforces.

A container runs ``sleep infinity`` under an init process and every command is a ``docker exec``;
files move only through the engine's archive API (no bind mounts), so an engine on another host
(a cloud VM) works the same. Containers carry the label ``cloudeval=true`` and the run's id, so a
sweep at the end of the run and ``pytest --cleanup`` find whatever an interrupted run left behind.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import io
import posixpath
import tarfile
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import docker.errors

from ..capture import CappedBuffer
from ..errors import SandboxError
from . import docker_archive as archive
from . import docker_engine as engine
from . import docker_images as images
from .base import Capability, CopyReport, ExecResult, Sandbox, SandboxOptions, SandboxSpec

RUNNER_USER = "agent"
"""The non-root user of the runner image: agents and judges of tasks that bring no image run as it."""
ROOT_NAMES = ("root", "0", "0:0")
GO_MODE_DIR = 1 << 31
GO_MODE_SYMLINK = 1 << 27

STOP_SCRIPT = r"""
# Keep PID 1 (init), the container's main process (the oldest child of init), this script and,
# when $1 is given, every process started before it (the image's entrypoint services); kill every
# other process, again and again until a round finds nothing (forks racing the kills).
since=${1:-}
self=$$
main=""; oldest=""
for d in /proc/[0-9]*; do
  read -r stat < "$d/stat" 2>/dev/null || continue
  rest=${stat##*) }; set -- $rest
  if [ "$2" = 1 ] && { [ -z "$oldest" ] || [ "${20}" -lt "$oldest" ]; }; then oldest=${20}; main=${d#/proc/}; fi
done
round=0
while [ $round -lt 200 ]; do
  found=0
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    [ "$p" = 1 ] || [ "$p" = "$self" ] || [ "$p" = "$PPID" ] || [ "$p" = "$main" ] && continue
    read -r stat < "$d/stat" 2>/dev/null || continue
    rest=${stat##*) }; set -- $rest
    [ "$1" = Z ] && continue
    [ "$2" = "$self" ] && continue
    [ -n "$since" ] && [ "${20}" -le "$since" ] && continue
    kill -9 "$p" 2>/dev/null && found=1
  done
  [ $found = 0 ] && exit 0
  round=$((round + 1))
done
echo "processes keep appearing" >&2
exit 1
"""

BASELINE_SCRIPT = r"""read -r stat < /proc/self/stat; rest=${stat##*) }; set -- $rest; echo "${20}" """
"""Prints this exec's start time (clock ticks since boot): processes older than it are the image's."""

UNTAR_MAX_BYTES = 32 * 1024 * 1024
"""Files written before a command go with it (unpacked by ``tar`` in the exec) up to this size."""

SNAPSHOT_MAX_BYTES = 8 * 1024 * 1024
"""``exec_then_snapshot`` keeps a tar of up to this size in memory; a larger one is fetched afresh."""
SNAPSHOT_FAILED = "\x1ecloudeval-snapshot-failed\x1e"
NO_TAR = "\x1ecloudeval-no-tar\x1e"
SNAPSHOT_SCRIPT = (
    # $1: the folder to archive, relative to /; $2: how many bytes of archive at most; the rest: the
    # command. The command's standard output joins its standard error, and descriptor 3 (this exec's
    # standard output) is closed for it and all it starts: nothing of the command can write into the
    # archive's stream. ``head`` ends a larger archive early (tar then fails: the copy asks the engine),
    # so a huge folder costs neither the engine's time nor the command's timeout.
    'src=$1; cap=$2; shift 2; exec 3>&1 1>&2; "$@" 3>&-; rc=$?; '
    'if ! command -v tar >/dev/null 2>&1; then printf "\036cloudeval-no-tar\036" >&2; '
    'else { tar -cf - -C / -- "$src" 2>/dev/null || printf "\036cloudeval-snapshot-failed\036" >&2; } '
    '| head -c "$cap" >&3; fi; '
    'exit "$rc"')

# uid/gid of a user name per image, learnt once per process (one exec in the first container).
_owner_cache: dict[tuple[str, str], archive.Owner | None] = {}
_untar_works: dict[str, bool] = {}
_tar_works: dict[str, bool] = {}


class DockerSandbox(Sandbox):
    """One container per attempt; see the module docstring. Use as a context manager or start/close."""

    name = "docker"
    capabilities = Capability.PROCESS | Capability.CONTAINER
    prepares_ahead = True
    """``prepare()`` runs the container (image, create, start, owner lookup) before the attempt."""
    redacts_copies = True
    """``copy_out_report`` takes a ``redactor`` and redacts while copying (see tasks/harbor_exec.py)."""

    def __init__(self, spec: SandboxSpec) -> None:
        super().__init__(spec)
        env = spec.environment
        self._own_image = bool(spec.image or env.image or env.build_context)
        """The task brings its image (run as its user, root by default) or takes the runner image."""
        self.image = spec.image or (None if self._own_image else spec.options.default_image)
        self._wanted_workdir = spec.workdir or env.workdir
        self.container_id: str | None = None
        self.user: str | None = spec.user or env.agent_user
        self.owner = archive.Owner()
        self.limits: dict[str, Any] = {}
        """The limits as applied (or why one could not be), for the task's records."""
        self._workdir = self._wanted_workdir or "/"
        self._known_dirs: set[str] = {"/", "/tmp"}
        self._pending: archive.PendingArchive | None = None
        self._closed = False
        self._baseline: str = ""
        """Start time (ticks) before which processes are the image's own (entrypoint services)."""
        self._up = False
        self.created_at: str | None = None
        """When the container was created (UTC, ISO 8601), for sandbox.json."""
        self.prepared = False
        """The container was brought up by ``prepare()`` (ahead of the attempt)."""
        self.default_user_is_root = False
        """Commands run as root unless a ``user`` is given (known once started): ``user="0"`` is no
        other user, so a format may fold a root step into one command (see tasks/harbor_exec.py)."""
        self._snapshot: tuple[str, bytes] | None = None
        """(folder, tar) that ``exec_then_snapshot`` brought back, until anything changes the container."""

    # -- session-wide -----------------------------------------------------------------------
    @classmethod
    def warm_up(cls, options: SandboxOptions) -> None:
        """The SDK's client, with the API version negotiated (one engine call), before the first task."""
        engine.client()

    @classmethod
    def session_teardown(cls) -> None:
        """Wait (bounded) for the removals of closed containers still running in the background."""
        try:
            wait_for_removals()
        except Exception:  # noqa: BLE001 - the label sweep removes what is left
            pass

    @classmethod
    def session_cleanup(cls, run_id: str | None) -> None:
        """Force-remove containers labeled with ``run_id`` (every cloudeval container if None)."""
        removed, failures = sweep(run_id)
        if failures:
            raise SandboxError(f"could not remove {len(failures)} container(s): {'; '.join(failures[:3])}")

    # -- lifecycle --------------------------------------------------------------------------
    def prepare(self) -> None:
        """Everything ``start()`` does, ahead of the attempt: only the spec is needed; no file of the
        task goes in (the formats copy those in at their usual moment)."""
        self._bring_up()
        self.prepared = True

    def start(self) -> None:
        if not self._up:
            self._bring_up()

    def _bring_up(self) -> None:
        if self._closed:
            raise SandboxError("sandbox started after close()")
        self._up = True  # also when it fails: close() removes whatever got created, never a second try
        api = engine.client()
        if self.image is None:
            self.image = images.resolve(self.spec.environment, self.spec.task.task_id,
                                        self.spec.options.default_image, self.spec.options.force_build)
        image = engine.inspect_image(self.image)
        config = image.get("Config") or {}
        if not self._wanted_workdir:
            self._workdir = config.get("WorkingDir") or "/"
        if self.user is None:
            if not self._own_image:
                self.user = RUNNER_USER  # dropped below if the image has no such user
            elif config.get("User"):
                self.user = str(config["User"])
        self._known_dirs.add(self._workdir)
        labels = dict(self.spec.labels)
        labels["cloudeval"] = "true"
        labels.setdefault("cloudeval.run", self.spec.run_id)
        host_config = self._host_config(api)
        create = dict(image=self.image, command=["sleep", "infinity"], name=self.spec.name, labels=labels,
                      working_dir=self._wanted_workdir or None, host_config=host_config)
        self.created_at = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")
        try:
            self.container_id = self._create(api, create)
        except SandboxError as e:
            if self.spec.storage_mb and "storage-opt" in str(e):
                # overlay2 on ext4/xfs without pquota cannot limit a container's disk: say so, go on.
                _storage_unsupported.add(engine.engine_address())
                self.limits["storage_mb"] = f"not applied ({self.spec.storage_mb} MB asked): {_storage_reason(e)}"
                create["host_config"] = self._host_config(api)
                self.container_id = self._create(api, create)
            else:
                raise
        engine.with_retries("start container", lambda: api.start(self.container_id))
        asked = self.user
        self._resolve_owner(api)
        self.default_user_is_root = self.user is None and (
            asked in ROOT_NAMES or str(config.get("User") or "") in ("", *ROOT_NAMES))
        if config.get("Entrypoint"):
            # Services the image's entrypoint started are the task's, not the agent's: stop_processes
            # keeps whatever runs before this point.
            mark = engine.run_exec(api, self.ref, ["sh", "-c", BASELINE_SCRIPT], timeout=30, user="0")
            if mark.ok and mark.stdout.strip().isdigit():
                self._baseline = mark.stdout.strip()
        if self.user and self._wanted_workdir:
            # The engine creates a missing working directory as root: the sandbox user's instead.
            self.make_dirs([self._wanted_workdir])

    def _host_config(self, api: Any) -> Any:
        spec = self.spec
        options: dict[str, Any] = {"init": True, "network_mode": "bridge" if spec.network else "none"}
        self.limits["network"] = options["network_mode"]
        if spec.cpus:
            options["nano_cpus"] = int(spec.cpus * 1e9)
            self.limits["cpus"] = spec.cpus
        if spec.memory_mb:
            options["mem_limit"] = f"{spec.memory_mb}m"
            options["memswap_limit"] = f"{spec.memory_mb}m"  # no swap beyond the limit
            self.limits["memory_mb"] = spec.memory_mb
        if spec.pids_limit:
            options["pids_limit"] = spec.pids_limit
            self.limits["pids_limit"] = spec.pids_limit
        if spec.storage_mb:
            if engine.engine_address() in _storage_unsupported:
                self.limits.setdefault("storage_mb", f"not applied ({spec.storage_mb} MB asked): the "
                                                     "engine's storage driver cannot limit disk size")
            else:
                options["storage_opt"] = {"size": f"{spec.storage_mb}M"}
                self.limits["storage_mb"] = spec.storage_mb
        return api.create_host_config(**options)

    def _create(self, api: Any, create: Mapping[str, Any]) -> str:
        try:
            reply = engine.with_retries("create container", lambda: api.create_container(**create),
                                        passthrough=(docker.errors.NotFound,))
        except docker.errors.NotFound as e:
            engine.forget_image(str(self.image))
            raise SandboxError(f"image {self.image} not found: run scripts/setup-docker.sh or pass "
                               f"--sandbox-image ({e.explanation})") from e
        except SandboxError as e:
            cause = e.__cause__
            if isinstance(cause, docker.errors.APIError) and cause.status_code == 409:
                # A retried create whose first try went through: names are unique per attempt.
                try:
                    found = api.inspect_container(self.spec.name)
                except docker.errors.DockerException:
                    raise e from None
                if (found.get("Config", {}).get("Labels") or {}).get("cloudeval.run") == self.spec.run_id:
                    return str(found["Id"])
            raise
        return str(reply["Id"])

    def _resolve_owner(self, api: Any) -> None:
        """Learn the uid/gid that files put into the container get, so the sandbox user owns them."""
        user = self.user
        if not user or user in ROOT_NAMES:
            self.user = None if user in ROOT_NAMES else user
            return
        key = (str(self.image), user)
        numeric = user.split(":")
        if all(part.isdigit() for part in numeric):  # "1000" or "1000:1000": no lookup needed
            _owner_cache[key] = archive.Owner(int(numeric[0]), int(numeric[-1]))
        if key not in _owner_cache:
            name = user.split(":")[0]
            result = engine.run_exec(api, self.ref, ["sh", "-c", 'id -u "$0" && id -g "$0"', name],
                                     timeout=30, user="0")
            numbers = result.stdout.split()
            if result.ok and len(numbers) == 2 and all(n.isdigit() for n in numbers):
                _owner_cache[key] = archive.Owner(int(numbers[0]), int(numbers[1]))
            else:
                _owner_cache[key] = None
        owner = _owner_cache[key]
        if owner is None:
            if self.spec.user is None and not self._own_image:
                self.user = None  # a custom --sandbox-image without the runner's user: its default
                return
            raise SandboxError(f"user {user!r} does not exist in image {self.image}")
        self.owner = owner

    @property
    def ref(self) -> str:
        if self._closed:
            raise SandboxError("sandbox used after close()")
        if self.container_id is None:
            raise SandboxError("sandbox used before start()")
        return self.container_id

    @property
    def workdir(self) -> str:
        return self._workdir

    def describe(self) -> dict[str, Any]:
        """Name, image, user and the limits as applied, for the task's result folder."""
        return {"sandbox": "docker", "container": self.spec.name, "id": self.container_id, "image": self.image,
                "user": self.user or "(image default)", "workdir": self._workdir, "limits": dict(self.limits),
                "created_at": self.created_at, "prepared_ahead": self.prepared,
                "copy_caps": {"max_files": self.spec.options.copy_max_files,
                              "max_bytes": self.spec.options.copy_max_bytes}}

    def stop_processes(self) -> None:
        """Kill, as root, every process in the container but its init, its main process, what the
        image's entrypoint started before the first command, and this exec."""
        self.flush()
        result = engine.run_exec(engine.client(), self.ref, ["sh", "-c", STOP_SCRIPT, "sh", self._baseline],
                                 timeout=60, user="0")
        if not result.ok:
            raise SandboxError(f"cannot stop the processes in container {self.spec.name}: exit {result.exit_code} "
                               f"{(result.stderr or result.stdout).strip()[-300:]}")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._pending is not None:
            self._pending.discard()
            self._pending = None
        try:
            api = engine.client(engine.QUICK_TIMEOUT_S)
        except Exception:  # noqa: BLE001 - the end-of-run sweep removes it then
            return
        # Removal (~0.15 s) overlaps the next task; the end-of-run sweep waits for it.
        _remove_soon(api, self.container_id or self.spec.name)

    # -- commands ---------------------------------------------------------------------------
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
        return self._run(["bash", "-c", cmd] if isinstance(cmd, str) else list(cmd), timeout=timeout, stdin=stdin,
                         env=env, cwd=cwd, user=user)

    def exec_then_snapshot(
        self,
        cmd: Sequence[str],
        *,
        src: str,
        timeout: float | None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        user: str | None = None,
    ) -> ExecResult:
        """``exec`` of ``cmd`` as root, then, in the same engine call, a tar of the folder ``src`` that
        the next ``copy_out_report(src)`` reads instead of asking the engine for the archive (one
        engine call less: ~80 ms of machine CPU per attempt). The command's standard output and
        error come back merged, as ``stdout``. Where that cannot hold (another user, an image without
        ``tar``, a tar over ``SNAPSHOT_MAX_BYTES``, a timeout, a failed or malformed tar), the copy
        asks the engine as before. The tar is made by the container's ``tar`` after the command: no
        more trusted than the command itself, which runs as root in the same container and could
        write the same files; the format's verdict already rests on that (see tasks/harbor_exec.py).
        """
        source = self._abs(src)
        if (not (user in ROOT_NAMES or (user is None and self.default_user_is_root))
                or not _tar_works.get(str(self.image), True) or source == "/"):
            return self.exec(list(cmd), timeout=timeout, env=env, cwd=cwd, user=user)
        sink = CappedBuffer(SNAPSHOT_MAX_BYTES, 0)
        result = self._run(["sh", "-c", SNAPSHOT_SCRIPT, "sh", source.lstrip("/"), str(SNAPSHOT_MAX_BYTES + 1), *cmd],
                           timeout=timeout, env=env, cwd=cwd, user=user, stdout_sink=sink)
        output = result.stderr
        if NO_TAR in output:
            _tar_works[str(self.image)] = False
        complete = not (result.timed_out or sink.truncated or NO_TAR in output or SNAPSHOT_FAILED in output)
        if complete and sink.total:
            self._snapshot = (source, sink.getvalue())
        return dataclasses.replace(result, stdout=output.replace(NO_TAR, "").replace(SNAPSHOT_FAILED, ""),
                                   stderr="")

    def _run(
        self,
        argv: list[str],
        *,
        timeout: float | None,
        stdin: bytes | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        user: str | None = None,
        stdout_sink: CappedBuffer | None = None,
    ) -> ExecResult:
        self._snapshot = None  # the command may change what it holds
        full_env = dict(self.spec.env)
        if env:
            full_env.update(env)
        half = max(1024, self.spec.options.output_cap_bytes // 2)
        options: dict[str, Any] = dict(timeout=timeout, env=full_env, user=user or self.user, cap_head=half,
                                       cap_tail=half, workdir=self._abs(cwd) if cwd else self._workdir,
                                       stdout_sink=stdout_sink)
        pending = self._pending
        if (pending is not None and stdin is None and self._same_user(user)
                and options["workdir"] in self._known_dirs  # it must exist before the files arrive
                and _untar_works.get(str(self.image), True) and pending.size() <= UNTAR_MAX_BYTES):
            # The files written since the last command travel with this one (one engine call less).
            self._pending = None
            try:
                data = pending.finish().read()
            finally:
                pending.discard()
            try:
                result = engine.run_exec(engine.client(), self.ref, argv, stdin=data, untar=True, **options)
            except engine.UntarFailed as e:
                if "not found" in str(e):
                    _untar_works[str(self.image)] = False  # no tar in this image
                self._send(io.BytesIO(data), pending.parents)
            else:
                self._known_dirs.update(pending.parents)
                return result
        self.flush()
        return engine.run_exec(engine.client(), self.ref, argv, stdin=stdin, **options)

    def _same_user(self, user: str | None) -> bool:
        """``user`` is the sandbox's own user (pending files unpacked by it get the same owner)."""
        return (user is None or user == self.user
                or (self.default_user_is_root and user in ROOT_NAMES))

    # -- files ------------------------------------------------------------------------------
    def _abs(self, path: str) -> str:
        return posixpath.normpath(path if path.startswith("/") else posixpath.join(self._workdir, path))

    def _pending_archive(self) -> archive.PendingArchive:
        if self._pending is None:
            self._pending = archive.PendingArchive()
        return self._pending

    def flush(self) -> None:
        """Send the files written since the last command, in one engine call."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        try:
            self._send(pending.finish(), pending.parents)
        finally:
            pending.discard()

    def _send(self, tar: Any, parents: set[str]) -> None:
        """Upload a tar for ``/`` through the engine's archive API."""
        missing = sorted(p for p in parents if p not in self._known_dirs)
        if missing and self.user:
            # The engine would create missing parents as root: make them the user's first.
            self._mkdirs(missing)
        api = engine.client()

        def put() -> Any:
            tar.seek(0)
            return api.put_archive(self.ref, "/", tar)

        engine.with_retries("copy into container", put)
        self._known_dirs.update(parents)

    def _mkdirs(self, paths: Sequence[str]) -> None:
        """``mkdir -p`` as the sandbox user; where it may not, as root, handing new folders over."""
        api = engine.client()
        result = engine.run_exec(api, self.ref, ["mkdir", "-p", "--", *paths], timeout=30, user=self.user)
        if not result.ok:
            script = ('owner="$1"; shift; for d in "$@"; do [ -d "$d" ] && continue; '
                      'mkdir -p -- "$d" && chown "$owner" "$d" || exit 1; done')
            result = engine.run_exec(api, self.ref, ["sh", "-c", script, "sh", f"{self.owner.uid}:{self.owner.gid}",
                                                     *paths], timeout=30, user="0")
        if not result.ok:
            raise SandboxError(f"cannot create {', '.join(paths)} in the container: {result.stderr.strip()[-300:]}")
        self._known_dirs.update(paths)

    def make_dirs(self, paths: Sequence[str], mode: int = 0o755) -> None:
        # Sent with the next batch of files (or the next command).
        self._snapshot = None
        pending = self._pending_archive()
        for path in paths:
            pending.add_dir(self._abs(path), mode, self.owner)
        self._known_dirs.update(self._abs(p) for p in paths)

    def write_file(self, path: str, data: bytes | str, mode: int = 0o644) -> None:
        payload = data.encode() if isinstance(data, str) else bytes(data)
        self._snapshot = None
        self._pending_archive().add_file(self._abs(path), payload, mode, self.owner)

    def read_file(self, path: str, max_bytes: int = 16 * 1024 * 1024) -> bytes:
        self.flush()
        target = self._abs(path)
        api = engine.client()

        def fetch(where: str) -> tuple[Any, dict[str, Any]]:
            return engine.with_retries("copy from container", lambda: api.get_archive(self.ref, where),
                                       passthrough=(docker.errors.NotFound,))

        for _ in range(8):  # follow symbolic links (the archive holds the link, not its target)
            try:
                stream, stat = fetch(target)
            except docker.errors.NotFound:
                raise FileNotFoundError(f"{target} does not exist in the sandbox") from None
            mode = int(stat.get("mode", 0))
            if mode & GO_MODE_DIR:
                _close_stream(stream)
                raise IsADirectoryError(f"{target} is a folder")
            if mode & GO_MODE_SYMLINK and stat.get("linkTarget"):
                _close_stream(stream)
                target = posixpath.join(posixpath.dirname(target), stat["linkTarget"])
                continue
            try:
                _member, content = archive.read_single(stream, max_bytes)
            finally:
                _close_stream(stream)
            return content
        raise FileNotFoundError(f"{path}: too many levels of symbolic links")

    def copy_in(self, src: Path, dest: str) -> None:
        target = self._abs(dest)
        if not src.exists():
            raise FileNotFoundError(f"{src} does not exist")
        self._snapshot = None
        self._pending_archive().add_host_path(src, target, self.owner)

    def copy_out_report(self, src: str, dest: Path, max_bytes: int | None = None, *,
                        max_files: int | None = None,
                        only: Callable[[str], bool] | None = None, redactor: Any = None) -> CopyReport | None:
        # ``redactor`` (this sandbox's addition, see ``redacts_copies``): names and contents are
        # redacted as the archive streams in, before any file gets its name.
        self.flush()
        limit_bytes = self.spec.options.copy_max_bytes if max_bytes is None else max_bytes
        limit_files = self.spec.options.copy_max_files if max_files is None else max_files
        source = self._abs(src)
        snapshot, self._snapshot = self._snapshot, None
        if (snapshot is not None and snapshot[0] == source
                and _is_folder_archive(snapshot[1], posixpath.basename(source))):
            dest.mkdir(parents=True, exist_ok=True)
            return archive.extract_archive(iter([snapshot[1]]), posixpath.basename(source), dest, limit_bytes,
                                           limit_files, only=only, redactor=redactor)
        api = engine.client()
        try:
            stream, stat = engine.with_retries("copy from container", lambda: api.get_archive(self.ref, source),
                                               passthrough=(docker.errors.NotFound,))
        except docker.errors.NotFound:
            return None
        root_name = stat.get("name") or posixpath.basename(source.rstrip("/")) or "/"
        try:
            if int(stat.get("mode", 0)) & GO_MODE_DIR:
                dest.mkdir(parents=True, exist_ok=True)
                return archive.extract_archive(stream, root_name, dest, limit_bytes, limit_files, only=only,
                                               redactor=redactor)
            dest.parent.mkdir(parents=True, exist_ok=True)
            return archive.extract_archive(stream, root_name, dest, limit_bytes, limit_files, redactor=redactor)
        finally:
            _close_stream(stream)


# -- removal --------------------------------------------------------------------------------------

_storage_unsupported: set[str] = set()


def _is_folder_archive(data: bytes, root: str) -> bool:
    """``data`` is a whole, readable tar whose first entry is the folder ``root`` (what ``tar -C /
    -- root`` makes): checked before a file is written, so a malformed one is fetched afresh."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            members = tar.getmembers()
    except (tarfile.TarError, EOFError, ValueError):
        return False
    return bool(members) and members[0].isdir() and members[0].name.rstrip("/") == root


def _storage_reason(exc: BaseException) -> str:
    text = str(exc)
    return text[text.find("--storage-opt"):] if "--storage-opt" in text else text[-200:]


def _close_stream(stream: Any) -> None:
    close = getattr(stream, "close", None)
    if close is not None:
        try:
            close()
        except Exception:  # noqa: BLE001
            pass


def _remove(api: Any, ref: str) -> str | None:
    """Force-remove one container; None when gone (or never there), else what went wrong."""
    def remove() -> None:
        api.remove_container(ref, force=True, v=True)

    try:
        engine.with_retries("remove container", remove, passthrough=(docker.errors.NotFound,),
                            delays=(0.2, 0.5))
    except docker.errors.NotFound:
        return None
    except SandboxError as e:
        if "already in progress" in str(e):
            return None
        return f"{ref}: {e}"
    return None


_removals: ThreadPoolExecutor | None = None
_in_flight: set[Future[str | None]] = set()
_removals_lock = threading.Lock()


def _remove_soon(api: Any, ref: str) -> None:
    global _removals
    with _removals_lock:
        if _removals is None:
            _removals = ThreadPoolExecutor(max_workers=2, thread_name_prefix="cloudeval-docker-rm")
        future = _removals.submit(_remove, api, ref)
        _in_flight.add(future)
    future.add_done_callback(_in_flight.discard)


def wait_for_removals(timeout: float = engine.QUICK_TIMEOUT_S) -> None:
    """Block until the removals this process started are done (the interpreter also waits at exit)."""
    with _removals_lock:
        pending = list(_in_flight)
    if pending:
        wait(pending, timeout=timeout)


def sweep(run_id: str | None) -> tuple[int, list[str]]:
    """Remove every container labeled for ``run_id`` (all cloudeval ones if None): (removed, failures)."""
    wait_for_removals()
    api = engine.client(engine.QUICK_TIMEOUT_S)
    labels = ["cloudeval=true"] + ([f"cloudeval.run={run_id}"] if run_id else [])
    found = engine.with_retries("list containers",
                                lambda: api.containers(all=True, quiet=True, filters={"label": labels}),
                                delays=(0.2, 0.5))
    ids = [c["Id"] for c in found]
    if not ids:
        return 0, []
    with ThreadPoolExecutor(max_workers=min(8, len(ids))) as pool:
        problems = [p for p in pool.map(lambda cid: _remove(api, cid), ids) if p]
    return len(ids) - len(problems), problems
