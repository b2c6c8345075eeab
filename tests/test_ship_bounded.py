"""Shipping bundles to many VMs at once holds a bounded number of bundle copies (``bundle.ship``)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pytest_cloudeval.backends.bundle import Bundle, ship


class FakeChannel:
    """Plays the VM's side of ``_REMOTE_SHIP``: lacks every bundle; counts sends in flight."""

    def __init__(self, stats: dict[str, int], lock: threading.Lock) -> None:
        self.stats, self.lock = stats, lock
        self.replies: list[Any] = []

    def send(self, item: Any) -> None:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
            with self.lock:
                self.stats["now"] += 1
                self.stats["most"] = max(self.stats["most"], self.stats["now"])
            time.sleep(0.02)  # writing a bundle into the ssh pipe
            with self.lock:
                self.stats["now"] -= 1
                self.stats["sent"] += 1
            self.replies.append(item[0])
        elif isinstance(item, tuple) and isinstance(item[1], list):  # (base, names)
            self.replies.append(list(item[1]))
        else:  # (run_dir, links, wait_docker_s)
            self.replies.append({"python": [3, 11, 2], "executable": "/usr/bin/python3", "docker_ok": None})

    def receive(self, timeout: float | None = None) -> Any:
        return self.replies.pop(0)

    def waitclose(self, timeout: float | None = None) -> None:
        pass


class FakeGateway:
    def __init__(self, stats: dict[str, int], lock: threading.Lock) -> None:
        self.stats, self.lock = stats, lock

    def remote_exec(self, source: str) -> FakeChannel:
        return FakeChannel(self.stats, self.lock)


def test_sends_at_once_are_bounded_and_every_vm_gets_every_bundle() -> None:
    bundles = [Bundle("rt", "a" * 20, b"x" * 1000, 1, 1000), Bundle("src", "b" * 20, b"y" * 10, 1, 10)]
    stats, lock = {"now": 0, "most": 0, "sent": 0}, threading.Lock()
    sending = threading.BoundedSemaphore(3)

    def one(_: int) -> Any:
        return ship(FakeGateway(stats, lock), "/var/tmp/cloudeval", bundles, "/run", {"site": "rt-a", "src": "src-b"},
                    sending=sending)

    with ThreadPoolExecutor(max_workers=16) as pool:
        reports = list(pool.map(one, range(16)))
    assert stats["sent"] == 32 and all(r.sent == ("rt-" + "a" * 20, "src-" + "b" * 20) for r in reports)
    assert 1 < stats["most"] <= 3, stats


def test_unbounded_without_a_semaphore() -> None:
    bundles = [Bundle("rt", "a" * 20, b"x" * 1000, 1, 1000)]
    stats, lock = {"now": 0, "most": 0, "sent": 0}, threading.Lock()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda _: ship(FakeGateway(stats, lock), "/b", bundles, "/run", {"site": "rt-a"}), range(8)))
    assert stats["most"] > 3, "the fake does not show concurrency, so the bounded test proves nothing"
