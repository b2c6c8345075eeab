"""What pytest may walk: benchmark and task roots are data (never walked, collected or imported),
results folders are never collected, and real ids with ``?!()`` work end to end.

The corpora have the real shapes: Terminal-Bench 2.0 task folders ship ``tests/test_outputs.py`` and
``tests/conftest.py`` (Harbor's USACO adapter too), and here each of those files, if pytest ever
imported it on the host, would leave a trace file and raise.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from _pytest.config import PytestPluginManager

from tests.usaco_factory import problem, write_benchmark

# Imported by pytest on the host, this leaves a trace and breaks collection loudly.
LOUD = """
import pathlib
pathlib.Path({trace!r}).write_text(__file__)
raise SystemExit("imported on the host: " + __file__)
"""


def plant(folder: Path, trace: Path, names: tuple[str, ...] = ("conftest.py", "test_outputs.py")) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text(LOUD.format(trace=str(trace)))


def tb2_task(root: Path, name: str, trace: Path, *, toml: str = "") -> Path:
    task = root / name
    for sub in ("environment", "solution", "tests"):
        (task / sub).mkdir(parents=True, exist_ok=True)
    (task / "task.toml").write_text(
        'version = "1.0"\n[metadata]\ndifficulty = "medium"\ncategory = "software-engineering"\n'
        '[verifier]\ntimeout_sec = 900.0\n[agent]\ntimeout_sec = 900.0\n'
        f'[environment]\nbuild_timeout_sec = 600.0\ndocker_image = "example/{name}:20251031"\n'
        f'cpus = 1\nmemory = "4G"\nstorage = "10G"\n{toml}')
    (task / "instruction.md").write_text("Do the thing.\n")
    (task / "environment" / "Dockerfile").write_text("FROM example/base\nWORKDIR /app\n")
    (task / "solution" / "solve.sh").write_text("#!/bin/bash\necho done\n")
    (task / "tests" / "test.sh").write_text("#!/bin/bash\npytest /tests/test_outputs.py\n")
    plant(task / "tests", trace)
    plant(task, trace, ("conftest.py",))
    return task


def test_pluggy_internal_the_guard_relies_on() -> None:
    """layout.guard_conftests wraps these; a pytest upgrade that drops one must fail here, loudly."""
    manager = PytestPluginManager()
    for name in ("_loadconftestmodules", "_get_directory", "_getconftestmodules"):
        assert callable(getattr(manager, name, None)), name
    assert isinstance(getattr(manager, "_dirpath2confmods", None), dict)


@pytest.mark.parametrize("args", [["tb2"], ["tb2/task-a"], ["tb2/task-a/task.toml"], []])
def test_tb2_folders_are_never_imported(pytester: pytest.Pytester, args: list[str]) -> None:
    trace = pytester.path / "IMPORTED"
    for name in ("task-a", "task-b", "test-c"):  # a task folder named test* too
        tb2_task(pytester.path / "tb2", name, trace)
    res = pytester.runpytest(*args, "--collect-only", "-q")
    text = res.stdout.str() + res.stderr.str()
    assert not trace.exists(), f"imported on the host: {trace.read_text()}\n{text}"
    assert "error" not in text.lower(), text
    expected = {"task-a": 1} if args[:1] and "task-a" in args[0] else {"task-a": 1, "task-b": 1, "test-c": 1}
    for name in expected:
        assert f"tb2/{name}/task.toml::{name}" in text, text
    assert f"{len(expected)} test" in text, text


def test_a_path_inside_a_task_is_not_collected(pytester: pytest.Pytester) -> None:
    trace = pytester.path / "IMPORTED"
    tb2_task(pytester.path / "tb2", "task-a", trace)
    res = pytester.runpytest("tb2/task-a/tests/test_outputs.py", "tb2/task-a/tests", "--collect-only", "-q")
    assert not trace.exists(), res.stdout.str()
    assert res.ret == pytest.ExitCode.USAGE_ERROR  # "not found", as for any path pytest does not collect
    res.stderr.fnmatch_lines(["*not found*"])


def test_benchmark_root_hidden_tests_are_never_imported(pytester: pytest.Pytester) -> None:
    trace = pytester.path / "IMPORTED"
    root = write_benchmark(pytester.path / "bench")
    plant(root / "tests", trace)  # bench/tests/: pytest loads test*/conftest.py of command-line folders
    plant(root / "tests" / "1001_bronze_add", trace, ("conftest.py", "test_1.py"))
    plant(root, trace, ("conftest.py", "test_here.py"))
    for args in (["bench"], ["bench/tests"], []):
        res = pytester.runpytest(*args, "--collect-only", "-q")
        assert not trace.exists(), (args, res.stdout.str())
    res = pytester.runpytest("bench", "--agent", "oracle", "-q")
    res.assert_outcomes(passed=3)
    assert not trace.exists()


def test_harbor_legacy_sizes_reach_the_task(pytester: pytest.Pytester) -> None:
    from pytest_cloudeval.tasks.base import BrokenTask
    from pytest_cloudeval.tasks.harbor import load_task_dir

    task = load_task_dir(tb2_task(pytester.path / "tb2", "task-a", pytester.path / "IMPORTED"), "tb2")
    assert not isinstance(task, BrokenTask), task
    assert task.limits.memory_mb == 4096 and task.limits.storage_mb == 10240
    assert task.environment.image == "example/task-a:20251031" and task.environment.workdir is None


@pytest.mark.parametrize("with_options", [False, True])
def test_results_folders_are_never_collected(pytester: pytest.Pytester, with_options: bool) -> None:
    """An agent wrote conftest.py and test_pwn.py into /logs/artifacts; they came back under results/."""
    write_benchmark(pytester.path / "bench")
    res = pytester.runpytest("bench", "--agent", "oracle", "--run-id", "r1", "-q")
    res.assert_outcomes(passed=3)
    run_dir = pytester.path / "results" / "r1"
    assert (run_dir / "CLOUDEVAL_RESULTS").is_file()
    trace = pytester.path / "IMPORTED"
    artifacts = run_dir / "bench" / "1001_bronze_add" / "logs" / "artifacts"
    plant(artifacts, trace, ("conftest.py", "test_pwn.py"))
    extra = ["--agent", "oracle", "--run-id", "r2"] if with_options else ["-p", "no:cacheprovider"]
    for args in ([], ["results"], ["results/r1"], [str(artifacts)], [str(artifacts / "test_pwn.py")]):
        res = pytester.runpytest(*args, *extra, "--collect-only", "-q")
        assert not trace.exists(), (args, res.stdout.str())
        assert "test_pwn" not in res.stdout.str()


WEIRD_IDS = ["1001_where_am_i?", "1002_wow!", "1003_moo_(easy)", "1004_moo_(easy)!", "1005 spaced out"]


def test_real_usaco_ids_keep_their_id(pytester: pytest.Pytester) -> None:
    problems = {pid: problem(pid) for pid in WEIRD_IDS}
    problems["../x"] = problem("../x")
    problems["/abs"] = problem("/abs")
    root = write_benchmark(pytester.path / "bench", {k: v for k, v in problems.items() if "/" not in k})
    (root / "dataset.json").write_text(json.dumps(problems))
    res = pytester.runpytest("bench", "--agent", "oracle", "--run-id", "ids", "--junitxml", "junit.xml", "-rE")
    res.assert_outcomes(passed=len(WEIRD_IDS), errors=2)
    res.stdout.fnmatch_lines_random(["*problem id '../x' is not a safe name*", "*problem id '/abs' is not a safe name*"])
    results = {}
    for path in (pytester.path / "results" / "ids").rglob("result.json"):
        data = json.loads(path.read_text())
        assert path.is_relative_to(pytester.path / "results" / "ids" / "bench")
        results[data["task_id"]] = (path.parent.name, data)
    folders = [name for name, _ in results.values()]
    assert len(set(folders)) == len(folders)
    assert all(c.isalnum() or c in "._-" for name in folders for c in name), folders
    for pid in WEIRD_IDS:
        assert results[pid][1]["outcome"] == "passed"
    names = {case.get("name") for case in ET.parse(pytester.path / "junit.xml").getroot().iter("testcase")}
    assert set(WEIRD_IDS) <= names, names
    assert not (pytester.path / "x").exists() and not Path("/abs").exists()
    selected = pytester.runpytest("bench", "--agent", "oracle", "-k", "where_am_i", "--collect-only", "-q")
    selected.stdout.fnmatch_lines(["*1001_where_am_i?*", "*1/7 tests collected*"])
    again = pytester.runpytest("bench", "--agent", "oracle", "--run-id", "ids2", "-q")
    again.assert_outcomes(passed=len(WEIRD_IDS), errors=2)
    second = sorted(p.parent.name for p in (pytester.path / "results" / "ids2").rglob("result.json"))
    assert second == sorted(folders)  # stable across runs
