"""The xdist internals the plugin patches are checked: CI fails here when an xdist upgrade breaks one,
and a cloud run stops with a clear error instead of hanging or crashing mid-run."""

from __future__ import annotations

import pytest
import xdist.dsession
import xdist.newhooks
import xdist.workermanage

from pytest_cloudeval import xdist_internals


def test_the_installed_xdist_has_every_internal_the_plugin_uses() -> None:
    assert xdist_internals.problems() == []
    xdist_internals.require()


def test_a_missing_make_reltoroot_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(xdist.workermanage, "make_reltoroot")
    [problem] = xdist_internals.problems()
    assert "make_reltoroot is gone" in problem and "checked against" in problem
    with pytest.raises(pytest.UsageError, match="make_reltoroot is gone"):
        xdist_internals.require()


def test_a_changed_signature_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xdist.workermanage, "make_reltoroot", lambda roots, args, extra: args)
    assert any("make_reltoroot takes ['roots', 'args', 'extra']" in p for p in xdist_internals.problems())
    monkeypatch.undo()

    def handlecrashitem(crashitem, report):  # type: ignore[no-untyped-def]
        """A hook spec that lost an argument."""

    monkeypatch.setattr(xdist.newhooks, "pytest_handlecrashitem", handlecrashitem)
    assert any("pytest_handlecrashitem takes ['crashitem', 'report']" in p for p in xdist_internals.problems())


def test_attributes_set_in_xdist_code_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    class NodeManager:
        def __init__(self) -> None:
            self.rsync_roots: list[str] = []  # renamed: our "roots = []" would silently do nothing

    class DSession:
        def worker_errordown(self) -> None:
            self.max_restarts = 0

    monkeypatch.setattr(xdist.workermanage, "NodeManager", NodeManager)
    monkeypatch.setattr(xdist.dsession, "DSession", DSession)
    found = xdist_internals.problems()
    assert any("NodeManager no longer sets self.roots" in p for p in found), found
    assert any("_max_worker_restart" in p for p in found), found


def test_the_reltoroot_patch_is_undone() -> None:
    original = xdist.workermanage.make_reltoroot
    restore = xdist_internals.replace_reltoroot(["a", "b"])
    try:
        assert xdist.workermanage.make_reltoroot([], ["x"]) == ["a", "b"]
    finally:
        restore()
    assert xdist.workermanage.make_reltoroot is original
