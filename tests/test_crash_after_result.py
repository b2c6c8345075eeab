"""A VM lost right after a task's result came back must not run that task again (found by the soak)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from pytest_cloudeval.backends.plugin import CloudXdistHooks


class Sched:
    def __init__(self) -> None:
        self.pending: list[str] = []

    def mark_test_pending(self, item: str) -> None:
        self.pending.append(item)


def hooks() -> CloudXdistHooks:
    run: Any = SimpleNamespace(settings=SimpleNamespace(attempts=3, run_id="r"))
    return CloudXdistHooks(run, session=cast(Any, SimpleNamespace(lost_attempts=[])))


def crash_report(nodeid: str) -> Any:
    return SimpleNamespace(nodeid=nodeid, outcome="failed", longrepr="worker 'gw1' crashed while running it",
                           when="???")


def test_a_task_whose_result_came_back_is_not_queued_again() -> None:
    h, sched = hooks(), Sched()
    h.finished.add("b/benchmark.toml::t1")  # its call report (with the result) arrived
    report = crash_report("b/benchmark.toml::t1")
    h.pytest_handlecrashitem("b/benchmark.toml::t1", report, sched)
    assert sched.pending == [] and h.reruns == 0 and "b/benchmark.toml::t1" not in h.attempts
    assert report.outcome == "rerun" and "not run again" in report.longrepr
    assert h.pytest_report_teststatus(report) == ("", "", ("", {})), "counted nowhere (not a failure, not a rerun)"


def test_a_task_in_flight_is_still_queued_again() -> None:
    h, sched = hooks(), Sched()
    report = crash_report("b/benchmark.toml::t2")
    h.pytest_handlecrashitem("b/benchmark.toml::t2", report, sched)
    assert sched.pending == ["b/benchmark.toml::t2"] and h.attempts["b/benchmark.toml::t2"] == 2
    assert len(h.session.lost_attempts) == 1
    assert h.pytest_report_teststatus(report) == ("rerun", "R", ("RERUN", {"yellow": True}))


def local_hooks() -> Any:
    from pytest_cloudeval.plugin import XdistHooks

    session: Any = SimpleNamespace(settings=SimpleNamespace(attempts=3, run_id="r", cloud=False), lost_attempts=[])
    return XdistHooks(session)


def call_report(nodeid: str, outcome: str = "passed") -> Any:
    return SimpleNamespace(nodeid=nodeid, outcome=outcome, when="call", user_properties=[])


def _logreport(h: Any, report: Any) -> None:
    gen = h.pytest_runtest_logreport(report)
    next(gen)
    try:
        next(gen)
    except StopIteration:
        pass


def test_local_workers_do_not_run_a_task_again_whose_result_came_back() -> None:
    """The same blind spot on local xdist workers (crash.py path): a worker dies after the call report."""
    h, sched = local_hooks(), Sched()
    _logreport(h, call_report("b/benchmark.toml::t1"))
    report = crash_report("b/benchmark.toml::t1")
    h.pytest_handlecrashitem("b/benchmark.toml::t1", report, sched)
    assert sched.pending == [] and "b/benchmark.toml::t1" not in h.attempts
    assert h.session.lost_attempts == [], "a finished task is not a lost attempt"
    assert report.outcome == "rerun" and "not run again" in report.longrepr
    assert h.pytest_report_teststatus(report) == ("", "", ("", {}))


def test_local_workers_still_queue_a_task_in_flight_again() -> None:
    h, sched = local_hooks(), Sched()
    _logreport(h, SimpleNamespace(nodeid="b/benchmark.toml::t2", outcome="passed", when="setup",
                                  user_properties=[]))  # setup passed, call never reported
    report = crash_report("b/benchmark.toml::t2")
    h.pytest_handlecrashitem("b/benchmark.toml::t2", report, sched)
    assert sched.pending == ["b/benchmark.toml::t2"] and h.attempts["b/benchmark.toml::t2"] == 2
    assert len(h.session.lost_attempts) == 1
    assert h.pytest_report_teststatus(report) == ("rerun", "R", ("RERUN", {"yellow": True}))
