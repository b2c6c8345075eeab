"""The results folder: layout, atomic writes, and reading stored results back (resume, reports).

Layout: ``<results-dir>/<run-id>/run.json`` and ``<results-dir>/<run-id>/<benchmark>/<key>/result.json``
where ``<key>`` is the task id, or ``<task id>@r<i>`` when tasks are repeated.

Every file is written under a temporary name (``TEMP_PREFIX``) and renamed when complete; files that
come from a task (logs copied back from a sandbox) are redacted on their way to the temporary name, so
no final name ever holds a secret, even after a ``kill -9``. Temporaries are never uploaded, shipped
or reported, and a resumed run removes those a killed run left.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from .model import TaskResult

if TYPE_CHECKING:  # avoids an import cycle
    from .redact import Redactor
    from .settings import Settings

SHIP_CAP_BYTES = 64 * 1024 * 1024
COPY_BACK_CAP_BYTES = 64 * 1024 * 1024
"""Bytes of task output copied back from a sandbox per task: everything copied is redacted (streamed,
so no size is too big to redact) and what is over the cap is listed, not kept."""
IN_MEMORY_REDACT_BYTES = 8 * 1024 * 1024
"""Files up to this size are redacted whole (bytes); bigger ones are streamed in bounded memory."""
TEMP_PREFIX = ".cloudeval-part-"
"""Files and folders being written (or left half-written by a killed run) start with this."""

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
FINAL_OUTCOMES = ("passed", "failed")


def is_safe_name(name: str) -> bool:
    """A name that is one path component inside the results folder (no escape, no hidden file)."""
    return bool(SAFE_NAME.match(name)) and ".." not in name


def is_safe_id(task_id: str) -> bool:
    """A task id we accept: any printable text (real USACO ids hold ``?``, ``!``, parentheses) that
    cannot name another path: no ``/`` or ``\\``, not ``.`` or ``..``, no control characters."""
    if SAFE_NAME.match(task_id) and ".." not in task_id:
        return True
    return (bool(task_id) and len(task_id) <= 500 and task_id not in (".", "..")
            and not any(c in "/\\" or not c.isprintable() for c in task_id))


def task_dirname(task_id: str) -> str:
    """The results folder name of a task id: the id itself when it is a safe name, else a safe,
    stable and unique name (the readable part plus a hash of the real id, which result.json keeps)."""
    if is_safe_name(task_id):
        return task_id
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", task_id).strip("._-")[:80] or "task"
    digest = hashlib.sha256(task_id.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{readable}-{digest}"


def result_dirname(task_id: str, repeat: int, repeats: int) -> str:
    name = task_dirname(task_id)
    return name if repeats <= 1 else f"{name}@r{repeat}"


def result_key(benchmark: str, task_id: str, repeat: int, repeats: int) -> str:
    return f"{benchmark}/{result_dirname(task_id, repeat, repeats)}"


def is_temporary(name: str) -> bool:
    """A file or folder name that is a temporary of ours (never uploaded, shipped or reported)."""
    return name.startswith(TEMP_PREFIX)


def remove_temporaries(root: Path) -> int:
    """Delete the temporaries a killed run left under ``root``; how many were removed."""
    if not root.is_dir():
        return 0
    found = list(root.rglob(f"{TEMP_PREFIX}*"))
    for path in sorted(found, key=lambda p: len(p.parts), reverse=True):
        _remove(path)
    return len(found)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so a killed run never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=True, default=str) + "\n").encode())


def write_redacted(src: IO[bytes], path: Path, redactor: Redactor, mode: int = 0o600) -> None:
    """Stream ``src`` through ``redactor`` into a temporary, then give it its (redacted) name ``path``.

    On any error the temporary is removed and nothing is left under the final name.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            head = _read_up_to(src, IN_MEMORY_REDACT_BYTES + 1)
            if len(head) <= IN_MEMORY_REDACT_BYTES:
                out.write(redactor.bytes(head))  # also masks a secret cut in two by a capped log
            else:
                redactor.stream(cast(IO[bytes], _Chain(head, src)), out)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _read_up_to(src: IO[bytes], limit: int) -> bytes:
    """``limit`` bytes of ``src``, fewer only at its end (a raw stream may return short reads)."""
    parts = []
    left = limit
    while left > 0:
        block = src.read(min(left, 1 << 20))
        if not block:
            break
        parts.append(block)
        left -= len(block)
    return b"".join(parts)


class _Chain:
    """``head`` bytes already read, then the rest of ``src``: a stream that was peeked at."""

    def __init__(self, head: bytes, src: IO[bytes]) -> None:
        self._head = io.BytesIO(head)
        self._src = src

    def read(self, n: int = -1) -> bytes:
        return self._head.read(n) or self._src.read(n)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def move_redacted(staging: Path, dest: Path, redactor: Redactor) -> None:
    """Give the files of ``staging`` (a temporary folder) their redacted names under ``dest``,
    redacting their contents on the way, then remove ``staging`` (also on error)."""
    try:
        for dirpath, _dirnames, filenames in os.walk(staging):
            rel_dir = Path(dirpath).relative_to(staging)
            clean_dir = dest.joinpath(*(redactor.text(part) for part in rel_dir.parts))
            clean_dir.mkdir(parents=True, exist_ok=True)
            for name in filenames:
                src = Path(dirpath) / name
                if src.is_symlink() or not src.is_file():
                    continue
                with src.open("rb") as f:
                    write_redacted(f, clean_dir / redactor.text(name), redactor, src.stat().st_mode & 0o777)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _contains_secret(path: Path, redactor: Redactor, chunk: int = 1 << 20) -> bool:
    keep = redactor.longest - 1
    carry = b""
    with path.open("rb") as f:
        while block := f.read(chunk):
            data = carry + block
            if redactor.found_in(data):
                return True
            carry = data[-keep:] if keep else b""
    return False


def redact_tree(root: Path, redactor: Redactor) -> list[str]:
    """Redact every name and every file's content under ``root`` in place (a safety net for files that
    were not redacted on their way in). A file that cannot be redacted is removed; returns what was.
    """
    removed: list[str] = []
    if not redactor or not root.is_dir():
        return removed
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        base = Path(dirpath)
        for name in filenames + dirnames:
            clean = redactor.text(name)
            if clean == name or is_temporary(name):
                continue
            target = base / clean
            while target.exists() or target.is_symlink():
                target = base / f"{clean}.{os.urandom(2).hex()}"
            try:
                os.rename(base / name, target)
            except OSError:
                _remove(base / name)
                removed.append(redactor.text(str((base / name).relative_to(root))))
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath) / name
            if is_temporary(name) or path.is_symlink() or not path.is_file():
                continue
            try:
                if _contains_secret(path, redactor):
                    with path.open("rb") as src:
                        write_redacted(src, path, redactor, path.stat().st_mode & 0o777)
            except OSError:
                path.unlink(missing_ok=True)  # never keep what could not be redacted
                removed.append(str(path.relative_to(root)))
    return removed


def iter_result_files(run_dir: Path) -> Iterator[Path]:
    if not run_dir.is_dir():
        return
    yield from sorted(run_dir.glob("*/*/result.json"))


def load_results(run_dir: Path) -> dict[str, TaskResult]:
    """Stored results of a run keyed by ``benchmark/key``; unreadable files are skipped (re-run)."""
    found: dict[str, TaskResult] = {}
    for path in iter_result_files(run_dir):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            result = TaskResult.from_dict(data)
        except (OSError, ValueError, TypeError):
            continue
        key = f"{path.parent.parent.name}/{path.parent.name}"
        found[key] = result
    return found


def run_results(run_dir: Path, reported: dict[str, dict[str, Any]], since: float) -> dict[str, dict[str, Any]]:
    """Every result of the run keyed by ``benchmark/key``: the result files on disk (the truth: after
    a Ctrl+C some never reached the controller as reports) and reported results that have no file.

    A result is marked ``resumed`` when it was reported as resumed, or when its file is older than
    this invocation (``since``, a time.time()) and it was not reported: kept from an earlier one.
    """
    merged: dict[str, dict[str, Any]] = {}
    for nodeid, data in reported.items():
        merged[str(data.get("key") or nodeid)] = data
    for key, result in load_results(run_dir).items():
        data = result.to_dict()
        known = merged.get(key)
        if known is not None:
            data["resumed"] = bool(known.get("resumed"))
        else:
            data["resumed"] = _before(data.get("finished_at") or data.get("started_at"), since)
        merged[key] = data
    return merged


def _before(stamp: Any, since: float) -> bool:
    import datetime as _dt

    try:
        when = _dt.datetime.fromisoformat(str(stamp)).timestamp()
    except ValueError:
        return False
    return when < since


def finished_results(run_dir: Path) -> dict[str, dict[str, Any]]:
    """What ``--resume`` keeps: results whose outcome is passed or failed."""
    return {k: r.to_dict() for k, r in load_results(run_dir).items() if r.outcome in FINAL_OUTCOMES}


def pack_task_dir(settings: Settings, result: dict[str, Any]) -> str | None:
    """The task's folder as base64 tar.gz, for a remote worker to send with its report (capped)."""
    task_dir = Path(settings.results_dir) / settings.run_id / str(result.get("key", ""))
    if not result.get("key") or not task_dir.is_dir():
        return None
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        total = 0
        for path in sorted(task_dir.rglob("*")):
            if not path.is_file() or any(is_temporary(part) for part in path.relative_to(task_dir).parts):
                continue
            size = path.stat().st_size
            if total + size > SHIP_CAP_BYTES and path.name != "result.json":
                continue  # the bucket (if any) has it; the controller keeps result.json at least
            total += size
            tar.add(path, arcname=str(path.relative_to(task_dir)))
    return base64.b64encode(buf.getvalue()).decode("ascii")


def unpack_task_dir(settings: Settings, result: dict[str, Any], payload: str,
                    redactor: Redactor | None = None) -> Path | None:
    """Write a shipped task folder under the controller's results folder (safely, nothing outside).

    The worker redacted it already; with ``redactor`` the controller redacts names and contents again
    on the way in (a worker's settings could differ, e.g. an older version on a VM image)."""
    key = str(result.get("key", ""))
    parts = key.split("/")
    if len(parts) != 2 or not all(is_safe_name(p) for p in parts):
        return None
    task_dir = Path(settings.results_dir) / settings.run_id / parts[0] / parts[1]
    data = base64.b64decode(payload)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        members = [m for m in tar.getmembers() if m.isfile()
                   and not any(is_temporary(part) for part in m.name.split("/"))]
        for member in members:
            name = "/".join(redactor.text(p) for p in member.name.split("/")) if redactor else member.name
            target = (task_dir / name).resolve()
            if not target.is_relative_to(task_dir.resolve()):
                continue
            f = tar.extractfile(member)
            if f is not None:
                if redactor is not None:
                    write_redacted(f, target, redactor)
                else:
                    atomic_write_bytes(target, f.read())
    return task_dir
