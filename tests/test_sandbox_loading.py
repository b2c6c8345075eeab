"""The sandbox class loads (its SDK's import) and warms up in a background thread of every process of
an agent run, so that work overlaps the workers' start and collection; a missing SDK is still a usage
error before any task runs, an unknown name one at once (session.py, ``load_sandbox_in_background``)."""

from __future__ import annotations

import json

import pytest

from tests.usaco_factory import write_benchmark

RECORDING = '''
import json, os, threading
from pathlib import Path

from pytest_cloudeval.sandbox.local import LocalSandbox

LOG = Path(__file__).parent / "loads.jsonl"


def _note(what):
    with open(LOG, "a") as f:
        f.write(json.dumps({"what": what, "pid": os.getpid(), "thread": threading.current_thread().name}) + "\\n")


class Recording(LocalSandbox):
    name = "recording"

    @classmethod
    def warm_up(cls, options):
        _note("warm_up")


def _load():
    _note("load")
    return Recording


def pytest_cloudeval_sandboxes():
    return {"recording": _load}
'''

MISSING = '''
from pytest_cloudeval.errors import MissingExtraError


def _load():
    raise MissingExtraError("the imaginary sandbox", "imaginary", ImportError("No module named 'imaginary'"))


def pytest_cloudeval_sandboxes():
    return {"imaginary": _load}
'''


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["single", "xdist"])
def test_the_sandbox_class_loads_and_warms_in_a_background_thread(pytester: pytest.Pytester,
                                                                  workers: list[str]) -> None:
    pytester.makeconftest(RECORDING)
    write_benchmark(pytester.path / "bench")
    result = pytester.runpytest_subprocess("bench", "--sandbox=recording", "--agent", "oracle", *workers)
    result.assert_outcomes(passed=3)
    calls = [json.loads(line) for line in (pytester.path / "loads.jsonl").read_text().splitlines()]
    processes = {c["pid"] for c in calls}
    assert len(processes) == (3 if workers else 1), calls  # the controller and each worker
    for pid in processes:
        mine = [c for c in calls if c["pid"] == pid]
        # Loaded once per process, then warmed once, both off the main thread.
        assert [c["what"] for c in mine] == ["load", "warm_up"], mine
        assert all(c["thread"] == "cloudeval-sandbox-load" for c in mine), mine


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["single", "xdist"])
def test_a_missing_sdk_is_still_a_usage_error_before_any_task(pytester: pytest.Pytester,
                                                              workers: list[str]) -> None:
    pytester.makeconftest(MISSING)
    write_benchmark(pytester.path / "bench")
    result = pytester.runpytest_subprocess("bench", "--sandbox=imaginary", "--agent", "oracle",
                                           "--run-id", "nosdk", *workers)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + result.stderr.str()
    result.stderr.fnmatch_lines(["*--sandbox imaginary:*imaginary*"])
    assert not list((pytester.path / "results").glob("nosdk/*/*/result.json"))  # no task ran


def test_an_unknown_sandbox_is_a_usage_error_at_once(pytester: pytest.Pytester) -> None:
    write_benchmark(pytester.path / "bench")
    result = pytester.runpytest_subprocess("bench", "--sandbox=nowhere", "--agent", "oracle", "-n", "2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--sandbox 'nowhere': unknown sandbox (known: *local*)*"])
    assert "bringing up nodes" not in result.stdout.str()  # no worker was started
