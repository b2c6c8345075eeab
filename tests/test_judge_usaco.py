"""Tests of the USACO judge: each verdict, test discovery, isolation and the CLI round trip."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pytest_cloudeval.judge import usaco
from pytest_cloudeval.judge.usaco import JudgeSetupError, discover_tests, judge_submission

ADD = "a, b = map(int, input().split())\nprint(a + b)\n"


def make_tests(root: Path, cases: list[tuple[str, str]], problem: str = "p") -> list[tuple[Path, Path]]:
    folder = root / "tests" / problem
    folder.mkdir(parents=True)
    for index, (given, expected) in enumerate(cases, start=1):
        (folder / f"{index}.in").write_text(given)
        (folder / f"{index}.out").write_text(expected)
    return discover_tests(root / "tests", problem)


def judge(tmp_path: Path, source: str, cases: list[tuple[str, str]], **kwargs: object) -> dict:
    # These tests drive the process machinery itself (signals, forks, exit codes): plain-script
    # semantics. HAL's semantics are covered case by case in tests/test_judge_hal_parity.py.
    options: dict = {"time_limit_s": 0.5, "memory_mb": 256, "workdir": tmp_path / "work", "semantics": "script"}
    options.update(kwargs)
    tests = make_tests(tmp_path, cases)
    report = judge_submission(textwrap.dedent(source), tests, **options)
    json.dumps(report)  # the report must cross process boundaries as JSON
    return report


def test_accepted(tmp_path: Path) -> None:
    report = judge(tmp_path, ADD, [("1 2\n", "3\n"), ("10 -4\n", "6\n")])
    assert report["verdict"] == "ACCEPTED"
    assert (report["passed"], report["total"], report["score"]) == (2, 2, 1.0)
    assert report["time_limit_s"] == 0.5 and report["memory_mb"] == 256
    first = report["tests"][0]
    assert first["index"] == 1 and first["exit_code"] == 0 and first["verdict"] == "ACCEPTED"
    assert isinstance(first["time_s"], float) and 0 < first["time_s"] < 0.5
    assert (tmp_path / "work" / "submission.py").read_text() == ADD


def test_wrong_answer(tmp_path: Path) -> None:
    report = judge(tmp_path, "print(4)\n", [("1 2\n", "3\n")])
    assert report["verdict"] == "WRONG_ANSWER"
    assert report["score"] == 0.0 and report["tests"][0]["exit_code"] == 0


@pytest.mark.parametrize(
    "source", ["while True:\n    pass\n", "import time\ntime.sleep(30)\n"], ids=["busy", "sleep"]
)
def test_time_limit(tmp_path: Path, source: str) -> None:
    started = time.monotonic()
    report = judge(tmp_path, source, [("1 2\n", "3\n")])
    elapsed = time.monotonic() - started
    assert report["verdict"] == "TIME_LIMIT"
    assert 0.45 <= report["tests"][0]["time_s"] < 1.0
    assert elapsed < 2.0


def test_sigxcpu_is_time_limit(tmp_path: Path) -> None:
    source = "import os, signal\nos.kill(os.getpid(), signal.SIGXCPU)\n"
    assert judge(tmp_path, source, [("\n", "1\n")])["verdict"] == "TIME_LIMIT"


def test_memory_limit(tmp_path: Path) -> None:
    source = "data = bytearray(1 << 30)\nprint(len(data))\n"
    report = judge(tmp_path, source, [("\n", "1073741824\n")], memory_mb=128)
    assert report["verdict"] == "MEMORY_LIMIT"
    assert "MemoryError" in report["tests"][0]["detail"]
    # The same program fits when the limit allows it: the verdict comes from the limit.
    fits = judge(tmp_path / "big", "data = bytearray(1 << 20)\nprint(len(data))\n", [("\n", "1048576\n")])
    assert fits["verdict"] == "ACCEPTED"


def test_memory_limit_growing_list(tmp_path: Path) -> None:
    source = "x = []\nwhile True:\n    x.append([0] * 100000)\n"
    report = judge(tmp_path, source, [("\n", "1\n")], memory_mb=100, time_limit_s=5)
    assert report["verdict"] == "MEMORY_LIMIT"


def test_sigkill_without_timeout_is_memory_limit(tmp_path: Path) -> None:
    # The kernel's OOM killer sends SIGKILL; the judge did not, as no limit expired.
    source = "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n"
    report = judge(tmp_path, source, [("\n", "1\n")])
    assert report["verdict"] == "MEMORY_LIMIT"
    assert report["tests"][0]["exit_code"] == -9


def test_compile_error_spawns_nothing(tmp_path: Path) -> None:
    report = judge(tmp_path, "def broken(:\n", [("1\n", "1\n"), ("2\n", "2\n")])
    assert report["verdict"] == "COMPILE_ERROR"
    assert [t["verdict"] for t in report["tests"]] == ["COMPILE_ERROR", "COMPILE_ERROR"]
    assert "SyntaxError" in report["tests"][0]["detail"]
    assert report["tests"][0]["exit_code"] is None
    assert not (tmp_path / "work" / "submission.py").exists()


def test_null_byte_is_compile_error(tmp_path: Path) -> None:
    assert judge(tmp_path, "print(1)\x00\n", [("\n", "1\n")])["verdict"] == "COMPILE_ERROR"


def test_runtime_error(tmp_path: Path) -> None:
    report = judge(tmp_path, "print(1 // 0)\n", [("\n", "1\n")])
    assert report["verdict"] == "RUNTIME_ERROR"
    assert report["tests"][0]["detail"] == "ZeroDivisionError: integer division or modulo by zero"
    assert report["tests"][0]["exit_code"] == 1
    silent = judge(tmp_path / "silent", "import sys\nprint(1)\nsys.exit(3)\n", [("\n", "1\n")])
    assert silent["verdict"] == "RUNTIME_ERROR"
    assert silent["tests"][0]["detail"] == "exit code 3"


def test_partial_score_reports_first_failure(tmp_path: Path) -> None:
    source = """
        n = int(input())
        if n == 5:
            raise RuntimeError("boom")
        print(n * 2 + (n == 4))
    """
    cases = [(f"{n}\n", f"{n * 2}\n") for n in range(1, 6)]
    report = judge(tmp_path, source, cases)
    assert [t["verdict"] for t in report["tests"]] == [
        "ACCEPTED",
        "ACCEPTED",
        "ACCEPTED",
        "WRONG_ANSWER",
        "RUNTIME_ERROR",
    ]
    assert (report["passed"], report["total"], report["score"]) == (3, 5, 0.6)
    assert report["verdict"] == "WRONG_ANSWER"
    assert [t["index"] for t in report["tests"]] == [1, 2, 3, 4, 5]


def test_compare_tolerates_surrounding_whitespace_only(tmp_path: Path) -> None:
    cases = [("\n", "1 2\n3\n\n")]
    loose = judge(tmp_path, "print('  1 2\\n3   ')\nprint()\n", cases)
    assert loose["verdict"] == "ACCEPTED"
    inner = judge(tmp_path / "inner", "print('1  2\\n3')\n", cases)
    assert inner["verdict"] == "WRONG_ANSWER"


def test_stdin_and_cwd(tmp_path: Path) -> None:
    source = "import os, sys\nprint(sys.stdin.read().upper().strip(), os.path.exists('submission.py'))\n"
    assert judge(tmp_path, source, [("hello\nworld\n", "HELLO\nWORLD True\n")])["verdict"] == "ACCEPTED"


def test_fallback_names(tmp_path: Path) -> None:
    folder = tmp_path / "tests" / "q"
    folder.mkdir(parents=True)
    for index in (1, 2):
        (folder / f"I.{index}").write_text(f"{index} {index}\n")
        (folder / f"O.{index}").write_text(f"{2 * index}\n")
    tests = discover_tests(tmp_path / "tests", "q", num_tests=2)
    assert [(i.name, o.name) for i, o in tests] == [("I.1", "O.1"), ("I.2", "O.2")]
    report = judge_submission(ADD, tests, time_limit_s=1, memory_mb=256, workdir=tmp_path / "w")
    assert report["verdict"] == "ACCEPTED" and report["total"] == 2


def test_numeric_ordering(tmp_path: Path) -> None:
    folder = tmp_path / "tests" / "p"
    folder.mkdir(parents=True)
    for index in range(1, 12):
        (folder / f"{index}.in").write_text("")
        (folder / f"{index}.out").write_text("")
    names = [i.name for i, _ in discover_tests(tmp_path / "tests", "p")]
    assert names == [f"{index}.in" for index in range(1, 12)]


def test_setup_errors(tmp_path: Path) -> None:
    with pytest.raises(JudgeSetupError, match="does not exist") as missing:
        discover_tests(tmp_path, "absent")
    assert str(tmp_path / "absent") in str(missing.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(JudgeSetupError, match="no tests"):
        discover_tests(tmp_path, "empty")
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "1.in").write_text("1\n")
    (folder / "1.out").write_text("1\n")
    (folder / "2.in").write_text("2\n")
    with pytest.raises(JudgeSetupError, match="2.out") as orphan:
        discover_tests(tmp_path, "p")
    assert str(folder / "2.in") in str(orphan.value)
    (folder / "2.out").write_text("2\n")
    assert len(discover_tests(tmp_path, "p", num_tests=2)) == 2
    with pytest.raises(JudgeSetupError, match="expected 3 tests, found 2"):
        discover_tests(tmp_path, "p", num_tests=3)


def test_judge_setup_errors(tmp_path: Path) -> None:
    with pytest.raises(JudgeSetupError, match="no tests"):
        judge_submission(ADD, [], time_limit_s=1, memory_mb=256, workdir=tmp_path / "w")
    tests = make_tests(tmp_path, [("1 2\n", "3\n")])
    with pytest.raises(JudgeSetupError, match="/nonexistent/python3"):
        judge_submission(
            ADD, tests, time_limit_s=1, memory_mb=256, workdir=tmp_path / "w", python="/nonexistent/python3"
        )
    missing = [(tests[0][0], tmp_path / "gone.out")]
    with pytest.raises(JudgeSetupError, match="gone.out"):
        judge_submission(ADD, missing, time_limit_s=1, memory_mb=256, workdir=tmp_path / "w")


def test_output_flood_is_capped(tmp_path: Path) -> None:
    source = "while True:\n    print('x' * 10000)\n"
    started = time.monotonic()
    report = judge(tmp_path, source, [("\n", "x\n")], time_limit_s=5, max_output_bytes=100_000)
    assert report["verdict"] == "WRONG_ANSWER"
    assert report["tests"][0]["detail"] == "output exceeds 100000 bytes"
    assert time.monotonic() - started < 2.0  # stopped at the cap, not at the time limit


def test_stderr_flood_does_not_deadlock(tmp_path: Path) -> None:
    source = "import sys\nsys.stderr.write('e' * 5_000_000)\nprint(7)\n"
    report = judge(tmp_path, source, [("\n", "7\n")], time_limit_s=5)
    assert report["verdict"] == "ACCEPTED"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"  # a killed orphan may linger as a zombie until init reaps it


@pytest.mark.parametrize("pidfd", [True, False], ids=["pidfd", "polling"])
@pytest.mark.parametrize("ends", ["exits", "times_out"])
def test_forked_child_is_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ends: str, pidfd: bool
) -> None:
    if not pidfd:  # the path taken on kernels without pidfd_open
        monkeypatch.setattr(usaco, "_open_pidfd", lambda pid: None)
    tail = "print(1)\n" if ends == "exits" else "time.sleep(30)\n"
    source = (
        "import os, time\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    time.sleep(60)\n"
        "    os._exit(0)\n"
        "open('child.pid', 'w').write(str(pid))\n" + tail
    )
    started = time.monotonic()
    report = judge(tmp_path, source, [("\n", "1\n")])
    assert report["verdict"] == ("ACCEPTED" if ends == "exits" else "TIME_LIMIT")
    # The child holds stdout open: the judge must not wait for it to finish.
    assert time.monotonic() - started < 2.0
    child = int((tmp_path / "work" / "child.pid").read_text())
    deadline = time.monotonic() + 2
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(child)


def test_environment_does_not_leak(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDEVAL_TEST_SECRET", "hunter2")
    source = "import os\nprint(os.environ.get('CLOUDEVAL_TEST_SECRET'), os.environ['HOME'])\n"
    work = tmp_path / "work"
    report = judge(tmp_path, source, [("\n", f"None {work}\n")])
    assert report["verdict"] == "ACCEPTED"


def _write_spec(tmp_path: Path, source: str, **extra: object) -> Path:
    tests = make_tests(tmp_path, [("1 2\n", "3\n"), ("2 2\n", "4\n")])
    (tmp_path / "answer.py").write_text(source)
    spec = {
        "source_path": str(tmp_path / "answer.py"),
        "tests": [[str(i), str(o)] for i, o in tests],
        "time_limit_s": 1,
        "memory_mb": 256,
        "workdir": str(tmp_path / "work"),
        **extra,
    }
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    return path


def test_cli_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = _write_spec(tmp_path, "print(3)\n", python=sys.executable)
    assert usaco.main([str(spec)]) == 0  # exit 0 although the verdict is not ACCEPTED
    report = json.loads(capsys.readouterr().out)
    assert report["verdict"] == "WRONG_ANSWER"
    assert [t["verdict"] for t in report["tests"]] == ["ACCEPTED", "WRONG_ANSWER"]
    assert report["score"] == 0.5


def test_cli_bad_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"source_path": "x.py", "tests": []}))
    assert usaco.main([str(spec)]) == 2
    assert "time_limit_s" in capsys.readouterr().err
    assert usaco.main([]) == 2
    missing = _write_spec(tmp_path / "m", ADD)
    data = json.loads(missing.read_text())
    data["tests"][0][1] = str(tmp_path / "nowhere.out")
    missing.write_text(json.dumps(data))
    assert usaco.main([str(missing)]) == 2
    assert "nowhere.out" in capsys.readouterr().err


def test_cli_runs_as_a_lone_script(tmp_path: Path) -> None:
    # The Docker sandbox copies only this file: it must not need the package.
    script = tmp_path / "alone" / "usaco.py"
    script.parent.mkdir()
    shutil.copy(usaco.__file__, script)
    spec = _write_spec(tmp_path, ADD)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    done = subprocess.run(
        [sys.executable, "-I", str(script), str(spec)],
        capture_output=True,
        text=True,
        cwd=tmp_path / "alone",
        env=env,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["verdict"], report["passed"], report["total"]) == ("ACCEPTED", 2, 2)
