"""What happens to a task whose xdist worker died under it (a crashed process, a lost VM).

xdist reports such a task as a *failure* and moves on. A dead worker is infrastructure trouble, so
the task is queued again, up to ``--attempts``, and if it cannot be finished it ends as an *error*
with a result, never a failure and never silently dropped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def requeue(crashitem: str, report: Any, sched: Any, attempts: dict[str, int], limit: int) -> bool:
    """Queue ``crashitem`` again if attempts are left; mark its synthetic report as a rerun."""
    tried = attempts.get(crashitem, 1)
    if tried >= limit or not hasattr(sched, "mark_test_pending"):
        return False
    try:
        sched.mark_test_pending(crashitem)
    except NotImplementedError:  # a scheduler that cannot re-queue
        return False
    attempts[crashitem] = tried + 1
    report.outcome = "rerun"
    report.longrepr = f"{report.longrepr}: lost with its worker (attempt {tried} of {limit}), queued again"
    return True


def lost_result(nodeid: str, settings: Any, message: str, attempt: int, kind: str, verdict: str = "LOST") -> dict[str, Any]:
    """A result for a task that never finished on any worker (counted in run.json as an error)."""
    fspath, _, name = nodeid.partition("::")
    return {"task_id": name.split("::")[-1] or nodeid, "benchmark": Path(fspath).parent.name or "unknown",
            "agent": settings.agent or "", "outcome": "error", "verdict": verdict, "error_kind": kind,
            "error": message, "message": message, "nodeid": nodeid, "run_id": settings.run_id,
            "attempt": attempt}


def give_up(crashitem: str, report: Any, settings: Any, why: str, attempt: int, kind: str) -> None:
    """Turn xdist's synthetic failure into an error (setup phase) that carries a result."""
    report.when = "setup"
    report.longrepr = f"{report.longrepr}: {why}"
    report.cloudeval_result = lost_result(crashitem, settings, str(report.longrepr), attempt, kind)


def forget_junit_testcase(report: Any) -> None:
    """Drop the nameless JUnit testcase that xdist's synthetic crash report opened (the rerun's
    final report makes the real one); ``-o junit_duration_report=call`` would too, but would also
    drop the setup phase, where a task's work happens."""
    config = getattr(getattr(report, "node", None), "config", None)
    if config is None:
        return
    from .xdist_internals import junit_reporters

    found = junit_reporters(config)
    if found is None:
        return
    reporters, ordered = found
    reporter = reporters.pop((report.nodeid, getattr(report, "node", None)), None)
    if reporter is not None and reporter in ordered:
        ordered.remove(reporter)
