"""Run summaries from task results: counts, pass rates, errors by kind, tokens, cost, slowest tasks.

Used by the terminal summary, ``run.json``, and ``python -m pytest_cloudeval report``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from .stats import mean_interval, pass_at_k, wilson


def _num(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _rounded(pair: Any) -> list[float] | None:
    return [round(float(v), 4) for v in pair] if pair else None


def _pass_at_k(rows: list[Mapping[str, Any]]) -> dict[str, float] | None:
    """pass@k for k = 1..n, averaged over tasks that ran n repeats each (``--repeat`` > 1), else None."""
    samples: dict[str, list[bool]] = defaultdict(list)
    for r in rows:
        if r.get("outcome") in ("passed", "failed", "error"):
            samples[str(r.get("task_id") or r.get("key"))].append(r.get("outcome") == "passed")
    if not samples or max(int(r.get("repeat") or 1) for r in rows) <= 1:
        return None
    n = min(len(v) for v in samples.values())
    if n <= 1:
        return None
    return {f"pass@{k}": round(sum(pass_at_k(len(v), sum(v), k) for v in samples.values()) / len(samples), 4)
            for k in sorted({1, n} | {k for k in (2, 5, 10) if k < n})}


def summarize(results: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    rows = list(results)
    counts = Counter(r.get("outcome", "error") for r in rows)
    groups: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    scores: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in rows:
        key = (str(r.get("benchmark", "")), str(r.get("agent", "")))
        groups[key][r.get("outcome", "error")] += 1
        if r.get("outcome") != "skipped" and isinstance(r.get("score"), (int, float)):
            scores[key].append(float(r["score"]))
    per_group = []
    for (benchmark, agent), c in sorted(groups.items()):
        attempted = c["passed"] + c["failed"] + c["error"]
        per_group.append({
            "benchmark": benchmark, "agent": agent, "tasks": sum(c.values()),
            "passed": c["passed"], "failed": c["failed"], "error": c["error"], "skipped": c["skipped"],
            "pass_rate": round(c["passed"] / attempted, 4) if attempted else None,
            "mean_score": round(sum(scores[(benchmark, agent)]) / len(scores[(benchmark, agent)]), 4)
            if scores[(benchmark, agent)] else None,
            "pass_rate_ci": _rounded(wilson(c["passed"], attempted)),
            "mean_score_ci": _rounded((mean_interval(scores[(benchmark, agent)]) or (None,))[1:] or None),
            "pass_at_k": _pass_at_k([r for r in rows if (str(r.get("benchmark", "")), str(r.get("agent", "")))
                                     == (benchmark, agent)]),
        })
    errors = Counter(str(r.get("error_kind") or "unknown") for r in rows if r.get("outcome") == "error")
    attempted = counts["passed"] + counts["failed"] + counts["error"]
    slowest = sorted((r for r in rows if not r.get("resumed")), key=lambda r: -_num(r.get("duration_s")))[:5]
    return {
        "tasks": len(rows),
        "passed": counts["passed"], "failed": counts["failed"], "error": counts["error"],
        "skipped": counts["skipped"],
        "resumed": sum(1 for r in rows if r.get("resumed")),
        "pass_rate": round(counts["passed"] / attempted, 4) if attempted else None,
        "by_benchmark": per_group,
        "errors_by_kind": dict(sorted(errors.items())),
        "tokens_in": int(sum(_num(r.get("tokens_in")) for r in rows)),
        "tokens_out": int(sum(_num(r.get("tokens_out")) for r in rows)),
        "cost_usd": round(sum(_num(r.get("cost_usd")) for r in rows), 6),
        "task_seconds": round(sum(_num(r.get("duration_s")) for r in rows if not r.get("resumed")), 3),
        "slowest": [{"key": r.get("key"), "duration_s": r.get("duration_s"), "outcome": r.get("outcome")}
                    for r in slowest],
    }


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def format_summary(summary: Mapping[str, Any], where: str | None = None) -> list[str]:
    lines = []
    header = f"{'benchmark':<20} {'agent':<24} {'tasks':>5} {'pass':>5} {'fail':>5} {'error':>5} {'skip':>5} {'rate':>7}"
    lines.append(header)
    for g in summary["by_benchmark"]:
        agent = g["agent"] if len(g["agent"]) <= 24 else "…" + g["agent"][-23:]
        lines.append(f"{g['benchmark']:<20} {agent:<24} {g['tasks']:>5} {g['passed']:>5} {g['failed']:>5} "
                     f"{g['error']:>5} {g['skipped']:>5} {_pct(g['pass_rate']):>7}")
    lines.append(f"all: {summary['tasks']} tasks, {summary['passed']} passed, {summary['failed']} failed, "
                 f"{summary['error']} errors, {summary['skipped']} skipped; pass rate {_pct(summary['pass_rate'])}"
                 + (f"; {summary['resumed']} kept from the resumed run" if summary.get("resumed") else ""))
    if summary["errors_by_kind"]:
        kinds = ", ".join(f"{k} {v}" for k, v in summary["errors_by_kind"].items())
        lines.append(f"errors by kind: {kinds}")
    lines.append(f"tokens in {summary['tokens_in']}, out {summary['tokens_out']}; cost ${summary['cost_usd']:.4f}")
    if summary["slowest"]:
        slow = ", ".join(f"{s['key']} {float(s['duration_s'] or 0):.2f}s" for s in summary["slowest"][:3])
        lines.append(f"slowest: {slow}")
    for extra in summary.get("notes", []):
        lines.append(str(extra))
    if where:
        lines.append(f"results: {where}")
    return lines
