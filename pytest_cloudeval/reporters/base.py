"""The ``Reporter`` contract, and running the registered reporters over a run summary.

A reporter turns a ``RunSummary`` into the bytes of one file (``filename`` in the run folder). The
runner of reporters, not the reporter, writes the file: atomically and through the secret redactor,
so no reporter can leak a secret or leave half a file. Every file written is returned, and the store
(``--artifacts-url``) uploads exactly those: a new reporter's output is uploaded with no change there.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..redact import Redactor
from ..results import atomic_write_bytes

if TYPE_CHECKING:
    from ..run_summary import RunSummary
    from ..stored import StoredRun, TaskFiles


@dataclass(frozen=True)
class ReportContext:
    """Where a report is made and what it may read besides the summary."""

    redactor: Redactor
    files: TaskFiles | None = None
    """The run's task folders (for excerpts of logs and the judge's report), or None."""
    files_url: str = ""
    """Prefix of links to task files from the written report ("" = the task folders are beside it)."""
    in_pytest: bool = True
    """True at the end of a pytest run; False in the ``report`` command."""
    junit_path: Path | None = None
    """pytest's ``--junitxml`` file (pytest writes it; the JUnit reporter only hands it to the store)."""
    compare: StoredRun | None = None
    """The run to compare with (``--compare``), when given."""
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReportFile:
    """A run file a reporter produced: its name in the run folder and store, and where it is on disk."""

    name: str
    path: Path


class Reporter(ABC):
    """One run-level output. Subclasses set ``name`` (unique, e.g. ``"html"``) and ``filename``.

    Contract: ``render`` is pure (reads the summary and the context, writes nothing) and returns the
    file's bytes, or None to write nothing. It must not raise for any content of task results (they
    are untrusted); a reporter that does raise is named in a warning and the others still run.
    """

    name: ClassVar[str] = ""
    filename: ClassVar[str] = ""

    @abstractmethod
    def render(self, run: RunSummary, ctx: ReportContext) -> bytes | None:
        """The file's content."""

    def warm_up(self) -> None:
        """Optional: load what ``render`` needs that does not depend on the run (imports, templates).
        Called at most once, in a background thread, while the run's workers stop; errors are ignored."""

    def existing(self, ctx: ReportContext) -> Path | None:
        """A file another tool writes for this reporter (pytest's own JUnit XML), to upload as is."""
        return None


def unique(batches: Iterable[Iterable[Reporter] | None]) -> list[Reporter]:
    """Reporters from the hook's answers, the first of each name kept (plugins before built-ins)."""
    seen: dict[str, Reporter] = {}
    for batch in batches:
        for reporter in batch or []:
            seen.setdefault(reporter.name, reporter)
    return list(seen.values())


def write_reports(run: RunSummary, ctx: ReportContext, reporters: Iterable[Reporter],
                  targets: Mapping[str, Path]) -> tuple[list[ReportFile], dict[str, str]]:
    """Render each reporter that has a target path and write its file, redacted and atomically.

    Returns the files written (and files other tools wrote for a reporter) and ``{name: error}`` for
    reporters that failed; one failing reporter does not stop the others.
    """
    written: list[ReportFile] = []
    failed: dict[str, str] = {}
    for reporter in reporters:
        target = targets.get(reporter.name)
        if target is None:
            continue
        try:
            data = reporter.render(run, ctx)
            if data is None:
                other = reporter.existing(ctx)
                if other is not None:
                    written.append(ReportFile(reporter.filename or other.name, other))
                continue
            atomic_write_bytes(target, ctx.redactor.bytes(data))
            written.append(ReportFile(reporter.filename or target.name, target))
        except Exception as e:  # noqa: BLE001 - a broken reporter must not cost the other run files
            failed[reporter.name] = f"{type(e).__name__}: {e}"
    return written, failed
