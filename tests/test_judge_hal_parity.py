"""Judge parity with HAL's USACO judge, and submissions that try to read the hidden answers.

HAL's judge (``usaco_utils.check_correctness``) ``exec``s ``"import sys\\n" + code + suffix`` in a forked
process under ``reliability_guard(memory_limit * 1e6)``: ``exit``/``quit``/``os.system``/``os.kill``/
``os.fork``/``subprocess.Popen`` are None, RLIMIT_AS/DATA/STACK are set, ``sys.stdin``/``sys.stdout``
are the test files while descriptor 0 is ``/dev/null``, and only a run that reaches its last line
is "passed". Each case below is asserted against that behaviour, through the ``usaco`` format's
judge, in the local and the Docker sandbox.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_cloudeval.model import AgentOutput, Limits, Task
from pytest_cloudeval.sandbox.base import Sandbox
from pytest_cloudeval.settings import Settings
from pytest_cloudeval.tasks.usaco import UsacoFormat
from tests.docker_support import require_docker


def make_sandbox(kind: str, tmp_path: Path) -> Sandbox:
    """A local or Docker (runner image, user ``agent``) sandbox, as the runner makes them."""
    import secrets

    from pytest_cloudeval.sandbox.base import SandboxOptions, SandboxSpec

    task = Task(benchmark="parity", task_id="t", format="usaco", source=tmp_path, root=tmp_path,
                instruction="", agent_input={})
    run_id = f"parity-{secrets.token_hex(4)}"
    options = SandboxOptions(run_id=run_id, work_root=str(tmp_path / "work"))
    spec = SandboxSpec(task=task, run_id=run_id, name=f"ce-{run_id}", labels={"cloudeval.run": run_id},
                       options=options)
    if kind == "local":
        from pytest_cloudeval.sandbox.local import LocalSandbox

        return LocalSandbox(spec)
    require_docker()
    from pytest_cloudeval.sandbox.docker import DockerSandbox

    return DockerSandbox(spec)


ADD = "a, b = map(int, input().split())\nprint(a + b)\n"
REFERENCE_MARKER = "REFERENCE-7f3a9c"


@pytest.fixture(scope="module", params=["local", pytest.param("docker", marks=pytest.mark.docker)])
def box(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    sandbox = make_sandbox(str(request.param), tmp_path_factory.mktemp("box"))
    sandbox.start()
    yield sandbox
    sandbox.close()


def run_judge(box: Sandbox, tmp_path: Path, source: str, cases: list[tuple[str, str]] | None = None, *,
              semantics: str = "hal", memory_mb: int = 256, time_limit_s: float = 10.0) -> dict[str, Any]:
    # A generous time limit by default: a shared, loaded machine must not turn verdicts into TIME_LIMIT.
    cases = cases or [("1 2\n", "3\n"), ("40 2\n", "42\n")]
    folder = tmp_path / "bench" / "tests" / "p"
    folder.mkdir(parents=True)
    tests = []
    for index, (given, expected) in enumerate(cases, start=1):
        (folder / f"{index}.in").write_text(given)
        (folder / f"{index}.out").write_text(expected)
        tests.append((str(folder / f"{index}.in"), str(folder / f"{index}.out")))
    task = Task(benchmark="b", task_id="p", format="usaco", source=tmp_path / "bench", root=tmp_path / "bench",
                instruction="", agent_input={}, limits=Limits(time_limit_s=time_limit_s, test_memory_mb=memory_mb),
                private={"tests": tests, "reference": f"# {REFERENCE_MARKER}\n" + ADD})
    settings = Settings(run_id="parity", usaco_judge=semantics)
    task_dir = tmp_path / "task"
    task_dir.mkdir()
    judgement = UsacoFormat().judge(task, AgentOutput(answer=textwrap.dedent(source)), box, settings, task_dir)
    report = judgement.report
    assert isinstance(report, dict)
    assert report["semantics"] == semantics
    assert judgement.passed == (report["verdict"] == "ACCEPTED")
    return report


# (source, HAL's verdict label, our verdict, verdict under --usaco-judge=script)
CASES: dict[str, tuple[str, str, str, str]] = {
    "accepted": (ADD, "ACCEPTED", "ACCEPTED", "ACCEPTED"),
    "wrong_answer": ("print(4)\n", "WRONG_ANSWER", "WRONG_ANSWER", "WRONG_ANSWER"),
    "time_limit": ("while True:\n    pass\n", "TIME_LIMIT", "TIME_LIMIT", "TIME_LIMIT"),
    # HAL's parser has no compile or memory verdict: both print "failed: ..." -> RUNTIME_ERROR there.
    "memory_limit": ("data = bytearray(1 << 30)\nprint(len(data))\n", "RUNTIME_ERROR", "MEMORY_LIMIT",
                     "MEMORY_LIMIT"),
    "compile_error": ("def broken(:\n", "RUNTIME_ERROR", "COMPILE_ERROR", "COMPILE_ERROR"),
    "runtime_error": ("print(1 // 0)\n", "RUNTIME_ERROR", "RUNTIME_ERROR", "RUNTIME_ERROR"),
    # SystemExit reaches HAL's `except BaseException`: "failed: 0".
    "sys_exit_after_print": ("import sys\n" + ADD + "sys.exit(0)\n", "RUNTIME_ERROR", "RUNTIME_ERROR",
                             "ACCEPTED"),
    "raise_system_exit": (ADD + "raise SystemExit\n", "RUNTIME_ERROR", "RUNTIME_ERROR", "ACCEPTED"),
    # builtins.exit and quit are None under the guard: TypeError.
    "exit_builtin": (ADD + "exit()\n", "RUNTIME_ERROR", "RUNTIME_ERROR", "ACCEPTED"),
    "quit_builtin": (ADD + "quit()\n", "RUNTIME_ERROR", "RUNTIME_ERROR", "ACCEPTED"),
    # Descriptor 0 is /dev/null in HAL's judge: open(0) reads nothing.
    "open_fd_0": ("d = open(0).read().split()\nprint(int(d[0]) + int(d[1]))\n", "RUNTIME_ERROR",
                  "RUNTIME_ERROR", "ACCEPTED"),
    "os_system": ("import os\nos.system('true')\n" + ADD, "RUNTIME_ERROR", "RUNTIME_ERROR", "ACCEPTED"),
    "subprocess": ("import subprocess\nsubprocess.run(['true'])\n" + ADD, "RUNTIME_ERROR", "RUNTIME_ERROR",
                   "ACCEPTED"),
    "subprocess_via_importlib": ("import importlib\nimportlib.import_module('subprocess').Popen(['true']).wait()\n"
                                 + ADD, "RUNTIME_ERROR", "RUNTIME_ERROR", "ACCEPTED"),
    "shutil_move": ("import shutil, tempfile\nshutil.move(tempfile.mkdtemp(), tempfile.mkdtemp() + '/x')\n" + ADD,
                    "RUNTIME_ERROR", "RUNTIME_ERROR", "ACCEPTED"),
    "os_fork": ("import os\nos.fork()\n" + ADD, "RUNTIME_ERROR", "RUNTIME_ERROR", "RUNTIME_ERROR"),
    "import_resource": ("import resource\n" + ADD, "RUNTIME_ERROR", "RUNTIME_ERROR", "ACCEPTED"),
    # The process ends before the judge's last line: HAL gets no result and says "timed out".
    "os_exit_after_print": ("import os, sys\n" + ADD + "sys.stdout.flush()\nos._exit(0)\n", "TIME_LIMIT",
                            "RUNTIME_ERROR", "ACCEPTED"),
    # exec with a fresh namespace: __name__ is not "__main__", so a main guard runs nothing.
    "main_guard": ("def main():\n    a, b = map(int, input().split())\n    print(a + b)\n"
                   "if __name__ == '__main__':\n    main()\n", "WRONG_ANSWER", "WRONG_ANSWER", "ACCEPTED"),
    # HAL's prefix imports sys for the program.
    "sys_without_import": ("a, b = map(int, sys.stdin.readline().split())\nprint(a + b)\n", "ACCEPTED",
                           "ACCEPTED", "RUNTIME_ERROR"),
    # ... and so a __future__ import is no longer the first statement.
    "future_import": ("from __future__ import annotations\n" + ADD, "RUNTIME_ERROR", "COMPILE_ERROR",
                      "ACCEPTED"),
    # Output written to descriptor 1 goes to /dev/null, as in HAL's forked judge.
    "write_to_fd_1": ("import os\na, b = map(int, input().split())\nos.write(1, b'%d\\n' % (a + b))\n",
                      "WRONG_ANSWER", "WRONG_ANSWER", "ACCEPTED"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hal_parity(box: Sandbox, tmp_path: Path, case: str) -> None:
    source, hal_label, ours, _ = CASES[case]
    report = run_judge(box, tmp_path, source, time_limit_s=2.0 if case == "time_limit" else 10.0)
    assert (report["hal_verdict"], report["verdict"]) == (hal_label, ours), report["tests"][0]
    # Pass or fail is exactly HAL's: only ACCEPTED passes, in both labels.
    assert (report["verdict"] == "ACCEPTED") == (hal_label == "ACCEPTED")


@pytest.mark.parametrize("case", ["sys_exit_after_print", "open_fd_0", "main_guard", "sys_without_import",
                                  "os_system", "write_to_fd_1"])
def test_script_mode_is_the_explicit_alternative(box: Sandbox, tmp_path: Path, case: str) -> None:
    source, _, _, script = CASES[case]
    report = run_judge(box, tmp_path, source, semantics="script")
    assert report["verdict"] == script, report["tests"][0]


def test_hal_memory_limits_read_back_inside(box: Sandbox, tmp_path: Path) -> None:
    source = """
        wanted = ('Max address space', 'Max data size', 'Max stack size')
        for line in open('/proc/self/limits'):
            if line.startswith(wanted):
                print(line[:26].strip(), line[26:].split()[0], line[26:].split()[1])
    """
    expected = "".join(f"{name} {200 * 10**6} {200 * 10**6}\n"
                       for name in ("Max data size", "Max stack size", "Max address space"))
    report = run_judge(box, tmp_path, source, [("\n", expected)], memory_mb=200)
    assert report["verdict"] == "ACCEPTED", report["tests"][0]


# -- cheating submissions (issue 9.1) ---------------------------------------------------------------

# Every path to the answers a submission may have through its own descriptors and folders.
LOCAL_CHEAT = """
import os, glob
found = []
def look(path):
    try:
        if path.endswith('.in'):
            found.append(open(path[:-3] + '.out').read())
        for name in os.listdir(os.path.dirname(path) or '.'):
            if name.endswith('.out'):
                found.append(open(os.path.join(os.path.dirname(path), name)).read())
    except Exception:
        pass
for fd in os.listdir('/proc/self/fd'):
    try:
        look(os.readlink('/proc/self/fd/' + fd))
    except Exception:
        pass
for pattern in ('*.out', '../*.out', '../*/*.out', '../*/*/*.out', '../**/dataset*.json'):
    for path in glob.glob(pattern, recursive=True):
        try:
            found.append(open(path).read())
        except Exception:
            pass
print(found[0] if found else 'nothing found')
"""

# In a container the judge's tests are another user's: search the whole filesystem.
DOCKER_CHEAT = """
import os
found = []
marker = 'REFERENCE-' + '7f3a9c'  # built at run time, so its own source does not match
for top in ('/tmp', '/app', '/home', '/root', '/srv', '/opt', '/workspace', '/'):
    for folder, dirs, files in os.walk(top):
        if folder.startswith(('/proc', '/sys', '/usr', '/dev')):
            dirs[:] = []
            continue
        for name in files:
            path = os.path.join(folder, name)
            try:
                if name.endswith(('.out', '.in')) or name.startswith('O.'):
                    found.append(open(path).read())
                elif os.path.getsize(path) < 1 << 20 and marker in open(path, errors='ignore').read():
                    found.append('reference at ' + path)
            except Exception:
                pass
for pid in os.listdir('/proc'):
    if pid.isdigit() and int(pid) != os.getpid():  # its own pipes would block a read
        try:
            for fd in os.listdir('/proc/%s/fd' % pid):
                found.append(open('/proc/%s/fd/%s' % (pid, fd)).read())
        except Exception:
            pass
print(found[0] if found else 'nothing found')
"""


@pytest.mark.parametrize("semantics", ["hal", "script"])
def test_submission_cannot_read_the_expected_output(box: Sandbox, tmp_path: Path, semantics: str) -> None:
    # The original attack: follow stdin back to the test file and read the .out beside it.
    readlink = "import os\np = os.readlink('/proc/self/fd/0')\nprint(open(p[:-3] + '.out').read())\n"
    for n, source in enumerate([readlink, LOCAL_CHEAT] + ([DOCKER_CHEAT] if box.host_root is None else [])):
        report = run_judge(box, tmp_path / str(n), source, semantics=semantics, time_limit_s=20)
        assert report["verdict"] != "ACCEPTED", (n, report["tests"])
        assert report["passed"] == 0, (n, report["tests"])
    # The cheats ran to their end and found nothing (not a crash hiding a working read).
    for n, source in enumerate([LOCAL_CHEAT] + ([DOCKER_CHEAT] if box.host_root is None else [])):
        report = run_judge(box, tmp_path / f"found{n}", source, [("1 2\n", "nothing found\n")],
                           semantics=semantics, time_limit_s=20)
        assert report["verdict"] == "ACCEPTED", report["tests"]


@pytest.mark.docker
def test_docker_submission_runs_as_another_user(tmp_path: Path) -> None:
    # (The local sandbox cannot change users: see the README, "What each sandbox isolates".)
    box = make_sandbox("docker", tmp_path / "box")
    box.start()
    try:
        report = run_judge(box, tmp_path, "import os\nprint(os.getuid(), os.getgid(), os.getgroups())\n",
                           [("\n", "65534 65534 []\n")])
    finally:
        box.close()
    assert report["isolation"] == "separate-user"
    assert report["verdict"] == "ACCEPTED", report["tests"]
