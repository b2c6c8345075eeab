"""Talking to a Docker engine through the SDK's low-level API: cached clients, bounded retried calls,
and streamed execs with capped output and group kills (archives are in ``docker_archive``).

Only the engine's API is used (no CLI, no host paths), so the same code drives an engine on a
remote VM. Every call has the client's socket timeout and is retried for engine trouble only.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import docker
import docker.errors
import requests.exceptions
from docker.utils import kwargs_from_env

from ..capture import CappedBuffer
from ..errors import SandboxError
from .base import ExecResult

T = TypeVar("T")

ENGINE_TIMEOUT_S = 60.0
"""Socket timeout of ordinary engine calls (create, start, exec setup, archives)."""
QUICK_TIMEOUT_S = 15.0
"""Removal and sweeps: a dead engine must not stall the end of a run."""
BUILD_TIMEOUT_S = 3600.0
RETRY_DELAYS_S = (0.1, 0.4, 1.2)
"""Pauses between the attempts of an engine call that failed for the engine's own reasons."""
POLL_S = (0.25, 0.5, 1.0, 2.0)
"""How often a long exec checks whether its main process is gone while its output is still open."""
DRAIN_S = 3.0
"""After killing a command whose output is still open: how long its last output may take to arrive."""
PID_MARK = b"\x1ecloudeval-pid:"
EXIT_MARK = b"\x1ecloudeval-exit:"
# The wrapper reports its pid (the command's process group and session: docker exec makes every
# exec a session leader) on stderr before running the command, so a timeout can kill the whole
# group without a pid file and without knowing the engine host's pid numbers. It reports the exit
# status last: an output stream that ends without it, while the command was not killed by us, was
# cut by a lost engine connection (the engine then reports exit 126), a sandbox error.
WRAPPER = ('printf "\\036cloudeval-pid:%d\\036" "$$" >&2; "$@"; rc=$?; '
           'printf "\\036cloudeval-exit:%d\\036" "$rc" >&2; exit "$rc"')
UNTAR_FAILED = "\x1ecloudeval-untar-failed\x1e"
# The same, first unpacking files that came on stdin (a tar for /): one exec instead of an
# archive upload (~45 ms of engine work each) plus the exec. Falls back to the upload if tar fails.
WRAPPER_UNTAR = ('printf "\\036cloudeval-pid:%d\\036" "$$" >&2; '
                 'tar -xpf - -C / || { printf "\\036cloudeval-untar-failed\\036" >&2; exit 125; }; '
                 '"$@" </dev/null; rc=$?; printf "\\036cloudeval-exit:%d\\036" "$rc" >&2; exit "$rc"')


class UntarFailed(Exception):
    """Unpacking files in the exec failed (no tar, no permission): upload them the usual way."""

UNREACHABLE_S = 5.0

_clients: dict[tuple[int, float], Any] = {}
_clients_lock = threading.Lock()
_unreachable: tuple[str, float, str] | None = None


def engine_address() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def is_transient(exc: BaseException) -> bool:
    """Engine trouble worth another try: connection errors, timeouts and 5xx answers (not 4xx)."""
    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError)):
        return True
    if isinstance(exc, docker.errors.APIError):
        status = exc.status_code or 0
        text = str(exc.explanation or exc)
        permanent = ("storage-opt", "OCI runtime", "executable file not found", "no such file")
        return status >= 500 and not any(p in text for p in permanent)
    if isinstance(exc, docker.errors.DockerException):
        return "Error while fetching server API version" in str(exc)
    return False


def with_retries(what: str, fn: Callable[[], T], *, passthrough: tuple[type[BaseException], ...] = (),
                 delays: Sequence[float] = RETRY_DELAYS_S) -> T:
    """``fn()`` retried with backoff on transient engine errors; other engine errors -> SandboxError.

    Exceptions of the ``passthrough`` types (e.g. NotFound, for callers that handle a missing
    object) are re-raised unchanged.
    """
    for attempt in range(len(delays) + 1):
        try:
            return fn()
        except passthrough:
            raise
        except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as e:
            if attempt < len(delays) and is_transient(e):
                time.sleep(delays[attempt])
                continue
            raise SandboxError(f"docker {what} failed ({engine_address()}): {describe(e)}") from e
    raise AssertionError("unreachable")


def describe(exc: BaseException) -> str:
    if isinstance(exc, docker.errors.APIError):
        return f"{exc.status_code} {exc.explanation or exc}"
    text = str(exc)
    if "Connection aborted" in text or "No such file" in text or "Connection refused" in text:
        return f"cannot reach the Docker engine ({text}); is it running? (scripts/setup-docker.sh starts one)"
    return text or type(exc).__name__


def client(timeout: float = ENGINE_TIMEOUT_S) -> Any:
    """A low-level API client for this process (one per timeout), negotiated once: cheap to call.

    After a failed connection, calls fail at once for ``UNREACHABLE_S`` instead of retrying
    again, so a dead engine costs a run one round of retries, not one per task step.
    """
    global _unreachable
    key = (os.getpid(), timeout)
    with _clients_lock:
        api = _clients.get(key)
        version = next((c.api_version for (pid, _), c in _clients.items() if pid == key[0]), None)
    if api is not None:
        return api
    if _unreachable is not None and _unreachable[0] == engine_address() and time.monotonic() < _unreachable[1]:
        raise SandboxError(_unreachable[2])
    kwargs = kwargs_from_env()
    try:
        api = with_retries("connect", lambda: docker.APIClient(version=version or "auto", timeout=timeout, **kwargs))
    except SandboxError as e:
        _unreachable = (engine_address(), time.monotonic() + UNREACHABLE_S, str(e))
        raise
    if str(getattr(api, "base_url", "")).startswith("http+docker://"):
        # A local socket: no proxy, .netrc or CA-bundle lookup of the environment applies, and
        # requests would make them on every call (~0.5 ms of CPU each, a dozen calls per attempt).
        api.trust_env = False
    with _clients_lock:
        _clients[key] = api
    return api


# -- images ---------------------------------------------------------------------------------------

_image_cache: dict[str, dict[str, Any]] = {}


def inspect_image(name: str, *, hint: str = "") -> dict[str, Any]:
    """The image's inspect data (cached per process); SandboxError naming a fix if it is missing."""
    cached = _image_cache.get(name)
    if cached is not None:
        return cached
    api = client()
    try:
        data = with_retries(f"inspect image {name}", lambda: api.inspect_image(name),
                            passthrough=(docker.errors.NotFound,))
    except docker.errors.NotFound as e:
        raise SandboxError(f"image {name} not found on the Docker engine ({engine_address()}): "
                           f"{hint or 'run scripts/setup-docker.sh or pass --sandbox-image'}") from e
    _image_cache[name] = data
    return data


def forget_image(name: str) -> None:
    _image_cache.pop(name, None)


# -- exec -----------------------------------------------------------------------------------------


@dataclass
class _Streams:
    out: CappedBuffer
    err: CappedBuffer
    pid: int | None = None
    exit_status: int | None = None
    """The status the wrapper reported last (None: the stream ended before it)."""
    _pre: bytearray = field(default_factory=bytearray)
    _marked: bool = False
    _held: bytearray = field(default_factory=bytearray)

    def _hold(self, data: bytes) -> None:
        # The last bytes may be (part of) the exit mark: hold them back until the end.
        self._held += data
        if len(self._held) > 64:
            cut = len(self._held) - 64
            self.err.write(bytes(self._held[:cut]))
            del self._held[:cut]

    def finish(self) -> None:
        held = bytes(self._held)
        self._held = bytearray()
        at = held.rfind(EXIT_MARK)
        if at >= 0:
            end = held.find(b"\x1e", at + len(EXIT_MARK))
            try:
                self.exit_status = int(held[at + len(EXIT_MARK):end])
            except ValueError:
                self.exit_status = None
            else:
                held = held[:at] + held[end + 1:]
        if held:
            self.err.write(held)

    def stderr(self, data: bytes) -> None:
        if self._marked:
            self._hold(data)
            return
        self._pre += data
        if len(self._pre) < len(PID_MARK) and PID_MARK.startswith(bytes(self._pre)):
            return
        if self._pre.startswith(PID_MARK):
            end = self._pre.find(b"\x1e", len(PID_MARK))
            if end < 0:
                if len(self._pre) < 64:
                    return
                end = len(self._pre) - 1
            try:
                self.pid = int(self._pre[len(PID_MARK):end])
            except ValueError:
                self.pid = None
            rest = bytes(self._pre[end + 1:])
        else:
            rest = bytes(self._pre)
        self._marked = True
        self._pre = bytearray()
        if rest:
            self._hold(rest)


def _frames(buf: bytearray, streams: _Streams) -> None:
    """Dispatch every complete frame of Docker's multiplexed stream format, in place."""
    pos, size = 0, len(buf)
    view = memoryview(buf)
    try:
        while size - pos >= 8:
            kind = buf[pos]
            length = struct.unpack_from(">I", buf, pos + 4)[0]
            if size - pos - 8 < length:
                break
            chunk = bytes(view[pos + 8:pos + 8 + length])
            if kind == 2:
                streams.stderr(chunk)
            else:
                streams.out.write(chunk)
            pos += 8 + length
    finally:
        view.release()
    if pos:
        del buf[:pos]


def kill_group(api: Any, container: str, pid: int) -> None:
    """SIGKILL the process group (and the process) ``pid`` inside the container, as root."""
    script = f"kill -9 -{pid} 2>/dev/null || kill -9 {pid} 2>/dev/null; true"
    try:
        exec_id = api.exec_create(container, ["sh", "-c", script], user="0")["Id"]
        api.exec_start(exec_id)
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError):
        pass  # the container may be gone already, which kills everything too


def run_exec(
    api: Any,
    container: str,
    argv: Sequence[str],
    *,
    timeout: float | None,
    stdin: bytes | None = None,
    env: Mapping[str, str] | None = None,
    workdir: str | None = None,
    user: str | None = None,
    cap_head: int = 512 * 1024,
    cap_tail: int = 512 * 1024,
    untar: bool = False,
    stdout_sink: CappedBuffer | None = None,
) -> ExecResult:
    """Run ``argv`` in a running container, streaming capped output, killing its group on timeout.

    With ``stdout_sink`` the command's standard output goes there, as bytes (the result's ``stdout``
    is then empty and its truncation not counted in ``output_truncated``).

    The command's group is also killed when its main process has ended while children still hold
    its output open (else the exec would never end), which matches the local sandbox. Processes
    that left the group on purpose (``setsid``, daemons) are left running.
    """
    started = time.monotonic()
    deadline = None if timeout is None else started + max(0.0, timeout)
    streams = _Streams(stdout_sink if stdout_sink is not None else CappedBuffer(cap_head, cap_tail),
                       CappedBuffer(cap_head, cap_tail))
    cmd = ["sh", "-c", WRAPPER_UNTAR if untar else WRAPPER, "sh", *argv]
    exec_id = with_retries("exec create", lambda: api.exec_create(
        container, cmd, stdin=stdin is not None, user=user or "", environment=dict(env or {}),
        workdir=workdir)["Id"])
    try:
        sockio = api.exec_start(exec_id, socket=True)
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as e:
        raise SandboxError(f"docker exec start failed ({engine_address()}): {describe(e)}") from e
    raw: socket.socket = getattr(sockio, "_sock", sockio)
    timed_out = False
    exited_early = False
    writer: threading.Thread | None = None
    try:
        if stdin is not None:
            writer = _start_stdin_writer(api, exec_id, raw, stdin)
        buf = bytearray()
        poll_index, next_poll = 0, time.monotonic() + POLL_S[0]
        while True:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                timed_out = True
                break
            wait = next_poll - now
            if deadline is not None:
                wait = min(wait, deadline - now)
            ready, _, _ = select.select([raw], [], [], max(0.0, wait))
            if ready:
                data = raw.recv(1 << 18)
                if not data:
                    break
                buf += data
                _frames(buf, streams)
                continue
            if time.monotonic() >= next_poll:
                info = api.exec_inspect(exec_id)
                if not info.get("Running"):
                    exited_early = True  # children still hold the output open
                    break
                poll_index = min(poll_index + 1, len(POLL_S) - 1)
                next_poll = time.monotonic() + POLL_S[poll_index]
        if (timed_out or exited_early) and streams.pid is not None:
            kill_group(api, container, streams.pid)
            _drain(raw, buf, streams, DRAIN_S)
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as e:
        raise SandboxError(f"docker exec failed ({engine_address()}): {describe(e)}") from e
    finally:
        for closable in (raw, sockio):
            try:
                closable.close()
            except OSError:
                pass
        if writer is not None:
            writer.join(timeout=1)
    if not streams._marked and streams._pre:
        streams.err.write(bytes(streams._pre))
    streams.finish()
    if streams.exit_status is None and not (timed_out or exited_early):
        _check_not_cut(api, exec_id, container, streams)
    exit_code = None if timed_out else _exit_code(api, exec_id, deadline)
    if exit_code is None and not timed_out:
        timed_out = True  # still running at the deadline after closing its output
        if streams.pid is not None:
            kill_group(api, container, streams.pid)
    if untar and exit_code == 125 and UNTAR_FAILED in streams.err.text():
        raise UntarFailed(streams.err.text().replace(UNTAR_FAILED, "")[-500:])
    return ExecResult(
        exit_code=exit_code,
        stdout=streams.out.text() if stdout_sink is None else "",
        stderr=streams.err.text(),
        timed_out=timed_out,
        duration_s=time.monotonic() - started,
        output_truncated=(streams.out.truncated and stdout_sink is None) or streams.err.truncated,
    )


def _check_not_cut(api: Any, exec_id: str, container: str, streams: _Streams) -> None:
    """The output ended without the wrapper's exit mark: a killed wrapper (its exit code stands), or
    a connection the engine or the network cut (a sandbox error, never the command's exit code)."""
    info = with_retries("exec inspect", lambda: api.exec_inspect(exec_id))
    running = bool(info.get("Running"))
    if not running and not streams._marked and info.get("ExitCode") in (126, 127):
        raise SandboxError(f"docker exec: the command's shell did not start (exit {info.get('ExitCode')}): "
                           f"{streams.err.text()[-300:]}")
    if running or info.get("ExitCode") == 126:
        if running and streams.pid is not None:
            kill_group(api, container, streams.pid)
        state = "still running" if running else f"exit {info.get('ExitCode')}"
        raise SandboxError(f"docker exec: the connection to the engine ({engine_address()}) was lost in the "
                           f"middle of the command ({state}, its end was never reported)")


def _drain(raw: socket.socket, buf: bytearray, streams: _Streams, seconds: float) -> None:
    end = time.monotonic() + seconds
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return
        ready, _, _ = select.select([raw], [], [], left)
        if not ready:
            return
        data = raw.recv(1 << 18)
        if not data:
            return
        buf += data
        _frames(buf, streams)


def _exit_code(api: Any, exec_id: str, deadline: float | None) -> int | None:
    """The exec's exit code; waits (bounded) for a process that closed its output but runs on."""
    delay = 0.01
    while True:
        info = with_retries("exec inspect", lambda: api.exec_inspect(exec_id))
        if not info.get("Running") and info.get("ExitCode") is not None:
            return int(info["ExitCode"])
        if deadline is not None and time.monotonic() >= deadline:
            return None
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def _start_stdin_writer(api: Any, exec_id: str, raw: socket.socket, data: bytes) -> threading.Thread:
    # The engine loses an EOF sent before the exec's process runs (Docker 20.10), so the write
    # side is closed only once the exec is seen running. A thread, so a command that writes
    # much before it reads cannot deadlock against us.
    for _ in range(200):
        info = api.exec_inspect(exec_id)
        if info.get("Running") or info.get("ExitCode") is not None:
            break
        time.sleep(0.005)

    def write() -> None:
        try:
            raw.sendall(data)
        except OSError:
            pass
        finally:
            try:
                raw.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    thread = threading.Thread(target=write, name="cloudeval-docker-stdin", daemon=True)
    thread.start()
    return thread
