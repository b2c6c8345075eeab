"""The results folder: layout, atomic writes, and reading stored results back (resume, reports).

Layout: ``<results-dir>/<run-id>/run.json`` and ``<results-dir>/<run-id>/<benchmark>/<key>/result.json``
where ``<key>`` is the task id, or ``<task id>@r<i>`` when tasks are repeated.
"""

from __future__ import annotations

import base64
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


def result_dirname(task_id: str, repeat: int, repeats: int) -> str:
    return task_id if repeats <= 1 else f"{task_id}@r{repeat}"


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
    from .stored import local_results  # the one reader of stored results

    return {key: TaskResult.from_dict(data) for key, data in local_results(run_dir)[0].items()}


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
