"""The typed summary of one run, built in one place, that every reporter renders.

A pytest run builds it from the controller's session at ``pytest_sessionfinish``; the ``report``
command builds it from a stored run (results plus run.json when there is one). run.json, the text
summary, JUnit and report.html are all views of this object (``reporters/``), so they cannot
disagree about what happened.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .report import summarize
from .results import run_results

if TYPE_CHECKING:
    from .session import CloudEvalSession
    from .stored import StoredRun

# run.json keys this module owns; anything else a hook added (uploads, cloud, ...) is a section.
CORE_KEYS = frozenset({"run_id", "config", "command", "plugin_version", "started_at", "finished_at",
                       "wall_seconds", "exit_status", "summary", "tasks", "lost_attempts"})


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


@dataclass(frozen=True)
class RunInfo:
    """The run header: who ran what, where, when, and how it ended."""

    run_id: str
    command: str = ""
    started_at: str = ""
    finished_at: str = ""
    wall_seconds: float | None = None
    exit_status: int | None = None
    plugin_version: str = ""
    config: Mapping[str, Any] = field(default_factory=dict)
    """Settings.public_dict(), redacted: secret names only."""

    @property
    def agent(self) -> str:
        return str(self.config.get("agent") or "")

    @property
    def agent_args(self) -> Mapping[str, Any]:
        return dict(self.config.get("agent_kwargs") or {})

    @property
    def sandbox(self) -> str:
        return str(self.config.get("sandbox") or "")

    @property
    def cloud(self) -> str:
        return str(self.config.get("cloud") or "")

    @property
    def repeat(self) -> int:
        return int(self.config.get("repeat") or 1)


@dataclass(frozen=True)
class RunSummary:
    """Everything a reporter needs about a finished (or interrupted) run."""

    info: RunInfo
    results: Mapping[str, Mapping[str, Any]]
    """Task results by key (``benchmark/dirname``), as in result.json (redacted)."""
    stats: Mapping[str, Any]
    """Counts, pass rates with intervals, errors by kind, tokens, cost, slowest (``report.summarize``)."""
    sections: Mapping[str, Any] = field(default_factory=dict)
    """What ``pytest_cloudeval_run_finished`` hooks added to run.json (``uploads``, ``cloud``, ...)."""
    lost_attempts: tuple[Mapping[str, Any], ...] = ()
    """Attempts lost with their worker and queued again: ``{key, nodeid, worker, lost_at, attempt}``."""

    @property
    def workers(self) -> list[str]:
        return sorted({str(r.get("worker")) for r in self.results.values() if r.get("worker")})

    def to_run_json(self) -> dict[str, Any]:
        """The run.json object (its historic layout, plus ``command``, ``plugin_version``, ``lost_attempts``)."""
        info = self.info
        data: dict[str, Any] = {
            "run_id": info.run_id, "config": dict(info.config), "command": info.command,
            "plugin_version": info.plugin_version, "started_at": info.started_at,
            "finished_at": info.finished_at, "wall_seconds": info.wall_seconds, "exit_status": info.exit_status,
            "summary": dict(self.stats),
            "tasks": {key: {"outcome": r.get("outcome"), "verdict": r.get("verdict"), "score": r.get("score"),
                            "resumed": bool(r.get("resumed"))} for key, r in sorted(self.results.items())},
            "lost_attempts": [dict(a) for a in self.lost_attempts],
        }
        data.update({k: v for k, v in self.sections.items() if k not in CORE_KEYS})
        return data

    def with_run_json(self, data: Mapping[str, Any]) -> RunSummary:
        """Adopt what the run-finished hooks changed in the run.json object (sections, notes, exit status)."""
        info = replace(self.info, exit_status=data.get("exit_status", self.info.exit_status))
        return replace(self, info=info, stats=dict(data.get("summary") or self.stats),
                       sections={k: v for k, v in data.items() if k not in CORE_KEYS})


def result_key(nodeid: str, result: Mapping[str, Any]) -> str:
    return str(result.get("key") or nodeid)


def from_session(state: CloudEvalSession, exitstatus: int) -> RunSummary:
    """The summary of the run this controller (or plain run) just finished."""
    from . import __version__

    settings = state.settings
    # From the result files, not only the reports that reached this process: after a Ctrl+C, tasks
    # that workers finished (or stored as interrupted) have files but no report here.
    results = dict(sorted(run_results(settings.run_dir, state.results, state.started).items()))
    stats = dict(summarize(results.values()))
    stats["notes"] = []
    args = getattr(state.config.invocation_params, "args", ())
    now = time.time()
    info = RunInfo(run_id=settings.run_id, command=state.redactor.text(shlex.join(["pytest", *map(str, args)])),
                   started_at=_iso(state.started), finished_at=_iso(now),
                   wall_seconds=round(now - state.started, 3), exit_status=int(exitstatus),
                   plugin_version=__version__, config=state.redactor.obj(settings.public_dict()))
    lost = tuple({**item, "key": result_key(item["nodeid"], state.results.get(item["nodeid"], {}))}
                 for item in state.lost_attempts)
    return RunSummary(info=info, results=results, stats=stats, lost_attempts=lost)


def from_stored(stored: StoredRun) -> RunSummary:
    """The summary of a stored run: figures recomputed from its results, the header from run.json."""
    run = stored.run_json or {}
    run_id = str(run.get("run_id") or stored.source.rstrip("/").rsplit("/", 1)[-1] or "cloudeval")
    stats = dict(summarize(stored.results.values()))
    stats["notes"] = list((run.get("summary") or {}).get("notes") or [])
    info = RunInfo(run_id=run_id, command=str(run.get("command") or ""),
                   started_at=str(run.get("started_at") or ""), finished_at=str(run.get("finished_at") or ""),
                   wall_seconds=run.get("wall_seconds"), exit_status=run.get("exit_status"),
                   plugin_version=str(run.get("plugin_version") or ""), config=dict(run.get("config") or {}))
    return RunSummary(info=info, results=dict(sorted(stored.results.items())), stats=stats,
                      sections={k: v for k, v in run.items() if k not in CORE_KEYS},
                      lost_attempts=tuple(run.get("lost_attempts") or ()))
