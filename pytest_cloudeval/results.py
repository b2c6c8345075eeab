"""The results folder: layout, atomic writes, and reading stored results back (resume, reports).

Layout: ``<results-dir>/<run-id>/run.json`` and ``<results-dir>/<run-id>/<benchmark>/<key>/result.json``
where ``<key>`` is the task id, or ``<task id>@r<i>`` when tasks are repeated.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .model import TaskResult

if TYPE_CHECKING:  # avoids an import cycle
    from .settings import Settings

SHIP_CAP_BYTES = 64 * 1024 * 1024

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


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so a killed run never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
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
            if not path.is_file():
                continue
            size = path.stat().st_size
            if total + size > SHIP_CAP_BYTES and path.name != "result.json":
                continue  # the bucket (if any) has it; the controller keeps result.json at least
            total += size
            tar.add(path, arcname=str(path.relative_to(task_dir)))
    return base64.b64encode(buf.getvalue()).decode("ascii")


def unpack_task_dir(settings: Settings, result: dict[str, Any], payload: str) -> Path | None:
    """Write a shipped task folder under the controller's results folder (safely, nothing outside)."""
    key = str(result.get("key", ""))
    parts = key.split("/")
    if len(parts) != 2 or not all(is_safe_name(p) for p in parts):
        return None
    task_dir = Path(settings.results_dir) / settings.run_id / parts[0] / parts[1]
    data = base64.b64decode(payload)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        members = [m for m in tar.getmembers() if m.isfile()]
        for member in members:
            target = (task_dir / member.name).resolve()
            if not target.is_relative_to(task_dir.resolve()):
                continue
            f = tar.extractfile(member)
            if f is not None:
                atomic_write_bytes(target, f.read())
    return task_dir
