"""A new task format is one file plus one registration line: a toy format registered from a
``conftest.py`` detects its own folders, adds its markers, and runs with the oracle and noop agents."""

from __future__ import annotations

import json

import pytest

TOY_CONFTEST = '''
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_cloudeval.model import AgentOutput, Judgement, Task
from pytest_cloudeval.tasks.base import BrokenTask, TaskFormat


@dataclass(frozen=True)
class ToyData:
    answer: str


class ToyFormat(TaskFormat):
    """A folder with question.txt and answer.txt is one task; benchmark.toml format = "toy" lists many."""

    name = "toy"
    markers = {"toy": "toy-format tasks"}

    def detect(self, directory):
        source = directory / "question.txt"
        return source if source.is_file() and (directory / "answer.txt").is_file() else None

    def load_task(self, source, benchmark):
        folder = source.parent
        return Task(benchmark=benchmark, task_id=folder.name, format=self.name, source=source, root=folder,
                    instruction=source.read_text(), agent_input={"question": source.read_text()},
                    markers=("toy",), private=ToyData((folder / "answer.txt").read_text().strip()))

    def load_benchmark(self, root, spec, benchmark):
        return [self.load_task(d / "question.txt", benchmark) for d in sorted(root.iterdir())
                if d.is_dir() and self.detect(d)]

    def oracle(self, task, sandbox, settings, timeout_s):
        return AgentOutput(answer=task.private.answer)

    def judge(self, task, output, sandbox, settings, task_dir):
        ok = output.answer == task.private.answer
        return Judgement(ok, 1.0 if ok else 0.0, "RIGHT" if ok else "WRONG")


@pytest.hookimpl
def pytest_cloudeval_task_formats():
    return [ToyFormat()]
'''


def toy_task(folder, answer: str) -> None:
    folder.mkdir(parents=True)
    (folder / "question.txt").write_text("what is the answer?")
    (folder / "answer.txt").write_text(answer)
    # Data of the format, not tests: must never be imported.
    (folder / "test_data.py").write_text("raise SystemExit('imported a toy task file')\n")


@pytest.mark.parametrize("agent,outcome", [("oracle", "passed"), ("noop", "failed")])
def test_toy_format_from_a_conftest(pytester: pytest.Pytester, agent: str, outcome: str) -> None:
    pytester.makeconftest(TOY_CONFTEST)
    toy_task(pytester.path / "lone" / "q1", "42")  # detected by the format: a lone task folder
    toy_task(pytester.path / "suite" / "q2", "7")
    toy_task(pytester.path / "suite" / "q3", "8")
    (pytester.path / "suite" / "benchmark.toml").write_text('format = "toy"\nname = "suite"\n')
    res = pytester.runpytest("--agent", agent, "--run-id", "toy", "-m", "toy", "-p", "no:cacheprovider")
    res.assert_outcomes(**{outcome: 3})
    results = {json.loads(p.read_text())["task_id"]: json.loads(p.read_text())
               for p in (pytester.path / "results" / "toy").rglob("result.json")}
    assert set(results) == {"q1", "q2", "q3"}
    assert {r["outcome"] for r in results.values()} == {outcome}
    assert results["q1"]["benchmark"] == "lone" and results["q2"]["benchmark"] == "suite"
    markers = pytester.runpytest("--markers")
    markers.stdout.fnmatch_lines(["*toy: toy-format tasks*"])
