"""The statistics of a run report: 95% intervals, pass@k, and what changed against another run.

Kept apart from formatting so each formula is unit-tested on its own. Intervals are two-sided 95%:
Wilson's score interval for a pass rate (good at small n and near 0 or 1, where the normal
approximation gives impossible bounds), a normal interval for a mean score, Newcombe's hybrid score
interval for the difference of two pass rates, and the unbiased pass@k estimator of Chen et al. (2021).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Z95 = 1.959963984540054


def wilson(passed: int, total: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval of ``passed / total``; None when nothing was attempted."""
    if total <= 0:
        return None
    p = passed / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    # At 0 and n passes the bound is exactly 0 or 1; floating point would leave 0.9999999999999999.
    low = 0.0 if passed == 0 else max(0.0, centre - half)
    high = 1.0 if passed == total else min(1.0, centre + half)
    return low, high


def mean_interval(values: list[float], z: float = Z95) -> tuple[float, float, float] | None:
    """(mean, low, high): the normal interval of a mean; for one value the interval is the value."""
    if not values:
        return None
    n = len(values)
    mean = sum(values) / n
    if n == 1:
        return mean, mean, mean
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = z * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c passed: 1 - C(n-c, k) / C(n, k)."""
    if k <= 0 or n <= 0 or k > n:
        raise ValueError(f"pass@k needs 0 < k <= n, got n={n}, k={k}")
    if n - c < k:
        return 1.0
    # The product form avoids huge binomials: prod_{i=n-c+1}^{n} (1 - k / i).
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def diff_interval(p1: tuple[int, int], p2: tuple[int, int], z: float = Z95) -> tuple[float, float, float] | None:
    """Newcombe's hybrid score interval of ``rate(p1) - rate(p2)`` for (passed, total) pairs."""
    w1, w2 = wilson(*p1, z=z), wilson(*p2, z=z)
    if w1 is None or w2 is None:
        return None
    r1, r2 = p1[0] / p1[1], p2[0] / p2[1]
    d = r1 - r2
    low = d - math.sqrt((r1 - w1[0]) ** 2 + (w2[1] - r2) ** 2)
    high = d + math.sqrt((w1[1] - r1) ** 2 + (r2 - w2[0]) ** 2)
    return d, low, high


CHANGES = ("fixed", "regressed", "new", "missing", "still passing", "still failing")


@dataclass(frozen=True)
class Comparison:
    """Per task key, how this run differs from a base run; and the change in pass rate."""

    base: str
    changes: Mapping[str, str]
    counts: Mapping[str, int]
    pass_rate: float | None
    base_pass_rate: float | None
    delta: tuple[float, float, float] | None

    def to_dict(self) -> dict[str, Any]:
        return {"base": self.base, "changes": dict(self.changes), "counts": dict(self.counts),
                "pass_rate": self.pass_rate, "base_pass_rate": self.base_pass_rate,
                "delta": list(self.delta) if self.delta else None}


def _attempted(results: Mapping[str, Mapping[str, Any]]) -> tuple[int, int]:
    rows = [r for r in results.values() if r.get("outcome") in ("passed", "failed", "error")]
    return sum(1 for r in rows if r.get("outcome") == "passed"), len(rows)


def compare(current: Mapping[str, Mapping[str, Any]], base: Mapping[str, Mapping[str, Any]],
            base_name: str = "") -> Comparison:
    """Fixed (not passed before, passed now), regressed (the reverse), new, missing, unchanged.

    Skipped tasks count as not attempted: a task skipped in one run and passed in the other is new or
    missing, not fixed or regressed.
    """
    def attempted(r: Mapping[str, Any] | None) -> bool:
        return r is not None and r.get("outcome") in ("passed", "failed", "error")

    changes: dict[str, str] = {}
    for key in sorted(set(current) | set(base)):
        now, before = current.get(key), base.get(key)
        if not attempted(before) and attempted(now):
            changes[key] = "new"
        elif attempted(before) and not attempted(now):
            changes[key] = "missing"
        elif not attempted(before):
            continue
        else:
            assert now is not None and before is not None
            was, is_ = before.get("outcome") == "passed", now.get("outcome") == "passed"
            changes[key] = {(False, True): "fixed", (True, False): "regressed", (True, True): "still passing",
                            (False, False): "still failing"}[(was, is_)]
    counts = {name: sum(1 for c in changes.values() if c == name) for name in CHANGES}
    now_pt, base_pt = _attempted(current), _attempted(base)
    return Comparison(base=base_name, changes=changes, counts=counts,
                      pass_rate=now_pt[0] / now_pt[1] if now_pt[1] else None,
                      base_pass_rate=base_pt[0] / base_pt[1] if base_pt[1] else None,
                      delta=diff_interval(now_pt, base_pt))
