"""Agents as HAL runs them, and agents that try to leak or to read what they must not.

- ``-A`` values are typed as HAL's ``parse_cli_args`` types them.
- A local agent gets a minimal environment plus what --secrets-env/--pass-env name (issue 9.11).
- A HAL agent file is never imported on the host: an import-time side effect happens only where
  the agent runs, and nothing it prints reaches the terminal unredacted (issue 9.6).
- The Docker sandbox receives the agent file and what it declares, not its folder: an agent at a
  repository's root finds no benchmark, hidden test, results or secrets file (issue 9.2).
- ``requirements.txt`` naming a local package is installed once per host and importable in the
  sandbox (issue 10.7).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from pytest_cloudeval.agents.args import parse_agent_args
from pytest_cloudeval.agents.loader import load_agent
from pytest_cloudeval.errors import AgentSpecError
from tests.usaco_factory import problem
from tests.usaco_factory import write_benchmark as _write_benchmark

SECRET = "sk-isolation-Secret-Value-98765"


def write_benchmark(root: Path) -> Path:
    """Three problems with a generous time limit: these tests are about agents, not speed."""
    problems = {pid: problem(pid, level=pid.split("_")[1], runtime_limit=15)
                for pid in ("1001_bronze_add", "1002_silver_add", "1003_gold_add")}
    return _write_benchmark(root, problems)


def results_of(root: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in root.glob("results/*/*/*/result.json")}


def test_agent_args_typed_as_hal() -> None:
    got = parse_agent_args(["max_steps=10", "temperature=0.5", "use-cache=true", "tools=a,b"])
    assert got == {"max_steps": 10, "temperature": 0.5, "use_cache": True, "tools": ["a", "b"]}
    more = parse_agent_args(["model=gpt-4o", "n=none", "flag=False", "limit=-3", "big=1e3", "quoted='0.5'"])
    assert more == {"model": "gpt-4o", "n": None, "flag": False, "limit": -3, "big": 1000.0, "quoted": "'0.5'"}


def test_local_agent_gets_a_minimal_environment(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "never-passed-aws-key-123")
    monkeypatch.setenv("PASSED_ON", "passed-value-456")
    pytester.makepyfile(envagent='''
import os
def run(input, **kwargs):
    (tid,) = input
    ok = "AWS_SECRET_ACCESS_KEY" not in os.environ and os.environ.get("PASSED_ON") == "passed-value-456"
    ok = ok and os.environ.get("PATH") and os.environ.get("HOME")
    return {tid: "a, b = map(int, input().split())\\nprint(a + b)\\n" if ok else "print(0)"}
''')
    write_benchmark(pytester.path / "bench")
    res = pytester.runpytest("bench", "--agent", "envagent.py:run", "--pass-env", "PASSED_ON", "-k", "bronze")
    res.assert_outcomes(passed=1)


IMPORT_TIME_AGENT = '''
import os, pathlib
pathlib.Path(os.environ.get("MARK_DIR", "/nonexistent-mark"), "imported").touch() if os.environ.get("MARK_DIR") \\
    else None
pathlib.Path("/tmp/cloudeval-imported-{token}").touch()
print("import-time", os.environ.get("MY_API_KEY"))

def run(input, **kwargs):
    (tid,) = input
    print("run-time", os.environ.get("MY_API_KEY"))
    return {{tid: "a, b = map(int, input().split())\\nprint(a + b)\\n"}}
'''


def test_spec_resolved_without_importing(tmp_path: Path) -> None:
    token = tmp_path.name + "x"
    agent = tmp_path / "agent.py"
    agent.write_text(IMPORT_TIME_AGENT.format(token=token))
    loaded = load_agent("agent.py:run", tmp_path)
    assert type(loaded).__name__ == "HalFunctionAgent"
    assert not Path(f"/tmp/cloudeval-imported-{token}").exists(), "the agent file was executed on the host"
    with pytest.raises(AgentSpecError, match="defines no 'missing'"):
        load_agent("agent.py:missing", tmp_path)
    (tmp_path / "kw.py").write_text("def run(*, task):\n    return {}\n")
    with pytest.raises(AgentSpecError, match="first argument"):
        load_agent("kw.py:run", tmp_path)
    (tmp_path / "broken.py").write_text("def run(:\n")
    with pytest.raises(AgentSpecError, match="syntax error"):
        load_agent("broken.py:run", tmp_path)


def test_in_process_agent_output_is_redacted_with_s(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(inproc='''
import os
from pytest_cloudeval import sandbox_agent
print("import-time key", os.environ.get("MY_API_KEY"))

@sandbox_agent
def solve(task, sandbox, **kwargs):
    key = sandbox.run("printenv MY_API_KEY").stdout.strip()
    print("in-process key", key)
    import threading
    helper = threading.Thread(target=print, args=("helper-thread key", key))
    helper.start()
    helper.join()
    return "a, b = map(int, input().split())\\nprint(a + b)\\n"
''')
    write_benchmark(pytester.path / "bench")
    (pytester.path / "s.env").write_text(f"MY_API_KEY={SECRET}\n")
    res = pytester.runpytest_subprocess("bench", "--agent", "inproc.py:solve", "--secrets-env", "s.env", "-s",
                                        "-k", "bronze")
    res.assert_outcomes(passed=1)
    assert SECRET not in res.stdout.str() + res.stderr.str()
    log = next(pytester.path.glob("results/*/bench/1001_bronze_add/agent.log")).read_text()
    assert "in-process key ***REDACTED***" in log and "helper-thread key ***REDACTED***" in log
    assert SECRET not in log


@pytest.mark.docker
@pytest.mark.slow
def test_docker_agent_is_not_imported_on_host_and_prints_are_redacted(pytester: pytest.Pytester) -> None:
    from tests.docker_support import require_docker

    require_docker()
    token = pytester.path.name + "d"
    (pytester.path / "agent.py").write_text(IMPORT_TIME_AGENT.format(token=token))
    write_benchmark(pytester.path / "bench")
    (pytester.path / "s.env").write_text(f"MY_API_KEY={SECRET}\n")
    res = pytester.runpytest_subprocess("bench", "--agent", "agent.py:run", "--sandbox=docker", "--secrets-env",
                                        "s.env", "-s", "-n", "2", "-k", "bronze or silver")
    res.assert_outcomes(passed=2)
    assert not Path(f"/tmp/cloudeval-imported-{token}").exists(), "the agent was imported on the host"
    assert SECRET not in res.stdout.str() + res.stderr.str()
    log = next(pytester.path.glob("results/*/bench/1001_bronze_add/agent.log")).read_text()
    assert "import-time ***REDACTED***" in log and "run-time ***REDACTED***" in log and SECRET not in log


SNOOPING_AGENT = '''
import os
cloudeval_files = ["helpers.py"]

def run(input, **kwargs):
    (tid,) = input
    import helpers
    found = []
    for folder, dirs, files in os.walk("/"):
        if folder.startswith(("/proc", "/sys", "/usr", "/dev")):
            dirs[:] = []
            continue
        for name in files + dirs:
            if name in ("benchmark.toml", "dataset.json", "secrets.env", "result.json", "run.json") \\
                    or name.endswith((".out", ".in")):
                found.append(os.path.join(folder, name))
    if found:
        raise RuntimeError("found: " + ", ".join(found[:5]))
    return {tid: helpers.SOURCE}
'''


@pytest.mark.docker
@pytest.mark.slow
def test_docker_gets_only_the_agent_file_and_its_declared_files(pytester: pytest.Pytester) -> None:
    from tests.docker_support import require_docker

    require_docker()
    # The README's layout: my_agent.py at the repository root, beside the benchmark and secrets.
    (pytester.path / "my_agent.py").write_text(SNOOPING_AGENT)
    (pytester.path / "helpers.py").write_text('SOURCE = "a, b = map(int, input().split())\\nprint(a + b)\\n"\n')
    write_benchmark(pytester.path / "bench")
    (pytester.path / "secrets.env").write_text(f"MY_API_KEY={SECRET}\n")
    first = pytester.runpytest_subprocess("bench", "--agent", "my_agent.py:run", "--sandbox=docker",
                                          "--secrets-env", "secrets.env", "-k", "bronze")
    first.assert_outcomes(passed=1)  # results/ exists now: a second run must not ship it either
    again = pytester.runpytest_subprocess("bench", "--agent", "my_agent.py:run", "--sandbox=docker",
                                          "--secrets-env", "secrets.env", "-k", "silver")
    again.assert_outcomes(passed=1)


def test_declaring_a_benchmark_or_secrets_is_refused(tmp_path: Path) -> None:
    write_benchmark(tmp_path / "bench")
    (tmp_path / "a.py").write_text('cloudeval_files = ["bench"]\ndef run(input):\n    return {}\n')
    with pytest.raises(AgentSpecError, match="benchmark"):
        load_agent("a.py:run", tmp_path)
    (tmp_path / "prod.env").write_text("K=V\n")
    (tmp_path / "b.py").write_text('cloudeval_files = ["prod.env"]\ndef run(input):\n    return {}\n')
    with pytest.raises(AgentSpecError, match="secrets"):
        load_agent("b.py:run", tmp_path)
    (tmp_path / "c.py").write_text('cloudeval_files = ["../x"]\ndef run(input):\n    return {}\n')
    with pytest.raises(AgentSpecError, match="not inside"):
        load_agent("c.py:run", tmp_path)


def make_wheel(folder: Path) -> Path:
    """A tiny pure-Python wheel, built by hand (no build backend, no index)."""
    folder.mkdir()
    wheel = folder / "tinyadd-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("tinyadd/__init__.py", 'SOURCE = "a, b = map(int, input().split())\\nprint(a + b)\\n"\n')
        zf.writestr("tinyadd-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: tinyadd\nVersion: 1.0\n")
        zf.writestr("tinyadd-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                                   "Tag: py3-none-any\n")
        zf.writestr("tinyadd-1.0.dist-info/RECORD", "")
    return wheel


@pytest.mark.parametrize("sandbox", ["local", pytest.param("docker", marks=[pytest.mark.docker, pytest.mark.slow])])
def test_requirements_installed_once_and_importable(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                                   sandbox: str) -> None:
    if sandbox == "docker":
        from tests.docker_support import require_docker

        require_docker()
    make_wheel(pytester.path / "wheels")
    agent_dir = pytester.path / "agent"
    agent_dir.mkdir()
    (agent_dir / "requirements.txt").write_text(f"--no-index\n--find-links {pytester.path / 'wheels'}\ntinyadd\n")
    (agent_dir / "main.py").write_text("import tinyadd\n\ndef run(input, **kwargs):\n"
                                       "    return {tid: tinyadd.SOURCE for tid in input}\n")
    cache = pytester.path / "cache"
    monkeypatch.setenv("CLOUDEVAL_CACHE_DIR", str(cache))
    write_benchmark(pytester.path / "bench")
    res = pytester.runpytest_subprocess("bench", "--agent", "agent/main.py:run", f"--sandbox={sandbox}", "-n", "2")
    res.assert_outcomes(passed=3)
    installs = list((cache / "agent-deps").glob("*/.complete"))
    assert len(installs) == 1 and (installs[0].parent / "tinyadd" / "__init__.py").is_file()
    stamp = installs[0].stat().st_mtime_ns
    pytester.runpytest_subprocess("bench", "--agent", "agent/main.py:run", f"--sandbox={sandbox}",
                                  "-k", "bronze").assert_outcomes(passed=1)
    assert installs[0].stat().st_mtime_ns == stamp, "installed again although cached"


def test_hal_download_layout_with_the_readme_lines(pytester: pytest.Pytester) -> None:
    # HAL's download: data/datasets/usaco_subset307_dict.json + data/datasets/usaco_v3/tests/<id>/.
    datasets = pytester.path / "data" / "datasets"
    datasets.mkdir(parents=True)
    pid = "1001_bronze_add"
    (datasets / "usaco_subset307_dict.json").write_text(json.dumps({pid: problem(pid, runtime_limit=15)}))
    folder = datasets / "usaco_v3" / "tests" / pid
    folder.mkdir(parents=True)
    for index, (given, expected) in enumerate([("1 2\n", "3\n"), ("40 2\n", "42\n")], start=1):
        (folder / f"{index}.in").write_text(given)
        (folder / f"{index}.out").write_text(expected)
    # The README's three lines, verbatim.
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    lines = ['format = "usaco"', 'dataset = "usaco_subset307_dict.json"', 'tests_dir = "usaco_v3/tests"']
    assert all(f"`{line}`" in readme for line in lines)
    (datasets / "benchmark.toml").write_text("\n".join(lines) + "\n")
    res = pytester.runpytest("data/datasets", "--agent", "oracle")
    res.assert_outcomes(passed=1)
