"""A fuzz corpus of malformed task files: every variant is a clear error (or skip) naming the file and
the field, never a traceback, an INTERNALERROR, a dropped benchmark, or a task run with a bad limit.

The generator walks a *complete* valid task (every numeric field set) and replaces each numeric
leaf with each bad value, so a field added to ``HARBOR_FULL`` or ``USACO_FULL`` is covered at once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_cloudeval.model import Task
from pytest_cloudeval.tasks.base import BrokenTask
from pytest_cloudeval.tasks.harbor import load_task_dir
from tests.usaco_factory import problem, write_benchmark

HARBOR_FULL: dict[str, Any] = {
    "agent": {"timeout_sec": 30.0},
    "verifier": {"timeout_sec": 10.0},
    "environment": {"cpus": 1, "memory_mb": 512, "storage_mb": 1024, "gpus": 0, "build_timeout_sec": 60.0,
                    "healthcheck": {"command": "true", "interval_sec": 1.0, "timeout_sec": 5.0,
                                    "start_period_sec": 0.0, "start_interval_sec": 1.0, "retries": 2}},
}
USACO_FULL = problem("1001_full")
BIG = "1" + "0" * 5000
# (TOML literal, JSON literal, description)
BAD_NUMBERS = [("nan", "NaN", "nan"), ("inf", "Infinity", "inf"), ("-inf", "-Infinity", "-inf"),
               ("-1", "-1", "-1"), ("1e300", "1e300", "1e+300"), (BIG, BIG, "digits"),
               ('"12"', '"12"', "'12'"), ("true", "true", "True"), ("[1]", "[1]", "[1]")]


def numeric_leaves(data: dict[str, Any], path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for key, value in data.items():
        if isinstance(value, dict):
            yield from numeric_leaves(value, (*path, key))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            yield (*path, key)


def toml_of(data: dict[str, Any], override: tuple[tuple[str, ...], str] | None, prefix: str = "") -> str:
    lines, tables = [], []
    for key, value in data.items():
        here = (*prefix.split(".")[:-1], key) if prefix else (key,)
        here = tuple(p for p in here if p)
        if isinstance(value, dict):
            tables.append((key, value))
            continue
        literal = json.dumps(value)
        if override is not None and override[0] == here:
            literal = override[1]
        lines.append(f"{key} = {literal}")
    out = "\n".join(lines) + "\n"
    for key, value in tables:
        name = f"{prefix}{key}"
        out += f"[{name}]\n" + toml_of(value, override, name + ".")
    return out


def harbor_variants() -> Iterator[tuple[str, str, str]]:
    """(id, task.toml text, field named in the error)."""
    for leaf in numeric_leaves(HARBOR_FULL):
        for toml_value, _, label in BAD_NUMBERS:
            if leaf[-1] in ("start_period_sec", "gpus") and toml_value in ("-1",):
                pass  # still bad: below 0
            yield f"{'.'.join(leaf)}={label}", toml_of(HARBOR_FULL, (leaf, toml_value)), leaf[-1]
    for legacy in ("memory", "storage"):
        for value in ('"nanG"', '"infG"', '"-4G"', '""', '"4X"', '"1e999G"', "4"):
            text = toml_of(HARBOR_FULL, None).replace("[environment]\n", f"[environment]\n{legacy} = {value}\n")
            text = text.replace(f"{legacy}_mb = ", f"#{legacy}_mb = ")
            yield f"{legacy}={value}", text, legacy


def test_generator_covers_every_numeric_field() -> None:
    leaves = {leaf[-1] for leaf in numeric_leaves(HARBOR_FULL)}
    assert {"timeout_sec", "cpus", "memory_mb", "storage_mb", "gpus", "build_timeout_sec", "retries"} <= leaves
    assert toml_of(HARBOR_FULL, None).count("[") >= 4
    ok = toml_of(HARBOR_FULL, None)
    assert "nan" not in ok


@pytest.mark.parametrize("name,text,field", list(harbor_variants()))
def test_harbor_variant_is_refused_by_name(tmp_path: Path, name: str, text: str, field: str) -> None:
    task = tmp_path / "t1"
    for sub in ("environment", "tests"):
        (task / sub).mkdir(parents=True)
    (task / "task.toml").write_text(text)
    (task / "instruction.md").write_text("x")
    (task / "environment" / "Dockerfile").write_text("FROM scratch\n")
    (task / "tests" / "test.sh").write_text("exit 0\n")
    loaded = load_task_dir(task, "b")
    assert isinstance(loaded, BrokenTask), (name, loaded)
    assert not loaded.skip
    assert loaded.source == task / "task.toml"
    assert field in loaded.message or "invalid TOML" in loaded.message, loaded.message


def test_the_complete_task_itself_is_valid(tmp_path: Path) -> None:
    task = tmp_path / "t1"
    for sub in ("environment", "tests"):
        (task / sub).mkdir(parents=True)
    (task / "task.toml").write_text(toml_of(HARBOR_FULL, None))
    (task / "instruction.md").write_text("x")
    (task / "environment" / "Dockerfile").write_text("FROM scratch\n")
    (task / "tests" / "test.sh").write_text("exit 0\n")
    loaded = load_task_dir(task, "b")
    assert isinstance(loaded, Task), loaded
    assert all(math.isfinite(v) for v in (loaded.limits.cpus or 0, loaded.limits.agent_timeout_s or 0))


def usaco_variants() -> Iterator[tuple[str, Any]]:
    """(problem id, raw JSON text of the problem) with one bad numeric field each."""
    n = 0
    for field in [k for k, v in USACO_FULL.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]:
        for _, json_value, _ in BAD_NUMBERS:
            if field == "num_samples":
                continue  # informational for agents: not a limit the plugin applies
            n += 1
            pid = f"{2000 + n}_{field}"
            body = dict(USACO_FULL, problem_id=pid, **{field: "@@"})
            yield pid, json.dumps(body).replace('"@@"', json_value)


@pytest.mark.slow
def test_usaco_corpus_end_to_end(pytester: pytest.Pytester) -> None:
    """One benchmark holding every malformed problem, two invalid ids that clean up to the same name,
    and one good problem: each bad one errors alone naming the dataset and field; the good one runs."""
    variants = list(usaco_variants())
    root = write_benchmark(pytester.path / "bench", {"1001_ok": problem("1001_ok")})
    good = json.dumps(problem("1001_ok"))
    raw = ", ".join([f'"1001_ok": {good}', *(f'"{pid}": {body}' for pid, body in variants),
                     '"bad\\u0001id": {}', '"bad\\u0002id": {}'])
    (root / "dataset.json").write_text("{" + raw + "}")
    for pid, _ in variants:
        (root / "tests" / pid).mkdir(parents=True)
        (root / "tests" / pid / "1.in").write_text("1 2\n")
        (root / "tests" / pid / "1.out").write_text("3\n")
    res = pytester.runpytest("bench", "--agent", "oracle", "-rE", "-p", "no:cacheprovider")
    text = res.stdout.str() + res.stderr.str()
    assert "INTERNALERROR" not in text and "Traceback" not in text, text[-3000:]
    res.assert_outcomes(passed=1, errors=len(variants) + 2)
    for pid, _ in variants:
        field = pid.split("_", 1)[1]
        assert any(f"problem '{pid}': {field}" in line and "dataset.json" in line
                   for line in text.splitlines()), (pid, text[-2000:])


@pytest.mark.parametrize("raw,message", [
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"1001_ok": ' * 50_000 + "1" + "}" * 50_000, "nested too deeply"),
])
def test_pathological_dataset_is_one_clear_error(pytester: pytest.Pytester, raw: str, message: str) -> None:
    root = write_benchmark(pytester.path / "bench")
    (root / "dataset.json").write_text(raw)
    res = pytester.runpytest("bench", "--agent", "oracle", "-p", "no:cacheprovider")
    res.stdout.fnmatch_lines([f"*dataset.json: *{message}*"])
    text = res.stdout.str() + res.stderr.str()
    assert "INTERNALERROR" not in text and "Traceback" not in text


@pytest.mark.parametrize("args,message", [
    (["--memory", "inf"], "*--memory: invalid value 'inf'*"),
    (["--memory", "nan"], "*--memory: invalid value 'nan'*"),
    (["--cpus", "nan"], "*--cpus: invalid value 'nan'*"),
    (["--task-timeout", "inf"], "*--task-timeout: invalid value 'inf'*"),
    (["--repeat", "1e20"], "*--repeat: invalid value '1e20'*"),
    (["--repeat", "100000000000000000000"], "*--repeat: invalid value*at least 1 and at most 1000*"),
    (["--pass-threshold", "nan"], "*--pass-threshold: invalid value 'nan'*"),
    (["--results-dir", "afile"], "*--results-dir *afile* exists and is not a folder*"),
    (["--results-dir", "afile/sub"], "*--results-dir *afile* exists and is not a folder*"),
])
def test_bad_option_values(pytester: pytest.Pytester, args: list[str], message: str) -> None:
    write_benchmark(pytester.path / "bench")
    (pytester.path / "afile").write_text("not a folder")
    res = pytester.runpytest("bench", "--agent", "oracle", *args, "-p", "no:cacheprovider")
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    res.stderr.fnmatch_lines([message])
    text = res.stdout.str() + res.stderr.str()
    assert "INTERNALERROR" not in text and "Traceback" not in text
