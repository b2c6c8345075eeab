"""report.html: one self-contained page per run (no server, no network, data embedded).

Rendered with Jinja2 and autoescaping: every value from a task result or log is escaped by the
template engine, and the task rows are embedded as JSON in a ``<script type="application/json">``
block with ``<``, ``>`` and ``&`` written as ``\\u003c`` and so on, so ``</script>`` in a log cannot end
the block. The page's own script is the only one allowed to run: the Content-Security-Policy names
it by hash and forbids every network fetch (``default-src 'none'``), so a page that a hostile task
log got into still runs nothing from it and loads nothing.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import replace
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from . import html_model as model
from .base import ReportContext, Reporter

if TYPE_CHECKING:
    from ..run_summary import RunSummary

_JSON_ESCAPES = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026", 0x2028: "\\u2028",
                 0x2029: "\\u2029"}


def json_for_script(data: Any) -> str:
    """JSON that is safe inside ``<script type="application/json">``: no ``<``, ``>`` or ``&`` left."""
    return json.dumps(data, separators=(",", ":"), sort_keys=True, default=str,
                      ensure_ascii=False).translate(_JSON_ESCAPES)


@lru_cache(maxsize=1)
def _assets() -> tuple[str, str]:
    folder = resources.files(__package__).joinpath("templates")
    return folder.joinpath("report.js").read_text("utf-8"), folder.joinpath("report.css").read_text("utf-8")


@lru_cache(maxsize=1)
def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("pytest_cloudeval.reporters", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters["pct"] = lambda v: "–" if v is None else f"{100 * float(v):.1f}%"
    env.filters["num"] = lambda v: "–" if v is None else f"{int(v):,}"
    env.filters["usd"] = lambda v: "–" if v is None else f"${float(v):,.4f}"
    env.filters["secs"] = lambda v: "–" if v is None else (f"{float(v):.1f}s" if float(v) < 120
                                                          else f"{float(v) / 60:.1f}m")
    return env


def redacted(run: RunSummary, ctx: ReportContext) -> RunSummary:
    """The summary with secrets masked in raw text, before any escaping could hide a secret's bytes."""
    red = ctx.redactor
    if not red:
        return run
    info = replace(run.info, command=red.text(run.info.command), config=red.obj(dict(run.info.config)))
    return replace(run, info=info, results=red.obj(dict(run.results)), stats=red.obj(dict(run.stats)),
                   sections=red.obj(dict(run.sections)), lost_attempts=tuple(red.obj(list(run.lost_attempts))))


def render_html(run: RunSummary, ctx: ReportContext) -> str:
    run = redacted(run, ctx)
    script, css = _assets()
    script_hash = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    rows = model.task_rows(run)
    data = {"rows": rows, "details": ctx.redactor.obj(model.details(run, ctx.files)),
            "files_url": ctx.files_url, "colours": model.OUTCOME_COLOURS}
    comparison = model.comparison(run, ctx.compare)
    if comparison is not None:
        data["changes"] = comparison["changes"]
    info = run.info
    stats = run.stats
    tl = model.timeline(run)
    curve, yticks = tl.curve()
    kinds = sorted({r["e"] for r in rows if r["e"]})
    page = _environment().get_template("report.html.j2").render(
        run=run, info=info, stats=stats, tl=tl, curve=curve, yticks=yticks, script=script, css=css,
        csp=f"default-src 'none'; script-src 'sha256-{script_hash}'; style-src 'unsafe-inline'; "
            "img-src data:; base-uri 'none'; form-action 'none'",
        data_json=json_for_script(data), errors=model.error_groups(run), slowest=model.slowest(run),
        costs=model.cost_by_benchmark(run), compare=comparison, kinds=kinds,
        benchmarks=sorted({r["b"] for r in rows}), workers=run.workers, colours=model.OUTCOME_COLOURS,
        agent_args=json.dumps(dict(info.agent_args), sort_keys=True, default=str) if info.agent_args else "",
        lost=len(run.lost_attempts),
        moved=sorted(((k, c) for k, c in (comparison or {}).get("changes", {}).items()
                      if c not in ("still passing", "still failing")),
                     key=lambda kc: (("regressed", "fixed", "new", "missing").index(kc[1]), kc[0])))
    return page


class HtmlReporter(Reporter):
    """report.html: the run for a person (summary, task table with details, timeline, comparison)."""

    name = "html"
    filename = "report.html"

    def warm_up(self) -> None:
        _assets()
        _environment().get_template("report.html.j2")

    def render(self, run: RunSummary, ctx: ReportContext) -> bytes | None:
        return render_html(run, ctx).encode("utf-8")
