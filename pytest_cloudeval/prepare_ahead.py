"""Sandboxes prepared ahead: while a worker runs one item, the next item's sandbox comes up.

A worker knows its next item (pytest's ``nextitem``, which is what xdist hands this worker, not the
collection order). :class:`PreparedSandboxes` brings that item's sandbox up in a background thread
(``Sandbox.prepare()``, only for sandboxes with ``prepares_ahead``), and the runner takes it when the
item runs, if its spec is exactly the one the runner would build (same task, repeat, attempt, image,
limits, network, env). Anything else is discarded (closed like any sandbox):

* a different item runs next (``discard_except`` at each item's start), or the prepared one is not
  taken (the item was resumed, skipped, or its spec differs);
* the session ends (``-x``/maxfail, Ctrl+C, SIGTERM, the end of the queue): ``shutdown``.

A sandbox is closed only once its ``prepare()`` has returned (never under it), by whichever of the
preparing thread and the discarding caller comes last; a preparation that fails is closed at once,
and the runner starts a fresh sandbox the normal way. The controller's label sweep remains the
backstop for a process killed outright.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .sandbox.base import Sandbox, SandboxSpec

SHUTDOWN_WAIT_S = 60.0
"""How long the end of a session waits for preparations still running (each has engine timeouts)."""


def _same_attempt(a: SandboxSpec, b: SandboxSpec) -> bool:
    """Equal in every field; the names only up to their random suffix (``...-a1-<hex>``)."""
    return a.name.rsplit("-", 1)[0] == b.name.rsplit("-", 1)[0] and replace(a, name="") == replace(b, name="")


@dataclass(eq=False)
class _Entry:
    sandbox: Sandbox
    future: Future[None] | None = None
    error: str | None = None
    discarded: bool = False
    closed: bool = False
    done: threading.Event = field(default_factory=threading.Event)


@dataclass
class Taken:
    """What ``take`` found: the prepared sandbox (None: start one the normal way) and why not."""

    sandbox: Sandbox | None = None
    note: str | None = None


class PreparedSandboxes:
    """One process's sandboxes prepared ahead, keyed by the item (nodeid) they are for."""

    def __init__(self, threads: int = 1) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._threads = threads
        self._closed = False
        self._running: set[Future[None]] = set()
        """Preparations not yet ended, also of sandboxes already discarded (shutdown waits for them)."""
        self.prepared = 0
        self.taken = 0
        self.discarded = 0
        self.failed = 0

    def prepare(self, nodeid: str, sandbox: Sandbox) -> bool:
        """Start preparing ``sandbox`` (not started, never used) for item ``nodeid``, in the
        background. False when nothing was started (already one for that item, or shut down)."""
        with self._lock:
            if self._closed or nodeid in self._entries:
                return False
            entry = _Entry(sandbox)
            self._entries[nodeid] = entry
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="cloudeval-prepare")
            self.prepared += 1
            entry.future = future = self._pool.submit(self._run, entry)
            self._running.add(future)
        future.add_done_callback(self._ended)
        return True

    def _ended(self, future: Future[None]) -> None:
        with self._lock:
            self._running.discard(future)

    def _run(self, entry: _Entry) -> None:
        try:
            entry.sandbox.prepare()
        except Exception as e:  # noqa: BLE001 - reported by take(); the runner falls back
            entry.error = f"{type(e).__name__}: {e}"
        finally:
            with self._lock:
                entry.done.set()
                close = entry.discarded or entry.error is not None
            if close:
                self._close(entry)

    def _close(self, entry: _Entry) -> None:
        with self._lock:
            if entry.closed:
                return
            entry.closed = True
        try:
            entry.sandbox.close()
        except Exception:  # noqa: BLE001 - close() never raises by contract; the sweep is the backstop
            pass

    def _discard(self, entry: _Entry) -> None:
        with self._lock:
            entry.discarded = True
            self.discarded += 1
            ready = entry.done.is_set()
        if ready:
            self._close(entry)
        # else: the preparing thread closes it when prepare() returns

    def take(self, nodeid: str, spec: SandboxSpec) -> Taken:
        """The sandbox prepared for ``nodeid`` if it was prepared for exactly ``spec`` (waiting for its
        preparation to end); otherwise it is discarded and the caller starts one the normal way."""
        with self._lock:
            entry = self._entries.pop(nodeid, None)
        if entry is None:
            return Taken()
        if not _same_attempt(entry.sandbox.spec, spec):
            self._discard(entry)
            return Taken(note="the sandbox prepared ahead was for another spec: discarded")
        try:
            entry.done.wait()
        except BaseException:  # Ctrl+C while waiting: it is nobody's then
            self._discard(entry)
            raise
        if entry.error is not None:
            with self._lock:
                self.failed += 1
            return Taken(note=f"preparing the sandbox ahead failed ({entry.error}); started it anew")
        with self._lock:
            self.taken += 1
        return Taken(sandbox=entry.sandbox)

    def discard_except(self, keep: set[str]) -> None:
        """Discard every prepared sandbox whose item is not in ``keep`` (the current and next items)."""
        with self._lock:
            gone = [self._entries.pop(k) for k in [k for k in self._entries if k not in keep]]
        for entry in gone:
            self._discard(entry)

    def pending(self) -> list[str]:
        with self._lock:
            return list(self._entries)

    def shutdown(self, timeout: float = SHUTDOWN_WAIT_S) -> None:
        """Discard everything, refuse new work, and wait (bounded) for preparations still running,
        which close their sandboxes as they end. Idempotent."""
        with self._lock:
            self._closed = True
        self.discard_except(set())
        with self._lock:
            futures = list(self._running)
        if futures:
            wait(futures, timeout=timeout)
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)
