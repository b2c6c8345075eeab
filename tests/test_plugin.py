"""Black-box runs of the plugin with pytester: collection, selection, verdicts, results, exit codes."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.usaco_factory import write_benchmark

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

AGENTS = '''
import json, os, sys, time
SOURCE = "a, b = map(int, input().split())\\nprint(a + b)\\n"

def good(input, **kwargs):
    (tid,) = input
    assert "solution_python3" not in input[tid] and "solution" not in input[tid]
    return {tid: {"answer": SOURCE, "metrics": {"tokens_in": 100, "tokens_out": 20, "cost_usd": 0.5}}}

def wrong(input, **kwargs):
    (tid,) = input
    return {tid: "print(0)"}

def raises(input, **kwargs):
    raise ValueError("agent blew up")

def bad_type(input, **kwargs):
    return ["not", "a", "dict"]

def hangs(input, **kwargs):
    time.sleep(600)

def dies(input, **kwargs):
    os._exit(3)

def floods(input, **kwargs):
    (tid,) = input
    chunk = "x" * 65536 + "\\n"
    for _ in range(800):          # ~50 MB
        sys.stdout.write(chunk)
    return {tid: SOURCE}

def leaks(input, **kwargs):
    (tid,) = input
    secret = os.environ["MY_API_KEY"]
    print("the key is", secret)
    print("stderr key", secret, file=sys.stderr)
    return {tid: {"answer": "# " + secret + "\\n" + SOURCE, "metrics": {"note": secret}}}

def kwargs_echo(input, **kwargs):
    (tid,) = input
    ok = kwargs == {"model": "m1", "temperature": 0.5}  # typed as HAL types -A values
    return {tid: SOURCE if ok else "print(0)"}

def counting(input, **kwargs):
    (tid,) = input
    with open(os.environ["COUNT_FILE"], "a") as f:
        f.write(tid + "\\n")
    return {tid: SOURCE if "bronze" in tid else "print(0)"}
'''


@pytest.fixture
def bench(pytester: pytest.Pytester) -> Path:
    pytester.makepyfile(agents=AGENTS)
    return write_benchmark(pytester.path / "bench")


def results_of(root: Path) -> dict[str, dict]:
    out = {}
    for path in sorted(root.glob("results/*/*/*/result.json")):
        data = json.loads(path.read_text())
        out[data["key"]] = data
    return out


def test_collect_only_lists_tasks_in_order(pytester: pytest.Pytester, bench: Path) -> None:
    result = pytester.runpytest("bench", "--collect-only", "-q")
    result.stdout.fnmatch_lines([
        "bench/benchmark.toml::1001_bronze_add",
        "bench/benchmark.toml::1002_silver_add",
        "bench/benchmark.toml::1003_gold_add",
    ])
    assert result.ret == 0
    assert not (pytester.path / "results").exists(), "collection must not write results"


def test_oracle_passes_noop_fails(pytester: pytest.Pytester, bench: Path) -> None:
    ok = pytester.runpytest("bench", "--agent", "oracle")
    ok.assert_outcomes(passed=3)
    assert ok.ret == 0
    bad = pytester.runpytest("bench", "--agent", "noop")
    bad.assert_outcomes(failed=3)
    assert bad.ret == 1
    bad.stdout.fnmatch_lines(["*WRONG_ANSWER*"])


def test_k_and_m_select_tasks(pytester: pytest.Pytester, bench: Path) -> None:
    by_k = pytester.runpytest("bench", "--agent", "oracle", "-k", "1002")
    by_k.assert_outcomes(passed=1)
    by_m = pytester.runpytest("bench", "--agent", "oracle", "-m", "gold or bronze", "--strict-markers")
    by_m.assert_outcomes(passed=2)
    assert set(results_of(pytester.path)) >= {"bench/1001_bronze_add", "bench/1003_gold_add"}


def test_last_failed_reruns_only_failures(pytester: pytest.Pytester, bench: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    count = pytester.path / "count.txt"
    monkeypatch.setenv("COUNT_FILE", str(count))
    first = pytester.runpytest("bench", "--agent", "agents.py:counting", "--pass-env", "COUNT_FILE")
    first.assert_outcomes(passed=1, failed=2)
    count.write_text("")
    again = pytester.runpytest("bench", "--agent", "agents.py:counting", "--pass-env", "COUNT_FILE", "--lf")
    again.assert_outcomes(failed=2)  # the passed task is filtered out at collection
    assert sorted(count.read_text().split()) == ["1002_silver_add", "1003_gold_add"]


def test_result_files_and_run_json(pytester: pytest.Pytester, bench: Path) -> None:
    res = pytester.runpytest("bench", "--agent", "agents.py:good", "--run-id", "myrun")
    res.assert_outcomes(passed=3)
    run_dir = pytester.path / "results" / "myrun"
    task_dir = run_dir / "bench" / "1001_bronze_add"
    assert {p.name for p in task_dir.iterdir()} >= {"result.json", "answer.txt", "agent.log", "judge.json"}
    data = json.loads((task_dir / "result.json").read_text())
    for field in ("task_id", "benchmark", "agent", "outcome", "verdict", "score", "duration_s", "started_at",
                  "finished_at", "worker", "attempt", "tokens_in", "tokens_out", "cost_usd", "error"):
        assert field in data, field
    assert data["outcome"] == "passed" and data["verdict"] == "ACCEPTED" and data["score"] == 1.0
    assert data["tokens_in"] == 100 and data["tokens_out"] == 20 and data["cost_usd"] == 0.5
    judge = json.loads((task_dir / "judge.json").read_text())
    assert [t["verdict"] for t in judge["tests"]] == ["ACCEPTED", "ACCEPTED"]
    run = json.loads((run_dir / "run.json").read_text())
    assert run["summary"]["passed"] == 3 and run["summary"]["pass_rate"] == 1.0
    assert run["summary"]["tokens_in"] == 300 and run["summary"]["cost_usd"] == 1.5
    assert run["config"]["agent"] == "agents.py:good"
    res.stdout.fnmatch_lines(["*cloudeval summary*", "bench*agents.py:good*3*3*0*0*0*100.0%*",
                              "*cost $1.5000*", f"results: {run_dir}"])


def test_junit_properties(pytester: pytest.Pytester, bench: Path) -> None:
    pytester.runpytest("bench", "--agent", "agents.py:good", "-k", "bronze", "--junitxml=out.xml")
    root = ET.parse(pytester.path / "out.xml").getroot()
    case = root.find(".//testcase")
    assert case is not None
    props = {str(p.get("name")): str(p.get("value")) for p in case.iter("property")}
    assert props["score"] == "1.0" and props["verdict"] == "ACCEPTED"
    assert props["tokens_in"] == "100" and props["tokens_out"] == "20" and props["cost_usd"] == "0.5"
    assert float(props["duration_s"]) > 0 and props["worker"].startswith("main@")


def test_xdist_two_workers(pytester: pytest.Pytester, bench: Path) -> None:
    res = pytester.runpytest_subprocess("bench", "--agent", "oracle", "-n", "2", "--junitxml=x.xml")
    res.assert_outcomes(passed=3)
    workers = {r["worker"].split("@")[0] for r in results_of(pytester.path).values()}
    assert workers <= {"gw0", "gw1"} and workers
    res.stdout.fnmatch_lines(["*cloudeval summary*", "all: 3 tasks, 3 passed*"])
    props = [p.get("name") for p in ET.parse(pytester.path / "x.xml").getroot().iter("property")]
    assert props.count("score") == 3


def test_repeat_keeps_attempts_apart(pytester: pytest.Pytester, bench: Path) -> None:
    res = pytester.runpytest("bench", "--agent", "oracle", "--repeat", "2", "-k", "bronze", "--junitxml=r.xml")
    res.assert_outcomes(passed=2)
    keys = set(results_of(pytester.path))
    assert keys == {"bench/1001_bronze_add@r1", "bench/1001_bronze_add@r2"}
    names = [c.get("name") for c in ET.parse(pytester.path / "r.xml").getroot().iter("testcase")]
    assert names == ["1001_bronze_add[r1]", "1001_bronze_add[r2]"]


@pytest.mark.parametrize("agent,verdict", [
    ("raises", "AGENT_ERROR"), ("bad_type", "BAD_ANSWER"), ("dies", "AGENT_ERROR"), ("wrong", "WRONG_ANSWER"),
])
def test_agent_faults_fail_their_task_only(pytester: pytest.Pytester, bench: Path, agent: str, verdict: str) -> None:
    res = pytester.runpytest("bench", "--agent", f"agents.py:{agent}", "-k", "bronze")
    res.assert_outcomes(failed=1)
    assert res.ret == 1
    (data,) = results_of(pytester.path).values()
    assert data["outcome"] == "failed" and data["verdict"] == verdict
    assert "INTERNALERROR" not in res.stdout.str()


def test_agent_error_message_shows_traceback(pytester: pytest.Pytester, bench: Path) -> None:
    res = pytester.runpytest("bench", "--agent", "agents.py:raises", "-k", "bronze")
    res.stdout.fnmatch_lines(["*AGENT_ERROR*", "*ValueError: agent blew up*"])


def test_hung_agent_times_out(pytester: pytest.Pytester, bench: Path) -> None:
    res = pytester.runpytest("bench", "--agent", "agents.py:hangs", "--task-timeout", "1", "-k", "bronze or silver")
    res.assert_outcomes(failed=2)
    for data in results_of(pytester.path).values():
        assert data["verdict"] == "AGENT_TIMEOUT" and data["duration_s"] < 10


def test_flooding_agent_log_is_capped(pytester: pytest.Pytester, bench: Path) -> None:
    res = pytester.runpytest("bench", "--agent", "agents.py:floods", "-k", "bronze", "--output-cap", "200000")
    res.assert_outcomes(passed=1)
    log = next((pytester.path / "results").glob("*/bench/1001_bronze_add/agent.log"))
    text = log.read_text()
    assert log.stat().st_size < 400_000 and "bytes cut" in text


def test_agent_kwargs(pytester: pytest.Pytester, bench: Path) -> None:
    res = pytester.runpytest("bench", "--agent", "agents.py:kwargs_echo", "-A", "model=m1", "-A", "temperature=0.5",
                             "-k", "bronze")
    res.assert_outcomes(passed=1)


def test_secrets_reach_agent_and_nothing_else(pytester: pytest.Pytester, bench: Path) -> None:
    secret = "sk-test-Very-Secret-Value-12345"
    (pytester.path / "secrets.env").write_text(f"# keys\nMY_API_KEY={secret}\n")
    res = pytester.runpytest("bench", "--agent", "agents.py:leaks", "--secrets-env", "secrets.env",
                             "--junitxml=s.xml", "-k", "bronze", "-rA")
    res.assert_outcomes(passed=1)
    leaked = [str(p) for p in pytester.path.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()
              and p.name != "secrets.env"]
    assert leaked == []
    assert secret not in res.stdout.str() + res.stderr.str()
    log = next((pytester.path / "results").glob("*/bench/*/agent.log")).read_text()
    assert "the key is ***REDACTED***" in log


def test_resume_skips_finished_tasks(pytester: pytest.Pytester, bench: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    count = pytester.path / "count.txt"
    monkeypatch.setenv("COUNT_FILE", str(count))
    pytester.runpytest("bench", "--agent", "agents.py:counting", "--pass-env", "COUNT_FILE", "--run-id", "r1").assert_outcomes(passed=1, failed=2)
    # Turn one finished task into an errored one: a resumed run must run it again, and only it.
    gold = pytester.path / "results/r1/bench/1003_gold_add/result.json"
    data = json.loads(gold.read_text())
    data["outcome"], data["verdict"] = "error", "ERROR"
    gold.write_text(json.dumps(data))
    silver_before = (pytester.path / "results/r1/bench/1002_silver_add/result.json").read_bytes()
    count.write_text("")
    res = pytester.runpytest("bench", "--agent", "agents.py:counting", "--pass-env", "COUNT_FILE", "--resume", "r1", "--junitxml=j.xml")
    res.assert_outcomes(passed=1, failed=2)
    assert count.read_text().split() == ["1003_gold_add"]
    assert (pytester.path / "results/r1/bench/1002_silver_add/result.json").read_bytes() == silver_before
    resumed = [p.get("value") for p in ET.parse(pytester.path / "j.xml").getroot().iter("property")
               if p.get("name") == "resumed"]
    assert resumed == ["true", "true"]
    run = json.loads((pytester.path / "results/r1/run.json").read_text())
    assert run["summary"]["resumed"] == 2


def test_resume_unknown_run_is_usage_error(pytester: pytest.Pytester, bench: Path) -> None:
    res = pytester.runpytest("bench", "--agent", "oracle", "--resume", "nope")
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    res.stderr.fnmatch_lines(["*--resume nope: no such run*"])


@pytest.mark.parametrize("args,message", [
    (["--agent", "nonsense"], "*unknown agent*"),
    (["--agent", "missing.py:run"], "*missing.py does not exist*"),
    (["--agent", "agents.py:nothere"], "*defines no 'nothere'*"),
    (["--agent", "oracle", "--task-timeout", "-5"], "*--task-timeout*must be a number greater than 0*"),
    (["--agent", "oracle", "--repeat", "0"], "*--repeat*at least 1*"),
    (["--agent", "oracle", "--run-id", "../up"], "*--run-id*run id*"),
    ([], "*no agent*--agent*"),
])
def test_bad_options_are_usage_errors(pytester: pytest.Pytester, bench: Path, args: list[str], message: str) -> None:
    res = pytester.runpytest("bench", *args)
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    res.stderr.fnmatch_lines([message])
    assert "Traceback" not in res.stderr.str()


def test_settings_precedence_cli_env_ini(pytester: pytest.Pytester, bench: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makeini("[pytest]\ncloudeval_agent = noop\ncloudeval_results_dir = from_ini\n")
    pytester.runpytest("bench", "-k", "bronze").assert_outcomes(failed=1)  # ini agent: noop
    assert list((pytester.path / "from_ini").glob("*/bench/1001_bronze_add/result.json"))
    monkeypatch.setenv("CLOUDEVAL_AGENT", "oracle")
    pytester.runpytest("bench", "-k", "bronze").assert_outcomes(passed=1)  # env beats ini
    pytester.runpytest("bench", "-k", "bronze", "--agent", "noop").assert_outcomes(failed=1)  # CLI beats env
    monkeypatch.setenv("CLOUDEVAL_REPEAT", "lots")
    res = pytester.runpytest("bench", "-k", "bronze")
    res.stderr.fnmatch_lines(["*environment variable CLOUDEVAL_REPEAT: invalid value 'lots'*"])


def test_sandbox_agent_acts_in_the_sandbox(pytester: pytest.Pytester, bench: Path) -> None:
    pytester.makepyfile(boxagent='''
from pytest_cloudeval import sandbox_agent

@sandbox_agent
def solve(task, sandbox, **kwargs):
    sandbox.write_file("sol.py", "a, b = map(int, input().split())\\nprint(a + b)\\n")
    out = sandbox.run(["python3", "sol.py"], stdin="2 3\\n", timeout=10)
    assert out.stdout.strip() == "5", out
    return sandbox.read_file("sol.py")
''')
    res = pytester.runpytest("bench", "--agent", "boxagent.py:solve", "-k", "bronze")
    res.assert_outcomes(passed=1)


def test_limit_multiplier_is_recorded(pytester: pytest.Pytester, bench: Path) -> None:
    pytester.runpytest("bench", "--agent", "oracle", "-k", "bronze", "--limit-multiplier", "1.5")
    (data,) = results_of(pytester.path).values()
    assert data["limit_multiplier"] == 1.5 and data["metrics"]["time_limit_s"] == 3.0


def test_local_sandbox_folder_is_removed(pytester: pytest.Pytester, bench: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    pytester.runpytest("bench", "--agent", "oracle").assert_outcomes(passed=3)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("cloudeval-")] == []


def test_plain_test_suites_are_untouched(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_ok():\n    assert True\n")
    res = pytester.runpytest()
    res.assert_outcomes(passed=1)
    assert "cloudeval summary" not in res.stdout.str()
    assert not (pytester.path / "results").exists()


def test_a_crashed_worker_is_an_error_after_its_attempts(pytester: pytest.Pytester, bench: Path) -> None:
    """A task that kills its xdist worker is retried, then reported as an error (never a failure),
    and the other tasks finish."""
    pytester.makepyfile(killer='''
import os, signal
from pytest_cloudeval import sandbox_agent

@sandbox_agent
def solve(task, sandbox, **kwargs):
    if "silver" in task["problem_id"]:
        os.kill(os.getpid(), signal.SIGKILL)   # takes the worker process down
    return "a, b = map(int, input().split())\\nprint(a + b)\\n"
''')
    res = pytester.runpytest_subprocess("bench", "--agent", "killer.py:solve", "-n", "2", "--attempts", "2",
                                        "--junitxml=c.xml")
    outcomes = res.parseoutcomes()
    assert (outcomes.get("passed"), outcomes.get("errors"), outcomes.get("rerun")) == (2, 1, 1), outcomes
    assert "failed" not in outcomes and res.ret == 1
    res.stdout.fnmatch_lines(["*its worker died 2 time(s), --attempts 2*"])
    run = json.loads(next((pytester.path / "results").glob("*/run.json")).read_text())
    assert run["summary"]["errors_by_kind"] == {"worker": 1} and run["summary"]["passed"] == 2
    cases = ET.parse(pytester.path / "c.xml").getroot().findall(".//testcase")
    assert sorted(str(c.get("name")) for c in cases) == ["1001_bronze_add", "1002_silver_add", "1003_gold_add"]
