"""How the controller reaches a worker host: the ``Transport`` contract, and how one is found by name.

A provider makes hosts; a transport turns a host into Python interpreters that execnet (and so
xdist) can drive. SSH (``ssh.py``) is the built-in one; a ``kubectl exec -i POD -- python3``
transport is one new module plus one line in ``builtins.pytest_cloudeval_transports``. The
controller never looks past this interface, so bundle shipping, health checks, relocation of lost
slots, cost and teardown are the same whatever the transport.

Why slots: xdist takes its worker specs (``--tx``) at configure time, before any host exists, and
restarts a dead worker with the *same* spec. So each worker slot gets a stable spec from
``slot_spec`` that resolves through something the transport owns (for SSH an ssh_config file per
slot alias), and ``point`` re-aims a slot at another host when its host is lost.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pytest

from ..errors import MissingExtraError

if TYPE_CHECKING:
    from .base import Host


class Transport(ABC):
    """Reaches the hosts of one run. One object per run, made on the controller.

    Contract, for every implementation:

    - The constructor does no I/O. ``private`` is a 0700 folder removed after the run (per-run
      files such as ssh_config); ``key_dir`` keeps credentials, and is the same folder for every
      run of a warm pool, so kept hosts stay reachable.
    - ``configure(options)`` receives the provider's ``transport_options()`` (no I/O).
    - ``prepare()`` is called once before any host is made (make keys); it raises ``BackendError``.
    - ``access(user)`` is what every host must have installed at creation; the provider installs it
      (``BootConfig.access``). Empty when the transport needs nothing on the host.
    - ``wait_ready`` and ``gateway`` block until ``deadline`` (``time.monotonic()`` based) at the
      latest, give up with ``BackendError("cancelled")`` soon after ``cancel`` is set, and raise
      ``BackendError`` naming the host otherwise. ``gateway`` returns a health-checked execnet
      gateway (one round trip done) in ``group``.
    - ``slot_spec(slot, python, chdir)`` is an execnet spec that stays valid for the whole run;
      ``point(slot, host)`` makes it reach ``host`` from the next connection on (atomically: xdist
      may restart a worker at any moment). ``slot_of(spec)`` gives the slot of a worker's spec.
    - ``answers(host)`` is a quick reachability probe (a few seconds at most), never raising.
    """

    name: ClassVar[str]
    popen_runs_elsewhere: ClassVar[bool] = False
    """True when ``slot_spec`` returns ``popen`` specs whose interpreter runs on the host (e.g.
    ``popen//python=<kubectl exec -i POD -- python3>``): xdist would otherwise give that worker the
    controller's sys.path, as to any local popen worker."""

    hands_over_gateways: ClassVar[bool] = False
    """True when the gateway ``gateway(group, host, python, ...)`` returns is the interpreter a worker
    slot's spec on that host starts (same host, user and ``python``): the controller then ships the
    code over it and hands it to xdist as the host's first worker instead of opening a second one
    (``gateways.adopt``)."""

    def __init__(self, private: Path, key_dir: Path, label: str) -> None:
        self.private = private
        self.key_dir = key_dir
        self.label = label

    def configure(self, options: Mapping[str, str]) -> None:  # noqa: B027 - optional, no-op by default
        """What the provider says about reaching its hosts (``Provider.transport_options()``: for
        kubectl the kubeconfig, context and namespace). Called once, right after construction; no I/O."""

    def prepare(self) -> None:  # noqa: B027 - optional, no-op by default
        """Make what ``access`` needs (keys). Raises: BackendError."""

    def access(self, user: str) -> Mapping[str, str]:
        """What providers install on each host for this transport (default: nothing)."""
        return {}

    def wait_ready(self, host: Host, deadline: float, cancel: threading.Event) -> None:  # noqa: B027
        """Block until the host can be reached (default: no wait; ``gateway`` retries)."""

    @abstractmethod
    def gateway(self, group: Any, host: Host, python: str, deadline: float, cancel: threading.Event) -> Any:
        """A health-checked execnet gateway to ``python`` on ``host``, retried until ``deadline``."""

    @abstractmethod
    def slot_spec(self, slot: str, python: str, chdir: str) -> str:
        """The xdist ``--tx`` spec of worker slot ``slot`` (valid for the whole run)."""

    @abstractmethod
    def point(self, slot: str, host: Host) -> None:
        """Make ``slot``'s spec reach ``host`` (before its worker starts, and to move it)."""

    @abstractmethod
    def slot_of(self, spec: Any) -> str | None:
        """The slot whose spec is ``spec`` (an ``execnet.XSpec``), or None if it is not ours."""

    @abstractmethod
    def answers(self, host: Host) -> bool:
        """Whether the host is reachable right now (quick, never raises)."""


def load_transport(config: pytest.Config, name: str) -> type[Transport]:
    """The transport class registered as ``name`` (``pytest_cloudeval_transports``)."""
    loaders: dict[str, Any] = {}
    for batch in config.hook.pytest_cloudeval_transports():
        for key, loader in (batch or {}).items():
            loaders.setdefault(key, loader)
    if name not in loaders:
        raise pytest.UsageError(f"transport {name!r}: unknown (known: {', '.join(sorted(loaders)) or 'none'})")
    try:
        cls: type[Transport] = loaders[name]()
    except MissingExtraError as e:
        raise pytest.UsageError(f"transport {name}: {e}") from e
    return cls
