"""The plain run files: run.json, summary.txt and JUnit XML (built-in reporters)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..redact import STRUCTURED_FIELDS
from ..report import format_summary
from .base import ReportContext, Reporter

if TYPE_CHECKING:
    from ..run_summary import RunSummary

PROPERTIES = ("score", "verdict", "duration_s", "tokens_in", "tokens_out", "cost_usd", "worker")


class RunJsonReporter(Reporter):
    """run.json: the configuration (secret names only), counts, pass rates, per-task outcomes."""

    name = "run-json"
    filename = "run.json"

    def render(self, run: RunSummary, ctx: ReportContext) -> bytes | None:
        data = ctx.redactor.obj(run.to_run_json(), STRUCTURED_FIELDS)
        return (json.dumps(data, indent=2, sort_keys=True, default=str) + "\n").encode()


class SummaryTextReporter(Reporter):
    """summary.txt: the terminal summary, as text."""

    name = "summary-text"
    filename = "summary.txt"

    @staticmethod
    def lines(run: RunSummary, where: str | None) -> list[str]:
        return format_summary(run.stats, where=where)

    def render(self, run: RunSummary, ctx: ReportContext) -> bytes | None:
        uploads = run.sections.get("uploads")
        where = uploads.get("url") if isinstance(uploads, dict) else ctx.options.get("where")
        return ("\n".join(self.lines(run, where)) + "\n").encode()


def junit_xml(results: Mapping[str, Mapping[str, Any]], suite_name: str) -> str:
    """One testcase per task (classname = benchmark, name = key), with the result's figures as properties."""
    from junit_xml import TestCase, TestSuite, to_xml_report_string

    cases = []
    for key, r in sorted(results.items()):
        benchmark = str(r.get("benchmark") or key.split("/", 1)[0])
        case = TestCase(name=key, classname=benchmark, elapsed_sec=float(r.get("duration_s") or 0.0),
                        timestamp=r.get("started_at") or None, status=r.get("outcome"))
        message = str(r.get("message") or r.get("verdict") or "")
        outcome = r.get("outcome")
        if outcome == "failed":
            case.add_failure_info(message=message, failure_type=str(r.get("verdict") or "failed"))
        elif outcome == "error":
            case.add_error_info(message=message, output=r.get("error") or None,
                                error_type=str(r.get("error_kind") or "error"))
        elif outcome == "skipped":
            case.add_skipped_info(message=message)
        cases.append(case)
    text = to_xml_report_string([TestSuite(suite_name, cases)], encoding="utf-8")
    # junit-xml has no per-testcase properties: add them, as pytest's own JUnit XML has them.
    root = ET.fromstring(text)
    for element in root.iter("testcase"):
        data = results.get(element.get("name", ""), {})
        props = ET.Element("properties")
        for name in PROPERTIES:
            value = data.get(name)
            ET.SubElement(props, "property", name=name, value="" if value is None else str(value))
        element.insert(0, props)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


class JunitReporter(Reporter):
    """JUnit XML. In a pytest run, pytest's ``--junitxml`` writes it (with captured output): this
    reporter only hands that file to the store; the ``report`` command renders it from the results."""

    name = "junit"
    filename = "junit.xml"

    def render(self, run: RunSummary, ctx: ReportContext) -> bytes | None:
        if ctx.in_pytest:
            return None
        return junit_xml(run.results, run.info.run_id).encode()

    def existing(self, ctx: ReportContext) -> Path | None:
        return ctx.junit_path if ctx.in_pytest else None
