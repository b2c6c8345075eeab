"""Malformed benchmarks and tasks: a clear error naming the file and the fault, never an INTERNALERROR,
nothing written outside the results folder, and the good tasks still run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.usaco_factory import problem, write_benchmark

FIXTURES = Path(__file__).parent / "fixtures"


def no_internal_error(res: pytest.RunResult) -> None:
    text = res.stdout.str() + res.stderr.str()
    assert "INTERNALERROR" not in text
    assert "Traceback (most recent call last)" not in text


@pytest.mark.parametrize("content,message", [
    ('format = "usaco"\ndataset = \n', "*benchmark.toml: invalid TOML*"),
    ('dataset = "dataset.json"\n', "*benchmark.toml: missing 'format'*"),
    ('format = "swebench-xl"\n', "*benchmark.toml: unknown format 'swebench-xl' (known: harbor, usaco)*"),
    ('format = "usaco"\ndataset = "nope.json"\n', "*dataset 'nope.json' does not exist*"),
    ('format = "usaco"\ndataset = "../../etc/passwd"\n', "*lies outside the benchmark folder*"),
    ('format = "usaco"\ndataset = "dataset.json"\nname = "a/b"\n', "*benchmark name 'a/b' must be*"),
])
def test_bad_benchmark_toml(pytester: pytest.Pytester, content: str, message: str) -> None:
    root = write_benchmark(pytester.path / "bench")
    (root / "benchmark.toml").write_text(content)
    res = pytester.runpytest("bench", "--agent", "oracle")
    assert res.ret == pytest.ExitCode.INTERRUPTED  # collection errors stop the run before any task
    res.stdout.fnmatch_lines([message])
    no_internal_error(res)


@pytest.mark.parametrize("raw,message", [
    (b"{not json", "*dataset.json: invalid JSON at line 1 column 2*"),
    (b"[1, 2]", "*dataset.json: expected a JSON object keyed by problem_id, got list*"),
    (b"{}", "*dataset.json: holds no problems*"),
    (b'{"a": "\xff\xfe"}', "*dataset.json: not UTF-8 text*"),
])
def test_bad_dataset_file(pytester: pytest.Pytester, raw: bytes, message: str) -> None:
    root = write_benchmark(pytester.path / "bench")
    (root / "dataset.json").write_bytes(raw)
    res = pytester.runpytest("bench", "--agent", "oracle")
    assert res.ret == pytest.ExitCode.INTERRUPTED  # the benchmark is unreadable: a collection error
    res.assert_outcomes(errors=1)  # the collection error only: no task ran
    res.stdout.fnmatch_lines([message, "*1 error*"])
    no_internal_error(res)


def test_bad_problems_error_alone_and_others_run(pytester: pytest.Pytester) -> None:
    problems: dict[str, Any] = {
        "1001_ok": problem("1001_ok"),
        "1002_fast": problem("1002_fast", runtime_limit="fast"),
        "1003_nodesc": {k: v for k, v in problem("1003_nodesc").items() if k != "description"},
        "1004_negative": problem("1004_negative", memory_limit=-5),
        "1005_notests": problem("1005_notests"),
        "1006_mismatch": problem("1006_other"),
        "../../escape": problem("../../escape"),
        "1007_list": ["not", "an", "object"],
    }
    root = write_benchmark(pytester.path / "bench", problems)
    shutil.rmtree(root / "tests" / "1005_notests")
    shutil.rmtree(root / "tests" / "../../escape", ignore_errors=True)
    res = pytester.runpytest("bench", "--agent", "oracle", "-rE")
    res.assert_outcomes(passed=1, errors=7)
    res.stdout.fnmatch_lines_random([
        "*problem '1002_fast': runtime_limit must be int or float, got 'fast'*",
        "*problem '1003_nodesc' lacks the field 'description'*",
        "*problem '1004_negative': memory_limit must be positive*",
        "*1005_notests*hidden tests*",
        "*problem '1006_mismatch': its problem_id is '1006_other'*",
        "*problem id '../../escape' is not a safe name*",
        "*problem '1007_list' must be a JSON object*",
    ])
    no_internal_error(res)
    written = {p.relative_to(pytester.path).parts[0] for p in pytester.path.rglob("result.json")}
    assert written == {"results"}
    run = json.loads(next((pytester.path / "results").glob("*/run.json")).read_text())
    assert run["summary"]["errors_by_kind"] == {"benchmark": 7}


def test_bad_harbor_tasks(pytester: pytest.Pytester) -> None:
    shutil.copytree(FIXTURES / "harbor_bad", pytester.path / "harbor_bad")
    res = pytester.runpytest("harbor_bad", "--agent", "oracle", "-rE")
    res.assert_outcomes(errors=3)
    res.stdout.fnmatch_lines_random([
        "*bad-toml/task.toml: invalid TOML*",
        "*bad-types/task.toml*must be*",
        "*missing-instruction/instruction.md: missing instruction.md*",
    ])
    no_internal_error(res)


def test_bad_harbor_types_named(pytester: pytest.Pytester) -> None:
    task = pytester.path / "bench" / "t1"
    (task / "tests").mkdir(parents=True)
    (task / "environment").mkdir()
    (task / "environment" / "Dockerfile").write_text("FROM scratch\n")
    (task / "tests" / "test.sh").write_text("exit 0\n")
    (task / "instruction.md").write_text("do it")
    (pytester.path / "bench" / "benchmark.toml").write_text('format = "harbor"\n')
    for body, message in [
        ("[agent]\ntimeout_sec = -5\n", "*timeout_sec must be positive, got -5*"),
        ('[environment]\nmemory_mb = "lots"\n', "*memory_mb must be a whole number, got 'lots'*"),
        ('[environment]\nallow_internet = "yes"\n', "*allow_internet must be true or false*"),
        ('[environment]\nworkdir = "app"\n', "*workdir must be an absolute path*"),
    ]:
        (task / "task.toml").write_text(body)
        res = pytester.runpytest("bench", "--agent", "oracle", "-rE")
        res.assert_outcomes(errors=1)
        res.stdout.fnmatch_lines([message])


def test_non_utf8_instruction(pytester: pytest.Pytester) -> None:
    task = pytester.path / "bench" / "t1"
    (task / "tests").mkdir(parents=True)
    (task / "tests" / "test.sh").write_text("exit 0\n")
    (task / "task.toml").write_text('[environment]\ndocker_image = "x"\n')
    (task / "instruction.md").write_bytes(b"\xff\xfe bad")
    (pytester.path / "bench" / "benchmark.toml").write_text('format = "harbor"\n')
    res = pytester.runpytest("bench", "--agent", "oracle", "-rE")
    res.assert_outcomes(errors=1)
    res.stdout.fnmatch_lines(["*instruction.md: not UTF-8 text*"])


def test_harbor_tasks_skip_under_local_sandbox(pytester: pytest.Pytester) -> None:
    shutil.copytree(FIXTURES / "harbor", pytester.path / "harbor")
    res = pytester.runpytest("harbor", "--agent", "oracle", "--sandbox", "local", "-rs")
    outcomes = res.parseoutcomes()
    assert outcomes.get("skipped", 0) >= 5 and "failed" not in outcomes and "errors" not in outcomes
    res.stdout.fnmatch_lines(["*harbor tasks need a sandbox with container support (--sandbox=docker)*"])


def test_duplicate_task_ids_rejected(pytester: pytest.Pytester) -> None:
    root = write_benchmark(pytester.path / "bench")
    (root / "dataset.json").write_text('{"1001_a": {"description": "x", "runtime_limit": 1, "memory_limit": 64},'
                                       ' "1001_a": {"description": "y", "runtime_limit": 1, "memory_limit": 64}}')
    # JSON objects keep the last duplicate key; the task still loads once (no duplicate items).
    res = pytester.runpytest("bench", "--collect-only", "-q")
    assert res.stdout.str().count("1001_a") == 1
