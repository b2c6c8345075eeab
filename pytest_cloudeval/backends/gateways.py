"""Open xdist's worker gateways to the VMs in parallel, before xdist asks for them one by one.

xdist's ``NodeManager.setup_nodes`` makes one gateway after another (RECIPES §4): with ssh each
takes a login and an interpreter start, ~0.3-0.5 s on an idle machine, so 50 VMs would wait ~20 s
in line after they are all ready. Here every gateway is opened at once on a few threads, in the
node manager's own execnet group and with the very spec (and id) xdist would use; the group's
``makegateway`` then hands each prepared gateway to xdist once. A restart of a lost worker later
asks again for the same spec and gets a fresh gateway, as before. A gateway that could not be
opened is left to xdist, which tries it itself and reports the error in its usual way.

Better still, a host's first slot need not open a gateway at all: the controller ships the code
over a gateway to the very interpreter a worker needs (same host, user and ``python=``), and
``adopt`` hands that one to xdist (one ssh login, one Python start and one execnet bootstrap less
per host, ~0.1 s of CPU each on a small machine).
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


def _key(spec: Any) -> tuple[str, str]:
    """A spec's identity: its gateway id (``gw3``) and its text (the slot's ssh alias and options)."""
    return str(getattr(spec, "id", None)), str(getattr(spec, "_spec", spec))


_CONFIGURE = """
import os
path, nice, env = channel.receive()
if path:
    if not os.path.exists(path):
        os.mkdir(path)
    os.chdir(path)
if nice and hasattr(os, 'nice'):
    os.nice(nice)
if env:
    for name, value in env.items():
        os.environ[name] = value
"""


def adopt(gateway: Any, group: Any, spec: Any, timeout: float = 30.0) -> Any:
    """Make ``gateway`` (open, idle, in another execnet group, to an interpreter on the host that
    ``spec`` reaches, started with ``spec``'s ``python`` and execmodel) what ``group.makegateway(spec)``
    would have returned: the spec's id and spec, a member of ``group``, in ``spec.chdir`` with its
    ``nice`` and ``env`` applied (as execnet does after a bootstrap). Raises what execnet raises
    when the gateway is no longer usable (the caller then opens a fresh one)."""
    channel = gateway.remote_exec(_CONFIGURE)
    channel.send((spec.chdir, (spec.nice and int(spec.nice)) or 0, spec.env))
    channel.waitclose(timeout)
    group.allocate_id(spec)
    gateway._group._gateways.remove(gateway)  # see xdist_internals 9.
    del gateway._group
    gateway.id = spec.id
    gateway.spec = spec
    group._register(gateway)
    return gateway


def prestart(group: Any, specs: Sequence[Any], say: Callable[[str], None] | None = None,
             threads: int = MAX_THREADS, opened: Callable[[Any], Any | None] | None = None,
             prepare: Callable[[Any], None] | None = None) -> PreparedGateways:
    """Open a gateway for each of ``specs`` in ``group`` on up to ``threads`` threads, and make the
    group's ``makegateway`` return them (each once) when xdist asks for the same spec.

    ``opened(spec)``, when given, returns a gateway already made in ``group`` for that spec (see
    ``adopt``) or None; only the specs it has none for are opened here. ``prepare(gateway)``, when
    given, runs on every gateway before xdist gets it (also on those xdist asks for later, to
    restart a worker); it must not raise."""
    prepared = PreparedGateways()
    original = group.makegateway

    def fresh(spec: Any) -> Any:
        gateway = original(spec)
        if prepare is not None:
            prepare(gateway)
        return gateway

    def make(spec: Any) -> None:
        try:
            ready = opened(spec) if opened is not None else None
            if ready is not None and prepare is not None:
                prepare(ready)
            prepared.put(spec, ready if ready is not None else fresh(spec))
        except Exception as e:  # noqa: BLE001 - xdist retries this spec itself and reports its error
            if say is not None:
                say(f"cloudeval: could not open the gateway {getattr(spec, 'id', spec)} ahead of xdist ({e}); "
                    f"xdist will try it")

    if len(specs) > 1 or opened is not None or prepare is not None:
        with ThreadPoolExecutor(max_workers=max(1, min(threads, len(specs))),
                                thread_name_prefix="cloudeval-gateway") as pool:
            list(pool.map(make, specs))

    def makegateway(spec: Any = None) -> Any:
        gateway = prepared.take(spec) if spec is not None else None
        return gateway if gateway is not None else fresh(spec)

    group.makegateway = makegateway
    return prepared
