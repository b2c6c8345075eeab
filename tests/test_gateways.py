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


def test_a_gateway_made_elsewhere_is_adopted_as_the_spec_s(tmp_path: Any) -> None:
    """The gateway the code was shipped over becomes a worker's: in xdist's group, with the spec's id
    and spec, in its chdir; only the specs without one are opened, and xdist gets each once."""
    from pytest_cloudeval.backends.gateways import adopt

    shipping, group = execnet.Group(), execnet.Group(execmodel="main_thread_only")
    shipping.set_execmodel("thread", "main_thread_only")
    try:
        shipped = shipping.makegateway(f"popen//python={sys.executable}")
        pid = shipped.remote_exec("import os; channel.send(os.getpid())").receive(timeout=10)
        wanted = []
        for i in range(2):
            spec = execnet.XSpec(f"execmodel=main_thread_only//popen//python={sys.executable}"
                                 f"//chdir={tmp_path / f'w{i}'}")
            group.allocate_id(spec)
            wanted.append(spec)
        asked: list[str] = []

        def opened(spec: Any) -> Any:
            asked.append(spec.id)
            return adopt(shipped, group, spec) if spec is wanted[0] else None

        prestart(group, wanted, opened=opened)
        assert sorted(asked) == ["gw0", "gw1"] and len(shipping) == 0 and len(group) == 2
        first = group.makegateway(wanted[0])
        assert first is shipped and first.id == "gw0" and first.spec is wanted[0]
        where = first.remote_exec("import os; channel.send((os.getpid(), os.getcwd()))").receive(timeout=10)
        assert where == (pid, str(tmp_path / "w0")), "not the same interpreter, or not in the spec's chdir"
        other = group.makegateway(wanted[1])
        assert other is not shipped and other.remote_exec("import os; channel.send(os.getpid())").receive(10) != pid
        assert len(group) == 2, "xdist got the adopted and the prepared gateway, not new ones"
    finally:
        group.terminate(timeout=5)
        shipping.terminate(timeout=5)


def test_adopting_a_dead_gateway_raises_and_leaves_the_groups_alone() -> None:
    from pytest_cloudeval.backends.gateways import adopt

    shipping, group = execnet.Group(), execnet.Group(execmodel="main_thread_only")
    try:
        shipped = shipping.makegateway(f"popen//python={sys.executable}")
        shipped.remote_exec("import os; os._exit(0)")
        time.sleep(0.5)
        spec = execnet.XSpec(f"execmodel=main_thread_only//popen//python={sys.executable}//chdir=/tmp")
        group.allocate_id(spec)
        with pytest.raises((OSError, EOFError, execnet.RemoteError, execnet.TimeoutError)):
            adopt(shipped, group, spec, timeout=5)
        assert len(group) == 0 and len(shipping) == 1
    finally:
        group.terminate(timeout=5)
        shipping.terminate(timeout=5)


def test_ssh_configs_keep_the_default_key_exchange(tmp_path: Any) -> None:
    """The link carries secrets: no weaker key exchange than the client's default (OpenSSH 9's is a
    post-quantum hybrid), even though a classical one would save ~150 ms of CPU per login."""
    from pytest_cloudeval.backends.ssh import ssh_config_text

    text = ssh_config_text("cloudeval-w0", "127.0.0.2", 22, "cloudeval", tmp_path / "key")
    assert not [line for line in text.splitlines() if line.strip().lower().startswith(("kexalgorithms", "ciphers",
                                                                                         "macs"))], text
