"""The end of a run on the controller: build the run summary, let hooks add to it, run the reporters.

One place for what used to be spread over the plugin, the store and the report command: the
summary is built once (``run_summary.from_session``), ``pytest_cloudeval_run_finished`` hooks add
sections (uploads, cloud cost), and every registered reporter writes its file into the run folder.
The files written are kept on the session for the store to upload.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .reporters.base import ReportContext, unique, write_reports
from .run_summary import from_session
from .stored import LocalFiles

if TYPE_CHECKING:
    from .session import CloudEvalSession


def junit_path(config: pytest.Config) -> Path | None:
    """pytest's ``--junitxml`` file, resolved as pytest resolves it."""
    xmlpath = getattr(config.option, "xmlpath", None)
    if not xmlpath:
        return None
    return Path(os.path.abspath(os.path.expanduser(os.path.expandvars(xmlpath))))


def finish_run(state: CloudEvalSession, exitstatus: int) -> None:
    settings = state.settings
    run_dir = settings.run_dir
    run = from_session(state, exitstatus)
    run_data = run.to_run_json()
    state.config.hook.pytest_cloudeval_run_finished(summary=run_data, run_dir=run_dir, settings=settings,
                                                    session=state)
    run = run.with_run_json(run_data)
    state.summary = run_data
    reporters = unique(state.config.hook.pytest_cloudeval_reporters())
    ctx = ReportContext(redactor=state.redactor, files=LocalFiles(run_dir), in_pytest=True,
                        junit_path=junit_path(state.config), options={"where": str(run_dir)})
    files, failed = write_reports(run, ctx, reporters, {r.name: run_dir / r.filename for r in reporters})
    state.report_files = files
    notes = run_data.setdefault("summary", {}).setdefault("notes", [])
    for name, error in failed.items():
        notes.append(f"REPORT FAILED {name}: {error}")
