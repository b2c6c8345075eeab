"""The end of an agent run: every process freezes its heap (``gc.freeze``) once its session is over, so
pytest's five full garbage collections before exit walk only what is newer (plugin.py,
``_freeze_heap``); a plain test suite keeps pytest's full sweep and loads no report template."""

from __future__ import annotations

import json

import pytest

from tests.usaco_factory import write_benchmark

RECORD_FREEZE = '''
import gc, json, os, sys
from pathlib import Path

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_unconfigure(config):
    with open(Path(__file__).parent / "frozen.jsonl", "a") as f:
        f.write(json.dumps({"pid": os.getpid(), "frozen": gc.get_freeze_count(), "jinja2": "jinja2" in sys.modules,
                            "worker": getattr(config, "workerinput", {}).get("workerid", "main")}) + "\\n")
'''


def _records(pytester: pytest.Pytester) -> list[dict[str, object]]:
    return [json.loads(line) for line in (pytester.path / "frozen.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["single", "xdist"])
def test_an_agent_run_freezes_the_heap_of_every_process_at_its_end(pytester: pytest.Pytester,
                                                                   workers: list[str]) -> None:
    pytester.makeconftest(RECORD_FREEZE)
    write_benchmark(pytester.path / "bench")
    result = pytester.runpytest_subprocess("bench", "--agent", "oracle", "--run-id", "frz", *workers)
    result.assert_outcomes(passed=3)
    records = _records(pytester)
    assert sorted(str(r["worker"]) for r in records) == (["gw0", "gw1", "main"] if workers else ["main"])
    assert all(int(str(r["frozen"])) > 1000 for r in records), records
    # The run's files were written before (run.json, report.html): the freeze changes nothing there.
    run = json.loads((pytester.path / "results" / "frz" / "run.json").read_text())
    assert run["summary"]["passed"] == 3
    assert (pytester.path / "results" / "frz" / "report.html").stat().st_size > 1000


def test_a_plain_suite_keeps_the_full_sweep(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(RECORD_FREEZE)
    pytester.makepyfile(test_plain="def test_one():\n    assert 1 + 1 == 2\n")
    result = pytester.runpytest_subprocess("test_plain.py", "-n", "2")
    result.assert_outcomes(passed=1)
    records = _records(pytester)
    assert [r["frozen"] for r in records] == [0, 0, 0]
    assert not any(r["jinja2"] for r in records), records  # no report, so no template warmed either
