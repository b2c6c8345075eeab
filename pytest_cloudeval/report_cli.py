"""``cloudeval-report SOURCE`` / ``python -m pytest_cloudeval report SOURCE``: a run's summary, JUnit XML
and report.html rebuilt from its stored task results, for a resumed run or a CI job that collects
results later.

SOURCE is a run folder (``results/<run-id>``) or a store URL of a run (``gs://BUCKET/PREFIX/<run-id>``).
The files are written by the same reporters a pytest run uses, over the same typed run summary.
Exit status: 0 when no task failed or errored, 1 otherwise, 2 when the input cannot be read.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .redact import Redactor
from .reporters.base import ReportContext, Reporter, write_reports
from .reporters.files import JunitReporter, SummaryTextReporter
from .reporters.html import HtmlReporter
from .run_summary import from_stored
from .stored import ReportInputError, StoredRun, read_source

__all__ = ["ReportInputError", "build_parser", "main", "resolve_compare"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cloudeval-report",
        description="Print a cloudeval run's summary and write JUnit XML and report.html from its stored "
                    "task results.")
    parser.add_argument("source", help="a run folder (results/<run-id>) or gs://BUCKET/PREFIX/<run-id>")
    parser.add_argument("--junitxml", metavar="FILE", help="write JUnit XML (one testcase per task) here")
    parser.add_argument("--html", metavar="FILE", help="write the run's report page (report.html) here")
    parser.add_argument("--compare", metavar="RUN", help="with --html: compare with another run (a run id "
                        "beside SOURCE, a run folder or a gs:// run): fixed, regressed, new, missing")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON instead of text")
    return parser


def resolve_compare(source: str, other: str) -> str:
    """``--compare``: a URL or an existing folder as given; a bare run id is a sibling of SOURCE."""
    if "://" in other or "/" in other or Path(other).exists():
        return other
    if "://" in source:
        return source.rstrip("/").rsplit("/", 1)[0] + "/" + other
    return str(Path(source).resolve().parent / other)


def files_url(stored: StoredRun, html: Path) -> str:
    """How links in the page reach the task folders: relative from where the page is written, or the bucket."""
    if stored.files_url:
        return stored.files_url
    rel = os.path.relpath(Path(stored.source).resolve(), html.resolve().parent)
    return "" if rel == "." else Path(rel).as_posix() + "/"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        stored = read_source(args.source)
        base = read_source(resolve_compare(args.source, args.compare)) if args.compare else None
    except ReportInputError as e:
        print(f"cloudeval-report: error: {e}", file=sys.stderr)
        return 2
    for problem in stored.problems:
        print(f"cloudeval-report: warning: {problem}", file=sys.stderr)
    run = from_stored(stored)
    summary = run.stats
    redactor = Redactor(())  # stored results were redacted when they were written
    targets: dict[str, Path] = {}
    reporters: list[Reporter] = []
    if args.junitxml:
        targets[JunitReporter.name] = Path(args.junitxml)
        reporters.append(JunitReporter())
    if args.html:
        targets[HtmlReporter.name] = Path(args.html)
        reporters.append(HtmlReporter())
    if reporters:
        ctx = ReportContext(redactor=redactor, files=stored.files, in_pytest=False, compare=base,
                            files_url=files_url(stored, Path(args.html)) if args.html else "")
        for path in targets.values():
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                print(f"cloudeval-report: error: cannot write {path}: {e}", file=sys.stderr)
                return 2
        _, failed = write_reports(run, ctx, reporters, targets)
        for name, error in failed.items():
            print(f"cloudeval-report: error: cannot write {targets[name]}: {error}", file=sys.stderr)
        if failed:
            return 2
    if args.json:
        print(json.dumps({"source": args.source, "summary": summary, "problems": stored.problems}, indent=2,
                         sort_keys=True, default=str))
    else:
        for line in SummaryTextReporter.lines(run, args.source):
            print(line)
        if args.junitxml:
            print(f"junit xml: {args.junitxml}")
        if args.html:
            print(f"html report: {args.html}")
    return 0 if summary["failed"] == 0 and summary["error"] == 0 else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
