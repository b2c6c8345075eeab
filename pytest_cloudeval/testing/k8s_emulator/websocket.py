"""``pods/exec`` over a websocket (RFC 6455, server side, stdlib only), bridged to a ``docker exec``.

Kubernetes channel protocols: every message starts with one byte naming the channel (0 stdin,
1 stdout, 2 stderr, 3 the final ``Status`` JSON, 4 terminal resize). ``v5.channel.k8s.io`` adds
channel 255, "close": ``[255, 0]`` from the client ends the command's stdin (``v4`` cannot). One
thread per direction; a send lock keeps frames whole when both directions write (pongs).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, BinaryIO

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MAX_MESSAGE = 64 * 1024 * 1024


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def choose_protocol(offered: str | None) -> str | None:
    wanted = [p.strip() for p in (offered or "").split(",") if p.strip()]
    return next((p for p in PROTOCOLS if p in wanted), None)


class Closed(Exception):
    pass


class WebSocket:
    """One server-side websocket over an upgraded connection (``rfile`` for reads, the socket for writes)."""

    def __init__(self, sock: socket.socket, rfile: BinaryIO) -> None:
        self.sock = sock
        self.rfile = rfile
        self._send_lock = threading.Lock()
        self.closed = False

    def _read(self, size: int) -> bytes:
        data = self.rfile.read(size)
        if data is None or len(data) < size:
            raise Closed("connection closed")
        return data

    def receive(self) -> tuple[int, bytes]:
        """The next whole message (opcode, payload); control frames are answered here."""
        parts: list[bytes] = []
        opcode_first = None
        total = 0
        while True:
            head = self._read(2)
            fin, opcode = head[0] & 0x80, head[0] & 0x0F
            masked, length = head[1] & 0x80, head[1] & 0x7F
            if length == 126:
                length = struct.unpack(">H", self._read(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if masked else b""
            total += length
            if total > MAX_MESSAGE:
                raise Closed("message too large")
            payload = self._read(length) if length else b""
            if mask:
                payload = _unmask(payload, mask)
            if opcode == OP_PING:
                self.send(OP_PONG, payload)
                continue
            if opcode == OP_PONG:
                continue
            if opcode == OP_CLOSE:
                with contextlib.suppress(OSError):
                    self.send(OP_CLOSE, payload[:2])
                raise Closed("closed by the client")
            if opcode != OP_CONT:
                opcode_first = opcode
            parts.append(payload)
            if fin:
                return opcode_first or OP_BINARY, b"".join(parts)

    def send(self, opcode: int, payload: bytes) -> None:
        length = len(payload)
        if length < 126:
            head = struct.pack(">BB", 0x80 | opcode, length)
        elif length < 1 << 16:
            head = struct.pack(">BBH", 0x80 | opcode, 126, length)
        else:
            head = struct.pack(">BBQ", 0x80 | opcode, 127, length)
        with self._send_lock:
            self.sock.sendall(head + payload)

    def close(self, code: int = 1000) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(OSError):
            self.send(OP_CLOSE, struct.pack(">H", code))
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Drop the connection without a goodbye (a fault: what a broken network does)."""
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)


def _unmask(payload: bytes, mask: bytes) -> bytes:
    n = len(payload)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")


def status_document(exit_code: int, command: Sequence[str]) -> dict[str, Any]:
    if exit_code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: error executing command {list(command)}, "
                       f"exit code {exit_code}",
            "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": str(exit_code)}]}}


def bridge_exec(ws: WebSocket, protocol: str, container_id: str, command: Sequence[str], flags: dict[str, bool],
                drop_after: float | None, log: Callable[[str], None],
                on_open: Callable[[Callable[[], None]], Callable[[], None]] | None = None) -> None:
    """Run ``command`` in the container and pump channels both ways until it ends (or a fault cuts it).

    ``on_open(cut)`` is called once the stream runs, with a function that cuts it (TCP closed, no
    status); it returns a function called when the stream ends (the cluster's registry of open streams).
    """
    from pytest_cloudeval.testing.k8s_emulator import docker_pods

    api = docker_pods.api()
    try:
        exec_id = api.exec_create(container_id, list(command), stdin=flags["stdin"], stdout=flags["stdout"],
                                  stderr=flags["stderr"], tty=flags["tty"])["Id"]
        sockio = api.exec_start(exec_id, socket=True, tty=flags["tty"])
    except Exception as e:  # noqa: BLE001 - e.g. the container went away: a Status on channel 3
        message = str(getattr(e, "explanation", None) or e)
        doc = {"metadata": {}, "status": "Failure", "message": message, "reason": "InternalError"}
        with contextlib.suppress(OSError):
            ws.send(OP_BINARY, b"\x03" + json.dumps(doc).encode())
        ws.close()
        return
    raw: socket.socket = getattr(sockio, "_sock", sockio)
    done = threading.Event()

    def cut() -> None:
        log("k8s emulator: fault: dropping an exec stream")
        ws.cut()
        with contextlib.suppress(OSError):
            raw.close()

    closed = on_open(cut) if on_open is not None else (lambda: None)
    if drop_after is not None:
        def cut_later() -> None:
            if not done.wait(drop_after):
                cut()
        threading.Thread(target=cut_later, daemon=True).start()
    reader = threading.Thread(target=_client_to_exec, args=(ws, raw, protocol, api, exec_id, done), daemon=True)
    reader.start()
    try:
        _exec_to_client(ws, raw, flags["tty"])
        if ws.closed:
            return
        code = _exit_code(api, exec_id)
        ws.send(OP_BINARY, b"\x03" + json.dumps(status_document(code, command)).encode())
        ws.close()
    except (OSError, Closed):
        pass
    finally:
        done.set()
        closed()
        with contextlib.suppress(OSError):
            raw.close()
        reader.join(timeout=1)


def _exec_to_client(ws: WebSocket, raw: socket.socket, tty: bool) -> None:
    buf = bytearray()
    while not ws.closed:
        ready, _, _ = select.select([raw], [], [], 1.0)
        if not ready:
            continue
        try:
            data = raw.recv(1 << 16)
        except OSError:
            return
        if not data:
            return
        if tty:
            ws.send(OP_BINARY, b"\x01" + data)
            continue
        buf += data
        while len(buf) >= 8:
            kind, length = buf[0], struct.unpack_from(">I", buf, 4)[0]
            if len(buf) < 8 + length:
                break
            chunk = bytes(buf[8:8 + length])
            del buf[:8 + length]
            ws.send(OP_BINARY, (b"\x02" if kind == 2 else b"\x01") + chunk)


def _client_to_exec(ws: WebSocket, raw: socket.socket, protocol: str, api: Any, exec_id: str,
                    done: threading.Event) -> None:
    try:
        while not done.is_set():
            _opcode, message = ws.receive()
            if not message:
                continue
            channel, data = message[0], message[1:]
            if channel == 0 and data:
                raw.sendall(data)
            elif channel == 255 and protocol.startswith("v5") and data[:1] == b"\x00":
                # Docker 20.10 loses an EOF sent before the exec's process runs: wait for it first.
                for _ in range(200):
                    info = api.exec_inspect(exec_id)
                    if info.get("Running") or info.get("ExitCode") is not None:
                        break
                    time.sleep(0.005)
                raw.shutdown(socket.SHUT_WR)
    except (Closed, OSError, ValueError):
        pass


def _exit_code(api: Any, exec_id: str) -> int:
    delay = 0.005
    for _ in range(400):
        info = api.exec_inspect(exec_id)
        if not info.get("Running") and info.get("ExitCode") is not None:
            return int(info["ExitCode"])
        time.sleep(delay)
        delay = min(delay * 2, 0.25)
    return 137
