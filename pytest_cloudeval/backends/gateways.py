"""Open xdist's worker gateways to the VMs in parallel, before xdist asks for them one by one.

xdist's ``NodeManager.setup_nodes`` makes one gateway after another (RECIPES §4): with ssh each
takes a login and an interpreter start, ~0.3-0.5 s on an idle machine, so 50 VMs would wait ~20 s
in line after they are all ready. Here every gateway is opened at once on a few threads, in the
node manager's own execnet group and with the very spec (and id) xdist would use; the group's
``makegateway`` then hands each prepared gateway to xdist once. A restart of a lost worker later
asks again for the same spec and gets a fresh gateway, as before. A gateway that could not be
opened is left to xdist, which tries it itself and reports the error in its usual way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

MAX_THREADS = 16
"""Logins at once: enough to hide each login's latency, few enough not to swamp a small controller."""


class PreparedGateways:
    """Gateways made ahead of xdist; ``take(spec)`` returns (once) the one made for that spec."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ready: dict[tuple[str, str], Any] = {}

    def put(self, spec: Any, gateway: Any) -> None:
        with self._lock:
            self._ready[_key(spec)] = gateway

    def take(self, spec: Any) -> Any | None:
        with self._lock:
            return self._ready.pop(_key(spec), None)

    def has(self, spec: Any) -> bool:
        with self._lock:
            return _key(spec) in self._ready


def _key(spec: Any) -> tuple[str, str]:
    """A spec's identity: its gateway id (``gw3``) and its text (the slot's ssh alias and options)."""
    return str(getattr(spec, "id", None)), str(getattr(spec, "_spec", spec))


def take_first(group: Any) -> tuple[PreparedGateways, Callable[[Any], Any]]:
    """Make ``group.makegateway`` hand out prepared gateways first (once per group); returns the
    prepared gateways and the group's own ``makegateway``, to open more with."""
    installed = getattr(group, "_cloudeval_prepared", None)
    if installed is not None:
        return installed  # type: ignore[no-any-return]
    prepared = PreparedGateways()
    original = group.makegateway

    def makegateway(spec: Any = None) -> Any:
        gateway = prepared.take(spec) if spec is not None else None
        return gateway if gateway is not None else original(spec)

    group.makegateway = makegateway
    group._cloudeval_prepared = (prepared, original)
    return prepared, original


def prestart(group: Any, specs: Sequence[Any], say: Callable[[str], None] | None = None,
             threads: int = MAX_THREADS) -> PreparedGateways:
    """Open a gateway for each of ``specs`` in ``group`` on up to ``threads`` threads (those not
    opened already, e.g. by ``open_early``), and make the group's ``makegateway`` return them (each
    once) when xdist asks for the same spec."""
    prepared, original = take_first(group)
    todo = [spec for spec in specs if not prepared.has(spec)]

    def make(spec: Any) -> None:
        try:
            prepared.put(spec, original(spec))
        except Exception as e:  # noqa: BLE001 - xdist retries this spec itself and reports its error
            if say is not None:
                say(f"cloudeval: could not open the gateway {getattr(spec, 'id', spec)} ahead of xdist ({e}); "
                    f"xdist will try it")

    if len(todo) > 1:
        with ThreadPoolExecutor(max_workers=max(1, min(threads, len(todo))),
                                thread_name_prefix="cloudeval-gateway") as pool:
            list(pool.map(make, todo))
    return prepared


class EarlyGateways:
    """Worker gateways opened while other hosts still get ready: ``open(host, specs)`` from a
    readying thread, as soon as ``host`` is ready, for the slots the plan gives it; ``settle`` after
    the slots are assigned drops (exits) each one whose slot ended up elsewhere or was cut."""

    def __init__(self, group: Any) -> None:
        self.prepared, self._original = take_first(group)
        self._lock = threading.Lock()
        self._where: dict[tuple[str, str], tuple[Any, str]] = {}
        """spec key -> (spec, host name it was opened on)."""

    def open(self, host: str, specs: Sequence[Any]) -> None:
        for spec in specs:
            try:
                gateway = self._original(spec)
            except Exception:  # noqa: BLE001 - prestart or xdist opens it again, and reports
                continue
            with self._lock:
                self._where[_key(spec)] = (spec, host)
            self.prepared.put(spec, gateway)

    def settle(self, host_of: Callable[[Any], str | None]) -> int:
        """Exit the prepared gateways whose spec's host (``host_of(spec)``, None: cut) is not the one
        they were opened on; returns how many were kept."""
        with self._lock:
            opened = list(self._where.values())
        kept = 0
        for spec, host in opened:
            if host_of(spec) == host:
                kept += 1
                continue
            gateway = self.prepared.take(spec)
            if gateway is not None:
                gateway.exit()
        return kept
