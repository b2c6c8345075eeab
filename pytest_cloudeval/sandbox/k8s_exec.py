"""Commands in a pod through the exec API (websocket), with nothing secret in the request.

The exec's URL carries only a fixed launcher (``sh -c LAUNCHER``): API servers log URLs. The command's
argv, environment (secrets included), working folder, user and stdin travel on the exec's stdin as
escaped lines, then the stdin payload, length-prefixed so the command sees its end of input without
relying on the ``v5`` close signal. The launcher reports its pid (a process-group leader: the
group is killed on timeout by a second exec) and, when the command ends, kills what it left running
in its group, so children holding the output open cannot keep the exec alive. The exit code comes
from the status channel (3); a stream that ends without one is a lost sandbox, never a verdict.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..capture import CappedBuffer
from ..errors import SandboxError, SandboxLost
from .base import ExecResult

PID_MARK = b"\x1ecloudeval-pid:"

LAUNCHER = r"""printf '\036cloudeval-pid:%d\036' "$$" >&2
set --
cwd= user= nin=0 owner=0:0
fail() { printf '\036cloudeval-files-failed\036' >&2; exit 125; }
while IFS= read -r line; do
  v=${line#?}
  case $line in
    .) break ;;
    O*) owner=$v ;;
    P*) v=$(printf '%bx' "$v"); d=${v%x}
        if [ ! -d "$d" ]; then mkdir -p -- "$d" || fail; [ "$owner" = 0:0 ] || chown "$owner" "$d" || fail; fi ;;
    X*) t=$(mktemp) || fail; head -c "$v" > "$t"; tar -xpf "$t" -C / || { rm -f "$t"; fail; }; rm -f "$t" ;;
    A*) v=$(printf '%bx' "$v"); set -- "$@" "${v%x}" ;;
    E*) v=$(printf '%bx' "$v"); export "${v%x}" || exit 125 ;;
    D*) v=$(printf '%bx' "$v"); cwd=${v%x} ;;
    U*) v=$(printf '%bx' "$v"); user=${v%x} ;;
    I*) nin=$v ;;
  esac
done
if [ -n "$cwd" ]; then cd -- "$cwd" || exit 125; fi
case $user in
  ''|root|0|0:0) ;;
  *) name=${user%%:*}
     while IFS=: read -r n _ u _ _ h _; do
       if [ "$n" = "$name" ] || [ "$u" = "$name" ]; then export HOME="$h" USER="$n" LOGNAME="$n"; fi
     done < /etc/passwd
     if command -v setpriv >/dev/null 2>&1; then
       g=${user#*:}; [ "$g" = "$user" ] && g=$(id -g "$name")
       set -- setpriv --reuid="$name" --regid="$g" --init-groups -- "$@"
     else
       set -- su -s /bin/sh "$name" -c 'exec "$0" "$@"' -- "$@"
     fi ;;
esac
if [ "$nin" -gt 0 ]; then head -c "$nin" | "$@"; else "$@" </dev/null; fi
rc=$?
me=$$
for f in /proc/[0-9]*/stat; do
  read -r s < "$f" 2>/dev/null || continue
  s=${s##*) }
  set -- $s
  [ "$3" = "$me" ] || continue
  p=${f#/proc/}; p=${p%/stat}
  [ "$p" = "$me" ] || kill -9 "$p" 2>/dev/null
done
exit $rc
"""


def escape(value: str) -> str:
    """One line that ``printf '%b'`` turns back into ``value`` (backslashes, newlines, controls escaped)."""
    out = []
    for ch in value:
        code = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif code < 32 or code == 127:
            out.append(f"\\0{code:03o}")
        else:
            out.append(ch)
    return "".join(out)


FILES_FAILED = "\x1ecloudeval-files-failed\x1e"


@dataclass(frozen=True)
class Files:
    """A tar for ``/`` unpacked (as the container's user, root for task images) before the command,
    after its missing ``parents`` are made and handed to ``owner`` ("uid:gid")."""

    tar: bytes
    parents: tuple[str, ...]
    owner: str


def request(argv: Sequence[str], env: Mapping[str, str], cwd: str | None, user: str | None,
            stdin: bytes | None, files: Files | None = None) -> bytes:
    head = b""
    if files is not None:
        lines0 = [f"O{files.owner}"] + [f"P{escape(p)}" for p in files.parents] + [f"X{len(files.tar)}"]
        head = ("\n".join(lines0) + "\n").encode("utf-8", "surrogateescape") + files.tar
    lines = [f"A{escape(a)}" for a in argv]
    lines += [f"E{escape(k)}={escape(v)}" for k, v in env.items()]
    if cwd:
        lines.append(f"D{escape(cwd)}")
    if user:
        lines.append(f"U{escape(user)}")
    lines.append(f"I{len(stdin or b'')}")
    lines.append(".")
    return head + ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape") + (stdin or b"")


@dataclass
class _Stderr:
    sink: CappedBuffer
    pid: int | None = None
    marked: bool = False
    pre: bytes = b""

    def write(self, data: bytes) -> None:
        if self.marked:
            self.sink.write(data)
            return
        self.pre += data
        if self.pre.startswith(PID_MARK):
            end = self.pre.find(b"\x1e", len(PID_MARK))
            if end < 0:
                return
            try:
                self.pid = int(self.pre[len(PID_MARK):end])
            except ValueError:
                self.pid = None
            rest = self.pre[end + 1:]
        elif len(self.pre) < len(PID_MARK) and PID_MARK.startswith(self.pre):
            return
        else:
            rest = self.pre
        self.marked, self.pre = True, b""
        if rest:
            self.sink.write(rest)


class Sink:
    """Raw bytes up to a limit (file reads, tar streams)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.truncated = False

    def write(self, data: bytes) -> None:
        room = self.limit - len(self.data)
        if len(data) > room:
            self.truncated = True
            data = data[:max(0, room)]
        self.data += data


def open_stream(rest_of: Any, namespace: str, pod: str, command: Sequence[str], stdin: bool) -> Any:
    """A fresh exec websocket of its own (the ``kubernetes`` package's ``WSClient``, the kubeconfig's
    credentials and TLS); ``rest_of()`` is the process's ``k8s_rest.Rest``, which the stream only reads
    (``kubernetes.stream.stream()`` is not used: it patches the ``ApiClient`` it is given)."""
    from kubernetes.stream.ws_client import websocket_call

    rest = rest_of()
    url, headers = rest.exec_url(namespace, pod, command, stdin=stdin)
    return websocket_call(rest.client.configuration, "GET", url, headers=headers, _preload_content=False,
                          binary=True, capture_all=False)


def exit_status(raw: Any) -> int | None:
    """The exit code in a channel-3 ``Status`` document; None when there is none."""
    if not raw:
        return None
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    if doc.get("status") == "Success":
        return 0
    for cause in (doc.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            try:
                return int(cause.get("message"))
            except (TypeError, ValueError):
                return None
    # No exit code: the command never ran (the container is gone or not running).
    raise SandboxLost(f"exec failed: {doc.get('message') or doc}")


def run(rest_of: Any, namespace: str, pod: str, argv: Sequence[str], *, timeout: float | None,
        env: Mapping[str, str], cwd: str | None, user: str | None, stdin: bytes | None,
        out: CappedBuffer | Sink, err: CappedBuffer, files: Files | None = None) -> ExecResult:
    """Run ``argv`` through the launcher; see the module docstring."""
    started = time.monotonic()
    deadline = None if timeout is None else started + max(0.0, timeout)
    errors = _Stderr(err)
    try:
        resp = open_stream(rest_of, namespace, pod, ["sh", "-c", LAUNCHER], True)
    except Exception as e:  # noqa: BLE001 - ApiException (pod gone, not running), connection refused...
        raise _lost_or_error(e, pod) from e
    payload = request(argv, env, cwd, user, stdin, files)
    failure: list[BaseException] = []

    def write() -> None:
        try:
            resp.write_stdin(payload)
        except Exception as e:  # noqa: BLE001 - the reader sees the stream end and reports it
            failure.append(e)

    writer = threading.Thread(target=write, name="cloudeval-k8s-stdin", daemon=True)
    writer.start()
    timed_out = False
    status_raw = b""
    try:
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                timed_out = True
                break
            wait = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
            try:
                resp.update(timeout=wait)
            except Exception as e:  # noqa: BLE001 - websocket closed under us: a drop
                failure.append(e)
                break
            for channel, sink in ((1, out), (2, errors)):
                data = resp.read_channel(channel)
                if data:
                    sink.write(data if isinstance(data, bytes) else data.encode())
            status = resp.read_channel(3)
            if status:
                status_raw += status if isinstance(status, bytes) else status.encode()
            if not resp.is_open():
                break
        if timed_out and errors.pid is not None:
            kill_group(rest_of, namespace, pod, errors.pid)
    finally:
        try:
            resp.close()
        except Exception:  # noqa: BLE001
            pass
        writer.join(timeout=1)
    if not errors.marked and errors.pre:
        err.write(errors.pre)
    exit_code = None
    if not timed_out:
        exit_code = exit_status(status_raw)
        if exit_code is None:
            if errors.pid is not None:
                kill_group(rest_of, namespace, pod, errors.pid)
            why = f": {failure[0]}" if failure else ""
            raise SandboxLost(f"the exec stream into pod {pod} ended without an exit status{why}")
    if files is not None and exit_code == 125 and FILES_FAILED in err.text():
        raise SandboxError(f"copying files into pod {pod} failed: {err.text().replace(FILES_FAILED, '')[-300:]}")
    return ExecResult(exit_code=exit_code, stdout=out.text() if isinstance(out, CappedBuffer) else "",
                      stderr=err.text(), timed_out=timed_out, duration_s=time.monotonic() - started,
                      output_truncated=bool(getattr(out, "truncated", False)) or err.truncated)


def kill_group(rest_of: Any, namespace: str, pod: str, pid: int) -> None:
    """SIGKILL the launcher's process group inside the pod (a second, short exec); best effort."""
    script = f"kill -9 -{int(pid)} 2>/dev/null || kill -9 {int(pid)} 2>/dev/null; true"
    try:
        resp = open_stream(rest_of, namespace, pod, ["sh", "-c", script], False)
        resp.run_forever(timeout=10)
        resp.close()
    except Exception:  # noqa: BLE001 - the pod may be gone, which ends the group too
        pass


def _lost_or_error(exc: BaseException, pod: str) -> SandboxError:
    status = getattr(exc, "status", None)
    text = str(getattr(exc, "body", None) or exc)[:500]
    if status in (404, 400) or "not found" in text:
        return SandboxLost(f"pod {pod} is gone or not running: {text}")
    return SandboxError(f"cannot open an exec stream into pod {pod}: {text}")
