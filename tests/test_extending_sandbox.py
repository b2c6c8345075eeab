"""A third-party sandbox registered from a ``conftest.py`` (docs/extending.md, "Sandboxes"): one hook
line, and a benchmark runs through it; the shipped conformance suite runs against it too."""

from __future__ import annotations

import json

import pytest

from tests.usaco_factory import write_benchmark

TOY = '''
import json
from pathlib import Path

import pytest

from pytest_cloudeval.sandbox.local import LocalSandbox

LOG = Path(__file__).parent / "toy-calls.jsonl"


class ToySandbox(LocalSandbox):
    """A local sandbox that records every command: enough to show the registration path."""

    name = "toy"

    def exec(self, cmd, **kwargs):
        with open(LOG, "a") as f:
            f.write(json.dumps({"sandbox": self.spec.name, "cmd": cmd if isinstance(cmd, str) else list(cmd)}) + "\\n")
        return super().exec(cmd, **kwargs)

    def describe(self):
        return super().describe() | {"sandbox": "toy"}


def pytest_cloudeval_sandboxes():
    return {"toy": lambda: ToySandbox}
'''

CONFORMANCE = '''
from conftest import ToySandbox
from pytest_cloudeval.testing.sandbox_conformance import SandboxConformance


class TestToy(SandboxConformance):
    sandbox_cls = ToySandbox
'''


def test_a_sandbox_registered_from_conftest_runs_a_benchmark(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(TOY)
    write_benchmark(pytester.path / "bench")
    result = pytester.runpytest_subprocess("bench", "--sandbox=toy", "--agent", "oracle", "--run-id", "toy-run")
    result.assert_outcomes(passed=3)
    calls = [json.loads(line) for line in (pytester.path / "toy-calls.jsonl").read_text().splitlines()]
    assert len({c["sandbox"] for c in calls}) == 3  # every task's judge ran through the toy sandbox
    records = sorted((pytester.path / "results" / "toy-run").glob("*/*/sandbox.json"))
    assert [json.loads(p.read_text())["sandbox"] for p in records] == ["toy"] * 3


@pytest.mark.slow
def test_the_conformance_suite_runs_against_a_third_party_sandbox(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(TOY)
    pytester.makepyfile(test_toy=CONFORMANCE)
    result = pytester.runpytest_subprocess("test_toy.py", "-q")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 18 and "failed" not in outcomes, result.stdout.str()
