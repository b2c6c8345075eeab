"""The data of report.html, computed at build time from the run summary: the task rows, the
per-task details (excerpts of logs, the judge's per-test verdicts, reward and metrics), the
timeline and the finished-over-time chart (SVG geometry), error groups and the comparison.

Everything here is plain data; ``html.py`` renders it with Jinja2 (autoescaped) and embeds the task
rows and details as JSON for the page's script, which only ever sets ``textContent``.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..stats import compare
from ..stored import TaskFiles, read_many

if TYPE_CHECKING:
    from ..run_summary import RunSummary
    from ..stored import StoredRun

# Excerpts: a failing task shows more of its log than a passing one; the full file is a link away.
EXCERPT = {"passed": (150, 350), "other": (600, 1400)}
MESSAGE_CHARS = 400
ERROR_CHARS = 4000
JUDGE_TESTS = 60
VERIFIER_FILES = ("logs/verifier/test-output.txt", "logs/verifier/reward.json", "logs/verifier/reward.txt")
OUTCOME_COLOURS = {"passed": "#2e9d5b", "failed": "#d9822b", "error": "#d64545", "skipped": "#9aa5b1",
                   "lost": "#7d3fbf"}


def parse_time(text: Any) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        value = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.timezone.utc)
    return value.timestamp()


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def excerpt(data: bytes | None, outcome: str) -> dict[str, Any] | None:
    """Head and tail of a log (None when empty); ``cut`` is how many characters are left out between."""
    if not data:
        return None
    text = data.decode("utf-8", errors="replace")
    head, tail = EXCERPT["passed" if outcome == "passed" else "other"]
    if len(text) <= head + tail:
        return {"head": text, "tail": "", "cut": 0, "size": len(data)}
    return {"head": text[:head], "tail": text[-tail:], "cut": len(text) - head - tail, "size": len(data)}


def _judge_tests(data: bytes | None) -> list[dict[str, Any]] | None:
    if not data:
        return None
    try:
        report = json.loads(data)
    except ValueError:
        return None
    tests = report.get("tests") if isinstance(report, dict) else None
    if not isinstance(tests, list):
        return None
    rows = []
    for test in tests[:JUDGE_TESTS]:
        if isinstance(test, dict):
            rows.append({"i": test.get("index"), "v": str(test.get("verdict", "")), "t": _num(test.get("time_s")),
                         "d": str(test.get("detail") or "")[:200]})
    return rows


@dataclass
class Bar:
    x: float
    w: float
    colour: str
    key: str
    title: str
    lost: bool = False
    retry: bool = False


@dataclass
class Timeline:
    """One row per worker, one bar per attempt; x in seconds from the first start."""

    rows: list[tuple[str, list[Bar]]] = field(default_factory=list)
    span_s: float = 0.0
    width: int = 1100
    label_w: int = 170
    row_h: int = 18
    finished: list[tuple[float, int]] = field(default_factory=list)
    """(seconds from start, tasks finished by then): the finished-over-time curve."""

    @property
    def height(self) -> int:
        return 24 + self.row_h * len(self.rows)

    def sx(self, seconds: float) -> float:
        usable = self.width - self.label_w - 10
        return round(self.label_w + usable * (seconds / self.span_s if self.span_s else 0.0), 2)

    def ticks(self) -> list[tuple[float, str]]:
        if self.span_s <= 0:
            return []
        step = _nice_step(self.span_s / 6)
        out, t = [], 0.0
        while t <= self.span_s + 1e-9:
            out.append((self.sx(t), _fmt_s(t)))
            t += step
        return out

    def curve(self, height: int = 120) -> tuple[str, list[tuple[float, float, str]]]:
        """The finished-over-time polyline points and y ticks, in a chart ``height`` high."""
        if not self.finished:
            return "", []
        total = self.finished[-1][1] or 1
        top, bottom = 8, height - 20
        points: list[tuple[float, float]] = [(self.sx(0), float(bottom))]
        for t, n in self.finished:
            points.append((self.sx(t), round(bottom - (bottom - top) * n / total, 2)))
        yticks = [(0.0, float(bottom), "0"), (0.0, float(top), str(total))]
        return " ".join(f"{x},{y}" for x, y in points), yticks


def _nice_step(raw: float) -> float:
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400):
        if raw <= step:
            return float(step)
    return 86400.0


def _fmt_s(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m" if seconds % 60 == 0 else f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def timeline(run: RunSummary) -> Timeline:
    spans = []
    for key, r in run.results.items():
        start, end = parse_time(r.get("started_at")), parse_time(r.get("finished_at"))
        if start is None or r.get("resumed"):
            continue
        if end is None or end < start:
            end = start + (_num(r.get("duration_s")) or 0.0)
        spans.append((key, r, start, end))
    lost = []
    for item in run.lost_attempts:
        at = item.get("lost_at")
        if isinstance(at, (int, float)):
            lost.append((item, float(at)))
    tl = Timeline()
    if not spans and not lost:
        return tl
    origin = min([s for _, _, s, _ in spans] + [a for _, a in lost])
    end_all = max([e for _, _, _, e in spans] + [a for _, a in lost])
    tl.span_s = max(end_all - origin, 1e-3)
    by_worker: dict[str, list[Bar]] = defaultdict(list)
    last_end: dict[str, float] = defaultdict(float)
    for key, r, start, end in sorted(spans, key=lambda s: s[2]):
        worker = str(r.get("worker") or "?")
        outcome = str(r.get("outcome"))
        attempt = int(r.get("attempt") or 1)
        x = tl.sx(start - origin)
        bar = Bar(x=x, w=max(1.5, round(tl.sx(end - origin) - x, 2)), colour=OUTCOME_COLOURS.get(outcome, "#555"),
                  key=key, retry=attempt > 1,
                  title=f"{key}: {outcome} {r.get('verdict') or ''}, {end - start:.1f}s on {worker}"
                        + (f" (attempt {attempt})" if attempt > 1 else ""))
        by_worker[worker].append(bar)
        last_end[worker] = max(last_end[worker], end - origin)
    for item, at in sorted(lost, key=lambda p: p[1]):
        worker = _lost_row(item, by_worker)
        began = min(last_end.get(worker, 0.0), at - origin)
        x = tl.sx(began)
        by_worker[worker].append(Bar(x=x, w=max(3.0, round(tl.sx(at - origin) - x, 2)),
                                     colour=OUTCOME_COLOURS["lost"], key=str(item.get("key") or ""), lost=True,
                                     title=f"{item.get('key') or item.get('nodeid')}: lost with worker {worker} "
                                           f"(attempt {item.get('attempt')}), queued again"))
    tl.rows = sorted(by_worker.items())
    ends = sorted(e - origin for _, r, _, e in spans)
    tl.finished = [(t, i + 1) for i, t in enumerate(ends)]
    return tl


def _lost_row(item: Mapping[str, Any], rows: Mapping[str, list[Bar]]) -> str:
    """The timeline row of a lost attempt: its worker, or the row of its xdist gateway (``gw3@...``)."""
    if item.get("worker"):
        return str(item["worker"])
    gateway = str(item.get("gateway") or "?")
    named = sorted(w for w in rows if w.split("@", 1)[0] == gateway)
    return named[0] if len(named) == 1 else f"{gateway} (lost)"


def task_rows(run: RunSummary) -> list[dict[str, Any]]:
    rows = []
    for key, r in run.results.items():
        rows.append({
            "k": key, "b": str(r.get("benchmark") or key.split("/")[0]), "o": str(r.get("outcome") or ""),
            "v": str(r.get("verdict") or ""), "s": _num(r.get("score")), "a": int(r.get("attempt") or 1),
            "d": _num(r.get("duration_s")), "ti": _num(r.get("tokens_in")), "to": _num(r.get("tokens_out")),
            "c": _num(r.get("cost_usd")), "w": str(r.get("worker") or ""), "e": str(r.get("error_kind") or ""),
            "m": str(r.get("message") or "")[:MESSAGE_CHARS], "r": bool(r.get("resumed")),
            "ag": str(r.get("agent") or ""), "st": str(r.get("started_at") or ""),
        })
    return rows


def details(run: RunSummary, files: TaskFiles | None) -> dict[str, dict[str, Any]]:
    """Per task: error, excerpts of agent.log and the verifier's output, judge tests, metrics, files."""
    listing: dict[str, list[tuple[str, int]]] = {}
    wanted: list[tuple[str, str]] = []
    if files is not None:
        for key in run.results:
            listing[key] = files.names(key)
            names = {n for n, _ in listing[key]}
            wanted += [(key, n) for n in ("agent.log", "judge.json", *VERIFIER_FILES) if n in names]
    contents = read_many(files, wanted) if files is not None and wanted else {}
    out: dict[str, dict[str, Any]] = {}
    for key, r in run.results.items():
        outcome = str(r.get("outcome") or "")
        verifier = contents.get((key, VERIFIER_FILES[0]))
        reward = contents.get((key, VERIFIER_FILES[1])) or contents.get((key, VERIFIER_FILES[2]))
        metrics = r.get("metrics") if isinstance(r.get("metrics"), Mapping) else {}
        out[key] = {
            "error": str(r.get("error") or "")[-ERROR_CHARS:], "message": str(r.get("message") or ""),
            "log": excerpt(contents.get((key, "agent.log")), outcome),
            "verifier": excerpt(verifier, outcome),
            "reward": reward.decode("utf-8", errors="replace")[:500] if reward else None,
            "tests": _judge_tests(contents.get((key, "judge.json"))),
            "metrics": {str(k): v for k, v in sorted((metrics or {}).items())
                        if isinstance(v, (int, float, str, bool)) or v is None},
            "files": [[n, size] for n, size in listing.get(key, [])],
            "times": [str(r.get("started_at") or ""), str(r.get("finished_at") or "")],
        }
    return out


def error_groups(run: RunSummary) -> list[dict[str, Any]]:
    groups: dict[str, list[tuple[str, Mapping[str, Any]]]] = defaultdict(list)
    for key, r in run.results.items():
        if r.get("outcome") == "error":
            groups[str(r.get("error_kind") or "unknown")].append((key, r))
    return [{"kind": kind, "count": len(items), "first_key": items[0][0],
             "first_message": str(items[0][1].get("message") or items[0][1].get("error") or "")[:MESSAGE_CHARS]}
            for kind, items in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))]


def slowest(run: RunSummary, n: int = 10) -> list[dict[str, Any]]:
    rows = [(key, r) for key, r in run.results.items() if not r.get("resumed") and _num(r.get("duration_s"))]
    rows.sort(key=lambda kr: -(_num(kr[1].get("duration_s")) or 0.0))
    return [{"key": k, "duration_s": _num(r.get("duration_s")), "outcome": r.get("outcome"),
             "worker": r.get("worker") or ""} for k, r in rows[:n]]


def cost_by_benchmark(run: RunSummary) -> list[dict[str, Any]]:
    totals: dict[str, dict[str, float]] = defaultdict(lambda: {"cost": 0.0, "tokens_in": 0.0, "tokens_out": 0.0,
                                                               "tasks": 0.0, "seconds": 0.0})
    for key, r in run.results.items():
        t = totals[str(r.get("benchmark") or key.split("/")[0])]
        t["cost"] += _num(r.get("cost_usd")) or 0.0
        t["tokens_in"] += _num(r.get("tokens_in")) or 0.0
        t["tokens_out"] += _num(r.get("tokens_out")) or 0.0
        t["seconds"] += _num(r.get("duration_s")) or 0.0
        t["tasks"] += 1
    return [{"benchmark": b, **v} for b, v in sorted(totals.items())]


def comparison(run: RunSummary, base: StoredRun | None) -> dict[str, Any] | None:
    if base is None:
        return None
    name = str((base.run_json or {}).get("run_id") or base.source)
    return compare(run.results, base.results, name).to_dict()
