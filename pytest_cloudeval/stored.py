"""The one reader of stored runs: a local results folder or a run in a result store.

``--resume`` (local and store), the ``report`` command and the run reporters all read results
through here, so a result that one of them accepts, the others accept too. A run is its task
results (``<benchmark>/<key>/result.json``, validated as ``TaskResult``), its run.json when present,
and access to the files of each task folder (for report excerpts and links).
"""

from __future__ import annotations

import json
import os
import random
import time
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .model import TaskResult

if TYPE_CHECKING:
    from .artifacts.base import ResultStore

RESULT_FILE = "result.json"
RUN_FILE = "run.json"


class ReportInputError(Exception):
    """A run cannot be read or holds no task results: the message says which and why."""


class TaskFiles(ABC):
    """The files of a run's task folders, wherever they are stored."""

    @abstractmethod
    def names(self, key: str) -> list[tuple[str, int]]:
        """``(path relative to the task folder, size)`` of every file of task ``key``, sorted."""

    @abstractmethod
    def read(self, key: str, name: str) -> bytes | None:
        """A file's content, or None when it is missing or unreadable."""


class LocalFiles(TaskFiles):
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def names(self, key: str) -> list[tuple[str, int]]:
        # os.scandir, not Path.rglob: one stat per file instead of three (10,000 task folders add up).
        found: list[tuple[str, int]] = []
        stack = [(str(self.run_dir / key), "")]
        while stack:
            folder, rel = stack.pop()
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                if entry.name.startswith(".") or entry.is_symlink():
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, f"{rel}{entry.name}/"))
                elif entry.is_file(follow_symlinks=False):
                    found.append((f"{rel}{entry.name}", entry.stat(follow_symlinks=False).st_size))
        return sorted(found)

    def read(self, key: str, name: str) -> bytes | None:
        try:
            return (self.run_dir / key / name).read_bytes()
        except OSError:
            return None


class StoreFiles(TaskFiles):
    def __init__(self, store: ResultStore, base: str, listing: dict[str, int]) -> None:
        self.store, self.base, self.listing = store, base, listing

    def names(self, key: str) -> list[tuple[str, int]]:
        prefix = f"{self.base}{key}/"
        return sorted((n[len(prefix):], size) for n, size in self.listing.items() if n.startswith(prefix))

    def read(self, key: str, name: str) -> bytes | None:
        from .errors import StoreError

        try:
            return self.store.read_bytes(f"{self.base}{key}/{name}")
        except StoreError:
            return None


@dataclass(frozen=True)
class StoredRun:
    """What a run left: task results by key, problems met while reading, run.json, the task files."""

    source: str
    results: dict[str, dict[str, Any]]
    problems: list[str]
    run_json: dict[str, Any] | None
    files: TaskFiles
    files_url: str = ""
    """Where the task folders are for a browser: "" (beside run.json) or a bucket's https address."""
    extra: dict[str, Any] = field(default_factory=dict)


def parse_result(text: str | bytes) -> dict[str, Any]:
    """A result.json's content, validated; raises ValueError (or TypeError) when it is not a result."""
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"expected an object, got {type(data).__name__}")
    TaskResult.from_dict(data)
    return data


def local_results(run_dir: Path) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Every readable result under ``run_dir`` by ``benchmark/key``, and a problem per unreadable one."""
    results: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    if not run_dir.is_dir():
        return results, problems
    for path in sorted(run_dir.glob(f"*/*/{RESULT_FILE}")):
        try:
            data = parse_result(path.read_bytes())
        except (OSError, ValueError, TypeError, AttributeError) as e:
            problems.append(f"{path}: unreadable result ({e})")
            continue
        results[f"{path.parent.parent.name}/{path.parent.name}"] = data
    return results, problems


def _run_json(text: str | bytes | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def read_local(run_dir: Path) -> StoredRun:
    if not run_dir.exists():
        raise ReportInputError(f"{run_dir}: no such folder")
    if not run_dir.is_dir():
        raise ReportInputError(f"{run_dir}: not a folder (give a run folder such as results/<run-id>)")
    results, problems = local_results(run_dir)
    if not results:
        runs = sorted(p.name for p in run_dir.iterdir() if (p / RUN_FILE).is_file())
        hint = f" (it holds runs: {', '.join(runs[-5:])}; give one of them)" if runs else ""
        raise ReportInputError(f"{run_dir}: no task results (<benchmark>/<task>/result.json){hint}")
    try:
        run_json = _run_json((run_dir / RUN_FILE).read_bytes())
    except OSError:
        run_json = None
    return StoredRun(str(run_dir), results, problems, run_json, LocalFiles(run_dir))


def read_store(url: str) -> StoredRun:
    """A run stored at ``url`` (``gs://BUCKET/PREFIX/<run-id>``), read with a few retries."""
    from .artifacts.base import read_results
    from .artifacts.uploader import RetryPolicy, call_with_retries
    from .errors import MissingExtraError, StoreError

    scheme = url.split("://", 1)[0]
    if scheme != "gs":
        raise ReportInputError(f"{url}: unknown store (known: gs://)")
    policy = RetryPolicy(retries=2)
    try:
        from .artifacts.gcs import GcsStore

        store = GcsStore(url)
        objects = call_with_retries(lambda: store.list(""), policy, time.sleep, random.random)
        results, problems = call_with_retries(lambda: read_results(store, "", objects), policy, time.sleep,
                                              random.random)
        run_json = None
        if any(o.name == RUN_FILE for o in objects):
            run_json = _run_json(call_with_retries(lambda: store.read_bytes(RUN_FILE), policy, time.sleep,
                                                   random.random))
    except (StoreError, MissingExtraError) as e:
        raise ReportInputError(f"cannot read {url}: {e}") from e
    if not results:
        raise ReportInputError(f"{url}: no task results (<benchmark>/<task>/result.json objects)")
    listing = {o.name: o.size for o in objects}
    bucket, _, prefix = url[len("gs://"):].strip("/").partition("/")
    files_url = f"https://storage.cloud.google.com/{bucket}/{prefix + '/' if prefix else ''}"
    return StoredRun(url, results, problems, run_json, StoreFiles(store, "", listing), files_url=files_url)


def read_source(source: str) -> StoredRun:
    """A local run folder or a store URL."""
    if "://" in source:
        return read_store(source.rstrip("/"))
    return read_local(Path(source))


def read_many(files: TaskFiles, wanted: list[tuple[str, str]], threads: int = 8) -> dict[tuple[str, str], bytes]:
    """Read ``(key, name)`` files in parallel (a store answers slowly but concurrently)."""
    if not wanted:
        return {}
    found: dict[tuple[str, str], bytes] = {}
    if isinstance(files, LocalFiles):
        threads = 1
    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(wanted)))) as pool:
        for item, data in zip(wanted, pool.map(lambda kn: files.read(*kn), wanted), strict=True):
            if data is not None:
                found[item] = data
    return found
