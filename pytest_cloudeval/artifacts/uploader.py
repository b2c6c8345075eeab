"""Background upload of finished task folders: a queue, a few threads, retries with backoff.

Each job copies one task folder to the store: only regular files inside the folder (symlinks that
leave it are skipped), each under a size cap, redacted again on the way, ``result.json`` last so its
presence in the store means the folder is complete. Store-agnostic: it only uses ``ResultStore``.
Clock, sleep and randomness are injectable so the retry logic is tested without waiting.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import queue
import random
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

from ..errors import StoreError
from ..redact import Redactor
from ..results import is_temporary
from .base import RESULT_FILE, ResultStore, StoredObject, TransientStoreError

T = TypeVar("T")
IN_MEMORY_BYTES = 8 * 1024 * 1024
"""Files up to this size are redacted in memory; larger ones are streamed through a temporary file."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: retry ``n`` waits between half and all of ``min(cap, base * 2**(n-1))``."""

    retries: int = 5
    base_s: float = 0.5
    cap_s: float = 30.0

    def delay(self, retry: int, rand: float) -> float:
        ceiling = min(self.cap_s, self.base_s * (2 ** (retry - 1)))
        return ceiling / 2 + ceiling / 2 * rand


class RetriesExhausted(StoreError):
    """A transient error outlived every retry; carries the last error's message."""


def call_with_retries(fn: Callable[[], T], policy: RetryPolicy, sleep: Callable[[float], None],
                      rand: Callable[[], float], on_retry: Callable[[int, float, Exception], None] | None = None) -> T:
    """``fn()``, retried on :class:`TransientStoreError` up to ``policy.retries`` times.

    Raises:
        RetriesExhausted: the last try still failed transiently; StoreError: a permanent failure.
    """
    retry = 0
    while True:
        try:
            return fn()
        except TransientStoreError as e:
            retry += 1
            if retry > policy.retries:
                raise RetriesExhausted(f"{e} (gave up after {policy.retries + 1} tries)") from e
            delay = policy.delay(retry, rand())
            if on_retry is not None:
                on_retry(retry, delay, e)
            sleep(delay)


# -- what to upload ------------------------------------------------------------------------------
@dataclass(frozen=True)
class PlannedFile:
    path: Path
    rel: str
    size: int


def plan_task_dir(task_dir: Path, max_bytes: int) -> tuple[list[PlannedFile], list[dict[str, Any]]]:
    """The files of a task folder to upload (``result.json`` last) and those skipped, with why.

    Only regular files inside ``task_dir`` qualify: a symlink is followed only if its target is
    inside the folder too; sockets, fifos and devices are skipped. ``result.json`` is never capped.
    Temporaries (files being written or redacted, or left so by a killed run) are never uploaded.
    """
    root = task_dir.resolve()
    files: list[PlannedFile] = []
    skipped: list[dict[str, Any]] = []
    for dirpath, dirnames, filenames in os.walk(task_dir, followlinks=False):
        base = Path(dirpath)
        for dirname in list(dirnames):
            if is_temporary(dirname):
                dirnames.remove(dirname)
                continue
            link = base / dirname
            if link.is_symlink():
                dirnames.remove(dirname)  # never walk into linked folders (loops, escapes)
                skipped.append({"path": link.relative_to(task_dir).as_posix(), "bytes": None,
                                "reason": "symlinked folder"})
        for filename in filenames:
            if is_temporary(filename):
                continue
            path = base / filename
            rel = path.relative_to(task_dir).as_posix()
            try:
                real = path.resolve(strict=True)
            except (OSError, RuntimeError):
                skipped.append({"path": rel, "bytes": None, "reason": "broken symlink"})
                continue
            if not real.is_relative_to(root):
                skipped.append({"path": rel, "bytes": None, "reason": "symlink to outside the task folder"})
                continue
            if not real.is_file():
                skipped.append({"path": rel, "bytes": None, "reason": "not a regular file"})
                continue
            size = real.stat().st_size
            if size > max_bytes and rel != RESULT_FILE:
                skipped.append({"path": rel, "bytes": size, "reason": f"larger than the upload cap ({max_bytes} bytes)"})
                continue
            files.append(PlannedFile(real, rel, size))
    files.sort(key=lambda f: (f.rel == RESULT_FILE, f.rel))
    skipped.sort(key=lambda s: s["path"])
    return files, skipped


def redact_stream(src: IO[bytes], dst: IO[bytes], redactor: Redactor, chunk_bytes: int = 1 << 20) -> None:
    """Copy ``src`` to ``dst`` with every secret masked, in bounded memory (see ``Redactor.stream``)."""
    redactor.stream(src, dst, chunk_bytes)


# -- results ------------------------------------------------------------------------------------
@dataclass
class TaskUpload:
    """What happened to one task folder's upload."""

    key: str
    dest: str
    uploaded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    retries: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "dest": self.dest, "uploaded": list(self.uploaded),
                "unchanged": list(self.unchanged), "skipped": list(self.skipped), "error": self.error,
                "retries": self.retries, "seconds": round(self.seconds, 3)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskUpload:
        return cls(key=str(data["key"]), dest=str(data.get("dest", "")), uploaded=list(data.get("uploaded", [])),
                   unchanged=list(data.get("unchanged", [])), skipped=list(data.get("skipped", [])),
                   error=data.get("error"), retries=int(data.get("retries", 0)),
                   seconds=float(data.get("seconds", 0.0)))


@dataclass(frozen=True)
class UploadJob:
    """Copy ``task_dir`` to ``dest/`` in the store.

    ``mode``: ``"new"`` (plain upload), ``"replace"`` (a task run again: first remove the stored
    result.json, afterwards objects the new folder no longer has) or ``"sync"`` (resume: upload only
    what the store lacks or holds differently, nothing if the stored folder is complete).
    """

    key: str
    task_dir: Path
    dest: str
    mode: str = "new"


class _Prepared:
    """A file's upload content: redacted bytes in memory, or a (temporary) file for big ones."""

    def __init__(self, planned: PlannedFile, redactor: Redactor, extra_result: dict[str, Any] | None) -> None:
        self.data: bytes | None = None
        self.path: Path | None = None
        self._temp: Path | None = None
        if planned.size <= IN_MEMORY_BYTES or planned.rel == RESULT_FILE:
            data = planned.path.read_bytes()
            if planned.rel == RESULT_FILE and extra_result:
                try:
                    obj = json.loads(data)
                    obj.update(extra_result)
                    data = (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode()
                except (ValueError, AttributeError):
                    pass
            self.data = redactor.bytes(data)
        elif redactor:
            fd, name = tempfile.mkstemp(prefix="cloudeval-upload-")
            self._temp = Path(name)
            with os.fdopen(fd, "wb") as dst, planned.path.open("rb") as src:
                redact_stream(src, dst, redactor)
            self.path = self._temp
        else:
            self.path = planned.path

    def md5(self) -> str:
        digest = hashlib.md5(usedforsecurity=False)
        if self.data is not None:
            digest.update(self.data)
        else:
            assert self.path is not None
            with self.path.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
        return base64.b64encode(digest.digest()).decode("ascii")

    def upload(self, store: ResultStore, name: str) -> None:
        if self.data is not None:
            store.upload_bytes(self.data, name)
        else:
            assert self.path is not None
            store.upload_file(self.path, name)

    def close(self) -> None:
        if self._temp is not None:
            self._temp.unlink(missing_ok=True)


def upload_task(store: ResultStore, job: UploadJob, redactor: Redactor, max_bytes: int, policy: RetryPolicy,
                sleep: Callable[[float], None] = time.sleep, rand: Callable[[], float] = random.random,
                clock: Callable[[], float] = time.monotonic) -> TaskUpload:
    """Upload one task folder now (in the calling thread). Never raises a StoreError: it is recorded."""
    started = clock()
    report = TaskUpload(key=job.key, dest=job.dest)

    def count(_retry: int, _delay: float, _error: Exception) -> None:
        report.retries += 1

    def retried(fn: Callable[[], T]) -> T:
        return call_with_retries(fn, policy, sleep, rand, count)

    base = job.dest.rstrip("/")
    try:
        files, skipped = plan_task_dir(job.task_dir, max_bytes)
        # Names are redacted too: a secret in a file name must not become an object name (or a URL).
        report.skipped = [dict(s, path=redactor.text(s["path"])) for s in skipped]
        if not any(f.rel == RESULT_FILE for f in files):
            raise StoreError(f"{job.task_dir} has no {RESULT_FILE}: nothing finished to upload")
        existing: dict[str, StoredObject] = {}
        if job.mode in ("sync", "replace"):
            existing = {o.name[len(base) + 1:]: o for o in retried(lambda: store.list(base + "/"))}
        if job.mode == "sync" and RESULT_FILE in existing:
            report.unchanged = sorted(existing)  # complete in the store: never rewrite it
            return report
        if job.mode == "replace" and RESULT_FILE in existing:
            # From here until the new result.json lands, the store must not look complete.
            retried(lambda: store.delete(f"{base}/{RESULT_FILE}"))
        extra = {"upload_skipped": report.skipped} if report.skipped else None
        for planned in files:
            rel = redactor.text(planned.rel)
            prepared = _Prepared(planned, redactor, extra)
            try:
                stored = existing.get(rel)
                if job.mode == "sync" and stored is not None and stored.md5 and stored.md5 == prepared.md5():
                    report.unchanged.append(rel)
                    continue
                name = f"{base}/{rel}"
                retried(lambda p=prepared, n=name: p.upload(store, n))  # type: ignore[misc]
                report.uploaded.append(rel)
            finally:
                prepared.close()
        if job.mode == "replace":
            keep = {redactor.text(f.rel) for f in files}
            for stale in sorted(set(existing) - keep):
                retried(lambda s=stale: store.delete(f"{base}/{s}"))  # type: ignore[misc]
    except StoreError as e:
        report.error = str(e)
    except OSError as e:  # the local folder vanished or is unreadable
        report.error = f"reading {job.task_dir}: {e}"
    finally:
        report.seconds = clock() - started
    return report


class Uploader:
    """A queue of upload jobs served by ``threads`` daemon threads: ``submit`` never blocks on the store.

    Args:
        store: where to upload (shared by the threads).
        redactor: applied to every byte uploaded.
        max_bytes: per-file cap; bigger files are skipped and listed.
        policy: retries for transient errors.
        threads: concurrent uploads (each job uploads its files in order, result.json last).
        sleep, rand, clock: injectable for tests.
    """

    def __init__(self, store: ResultStore, redactor: Redactor, *, max_bytes: int, policy: RetryPolicy,
                 threads: int = 2, sleep: Callable[[float], None] = time.sleep,
                 rand: Callable[[], float] = random.random, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.redactor = redactor
        self.max_bytes = max_bytes
        self.policy = policy
        self._sleep, self._rand, self._clock = sleep, rand, clock
        self._queue: queue.Queue[UploadJob | None] = queue.Queue()
        self._lock = threading.Lock()
        self._reports: dict[str, TaskUpload] = {}
        self._threads = [threading.Thread(target=self._serve, name=f"cloudeval-upload-{i}", daemon=True)
                         for i in range(max(1, threads))]
        for thread in self._threads:
            thread.start()
        self._closed = False

    def grow(self, threads: int) -> None:
        """Serve the queue with at least ``threads`` threads (the controller, as local workers join)."""
        if self._closed:
            return
        for i in range(len(self._threads), threads):
            thread = threading.Thread(target=self._serve, name=f"cloudeval-upload-{i}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def submit(self, job: UploadJob) -> None:
        if self._closed:
            raise RuntimeError("the uploader is closed")
        self._queue.put(job)

    def wait(self) -> None:
        """Block until every submitted job has finished (successfully or not)."""
        self._queue.join()

    def close(self) -> None:
        """Finish the queue, then stop the threads."""
        if self._closed:
            return
        self.wait()
        self._closed = True
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=5)

    def reports(self) -> dict[str, TaskUpload]:
        with self._lock:
            return dict(self._reports)

    def _serve(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                try:
                    report = upload_task(self.store, job, self.redactor, self.max_bytes, self.policy,
                                         self._sleep, self._rand, self._clock)
                except Exception as e:  # noqa: BLE001 - a bug must not kill the thread and hang wait()
                    report = TaskUpload(key=job.key, dest=job.dest, error=f"internal error: {type(e).__name__}: {e}")
                with self._lock:
                    self._reports[job.key] = report
            finally:
                self._queue.task_done()
