"""The ``ResultStore`` contract: a place (a bucket and prefix) that holds copies of result folders.

Stores register by URL scheme through the ``pytest_cloudeval_result_stores`` hook. The uploader, the
resume logic and the report command use only the verbs below, so a new store (S3, a file share)
implements them and nothing else. Object names are relative to the store's root (the URL's prefix)
and use ``/`` separators.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..errors import StoreError
from ..stored import parse_result

RESULT_FILE = "result.json"


class TransientStoreError(StoreError):
    """The store failed in a way that may pass (rate limit, 5xx, connection trouble, timeout): retry later."""


class ObjectNotFound(StoreError):
    """The named object does not exist in the store."""


@dataclass(frozen=True)
class StoredObject:
    """One object of a store, as listed."""

    name: str
    """Relative to the store's root."""
    size: int
    generation: str | None = None
    """Changes whenever the object is written (GCS generation): how tests prove nothing was rewritten."""
    updated: str | None = None
    """ISO 8601 time of the last write."""
    md5: str | None = None
    """Base64 MD5 of the content when the store knows it (compared before re-uploading on resume)."""


class ResultStore(ABC):
    """A bucket-like store of result files. Instances are shared between upload threads.

    Every method raises :class:`TransientStoreError` for trouble worth retrying and
    :class:`~pytest_cloudeval.errors.StoreError` for the rest (missing bucket, no permission, bad
    credentials); callers decide whether and how often to retry. Methods never retry on their own.
    """

    scheme: ClassVar[str] = ""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def describe(self, name: str = "") -> str:
        """The full URL of an object (for messages)."""
        return f"{self.url}/{name}" if name else self.url

    @abstractmethod
    def upload_file(self, local: Path, name: str, content_type: str | None = None) -> None:
        """Copy a local file to ``name`` (replacing it). Large files use the store's resumable upload.

        Raises:
            StoreError: the bucket is missing or not writable; TransientStoreError: retry.
        """

    @abstractmethod
    def upload_bytes(self, data: bytes, name: str, content_type: str | None = None) -> None:
        """Store ``data`` as ``name`` (replacing it). Raises as :meth:`upload_file`."""

    def upload_dir(self, local_dir: Path, prefix: str) -> list[str]:
        """Copy every regular file under ``local_dir`` to ``prefix/<relative path>``; ``result.json`` last.

        Returns the object names written. The uploader does more (allowlist, size cap, redaction,
        retries); this plain version is for tools and tests.
        """
        files = sorted((p for p in local_dir.rglob("*") if p.is_file() and not p.is_symlink()),
                       key=lambda p: (p.name == RESULT_FILE and p.parent == local_dir, str(p)))
        written = []
        for path in files:
            name = f"{prefix.rstrip('/')}/{path.relative_to(local_dir).as_posix()}"
            self.upload_file(path, name)
            written.append(name)
        return written

    @abstractmethod
    def exists(self, name: str) -> bool:
        """Whether the object exists."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[StoredObject]:
        """Every object whose name starts with ``prefix`` (recursive), sorted by name.

        Raises:
            StoreError: the bucket does not exist or cannot be read.
        """

    @abstractmethod
    def download(self, name: str, local: Path) -> None:
        """Copy the object to a local file. Raises :class:`ObjectNotFound` if it does not exist."""

    @abstractmethod
    def read_bytes(self, name: str) -> bytes:
        """The object's content. Raises :class:`ObjectNotFound` if it does not exist."""

    def read_text(self, name: str) -> str:
        """The object's content as UTF-8 text. Raises :class:`ObjectNotFound` if it does not exist."""
        return self.read_bytes(name).decode("utf-8")

    @abstractmethod
    def delete(self, name: str) -> None:
        """Remove the object; an object that does not exist counts as removed."""

    def check_writable(self, probe_name: str) -> None:
        """Write and delete a small probe object: fails before any task runs if the store is unusable.

        Raises:
            StoreError: with a message that says what to fix (bucket missing, no permission, ...).
        """
        self.upload_bytes(b"cloudeval write probe\n", probe_name, "text/plain")
        self.delete(probe_name)

    def close(self) -> None:  # noqa: B027 - optional hook, most stores hold nothing to release
        """Release connections (optional)."""


def run_base(run_prefix: str) -> str:
    """``run_prefix`` as a name prefix: ``"run-1/"`` (or ``""`` for the store's root)."""
    return f"{run_prefix.strip('/')}/" if run_prefix.strip("/") else ""


def task_keys(names: Iterable[str], run_prefix: str = "") -> dict[str, list[str]]:
    """Group a run's object names by task key ``benchmark/dirname`` (run-level files are left out)."""
    base = run_base(run_prefix)
    found: dict[str, list[str]] = {}
    for name in names:
        if not name.startswith(base):
            continue
        parts = name[len(base):].split("/")
        if len(parts) >= 3:
            found.setdefault(f"{parts[0]}/{parts[1]}", []).append(name)
    return found


def read_results(store: ResultStore, run_prefix: str, objects: Iterable[StoredObject] | None = None,
                 threads: int = 8) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The ``result.json`` of every task under ``run_prefix``: ``({key: result}, [problems])``.

    Unreadable or invalid results are left out and named in the problems (the task counts as not
    finished). ``objects`` may be an earlier listing of the run, to save a request.
    """
    base = run_base(run_prefix)
    if objects is None:
        objects = store.list(base)
    names = {o.name for o in objects}
    wanted = sorted((key, f"{base}{key}/{RESULT_FILE}") for key in task_keys(names, run_prefix)
                    if f"{base}{key}/{RESULT_FILE}" in names)

    def load(item: tuple[str, str]) -> tuple[str, dict[str, Any] | None, str | None]:
        key, name = item
        try:
            # The one validation of stored results (``stored.py``): a broken file means "not finished".
            return key, parse_result(store.read_bytes(name)), None
        except ObjectNotFound:
            return key, None, None
        except (ValueError, TypeError, AttributeError, UnicodeDecodeError) as e:
            return key, None, f"{store.describe(name)}: unreadable result ({e})"

    results: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    if not wanted:
        return results, problems
    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(wanted)))) as pool:
        for key, data, problem in pool.map(load, wanted):
            if data is not None:
                results[key] = data
            elif problem:
                problems.append(problem)
    return results, problems
