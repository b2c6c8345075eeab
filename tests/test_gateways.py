"""Gateways opened ahead of xdist, all at once (``backends/gateways.py``)."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import execnet
import pytest
import xdist.workermanage

from pytest_cloudeval import xdist_internals
from pytest_cloudeval.backends.gateways import prestart


class FakeGroup:
    """Counts concurrent ``makegateway`` calls; a spec named in ``broken`` fails."""

    def __init__(self, broken: tuple[str, ...] = ()) -> None:
        self.broken = broken
        self.lock = threading.Lock()
        self.active = 0
        self.most = 0
        self.made: list[str] = []

    def makegateway(self, spec: Any = None) -> Any:
        with self.lock:
            self.active += 1
            self.most = max(self.most, self.active)
        try:
            time.sleep(0.05)
            if spec.id in self.broken:
                raise OSError(f"cannot reach {spec.id}")
            with self.lock:
                self.made.append(spec.id)
            return ("gateway", spec.id, len(self.made))
        finally:
            with self.lock:
                self.active -= 1


def specs(count: int) -> list[execnet.XSpec]:
    out = []
    for i in range(count):
        spec = execnet.XSpec(f"execmodel=main_thread_only//ssh=cloudeval-w{i}//python=python3")
        spec.id = f"gw{i}"
        out.append(spec)
    return out


def test_gateways_are_opened_at_once_and_handed_out_once() -> None:
    group, wanted = FakeGroup(), specs(6)
    prestart(group, wanted)
    assert group.most > 1, "the gateways were opened one after another"
    assert sorted(group.made) == sorted(str(s.id) for s in wanted)
    first = [group.makegateway(spec) for spec in wanted]  # what xdist's setup_node then asks
    assert [g[1] for g in first] == [s.id for s in wanted] and len(group.made) == 6, "no second gateway opened"
    again = group.makegateway(wanted[2])  # a restart of a lost worker: a fresh gateway
    assert again[1] == "gw2" and again != first[2] and len(group.made) == 7


def test_a_gateway_that_fails_ahead_is_left_to_xdist() -> None:
    group, said = FakeGroup(broken=("gw1",)), list[str]()
    prestart(group, specs(3), said.append)
    assert len(said) == 1 and "gw1" in said[0] and "cannot reach gw1" in said[0]
    group.broken = ()
    assert group.makegateway(specs(3)[1])[1] == "gw1"  # xdist's own try (it would report its error)


def test_real_execnet_gateways_prestarted_in_a_group() -> None:
    group = execnet.Group(execmodel="main_thread_only")
    try:
        wanted = []
        for _ in range(3):
            spec = execnet.XSpec(f"execmodel=main_thread_only//popen//python={sys.executable}")
            group.allocate_id(spec)  # as xdist's NodeManager does
            wanted.append(spec)
        prestart(group, wanted)
        assert len(group) == 3
        for spec in wanted:
            gateway = group.makegateway(spec)
            assert gateway.id == spec.id
            assert gateway.remote_exec("import os; channel.send(os.getpid())").receive(timeout=10) > 0
        assert len(group) == 3, "xdist got the prepared gateways, not new ones"
    finally:
        group.terminate(timeout=5)


def test_the_xdist_internal_it_relies_on_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not [p for p in xdist_internals.problems() if "makegateway" in p]

    def setup_node(self: Any, spec: Any, putevent: Any) -> Any:
        return self.pool.open(spec)  # a future xdist that no longer asks its group

    monkeypatch.setattr(xdist.workermanage.NodeManager, "setup_node", setup_node)
    assert any("no longer calls self.group.makegateway(spec)" in p for p in xdist_internals.problems())
