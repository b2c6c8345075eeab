"""HAL's USACO dataset layout: a ``{problem_id: problem}`` JSON plus hidden tests per problem.

``benchmark.toml``: ``format = "usaco"``, ``dataset = "<file>.json"``, ``tests_dir = "tests"``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BenchmarkError, VerifierError
from ..judge import usaco as judge_mod
from ..model import AgentOutput, Judgement, Limits, Task
from ..redact import redactor_for
from ..results import atomic_write_json, is_safe_id
from ..sandbox.base import HostLaunch, Sandbox
from ..settings import Settings
from .base import BrokenTask, HugeInt, TaskFormat, check_number, marker_name, parse_json_int

JUDGE_PATH = "/usr/local/bin:/usr/bin:/bin"
"""The PATH the judge and the submission see, wherever they run."""
MAX_RUNTIME_S = 3600.0
MAX_MEMORY_MB = 1024 * 1024
MAX_TESTS = 100_000


@dataclass(frozen=True)
class UsacoData:
    """USACO's private task data (``Task.private``): the reference solution and the hidden tests."""

    reference: str | None
    tests_dir: Path
    """``tests_dir/<problem id>/`` holds the hidden tests, listed where the task runs (collection
    only checks the folder exists: listing 10,000 folders would dominate collection time)."""
    num_tests: int | None
    where: str

    def tests(self, task: Task) -> list[tuple[Path, Path]]:
        try:
            return judge_mod.discover_tests(self.tests_dir, task.task_id, self.num_tests)
        except judge_mod.JudgeSetupError as e:
            raise BenchmarkError(task.source, f"problem {task.task_id!r}: hidden tests: {e}") from e


def data(task: Task) -> UsacoData:
    if not isinstance(task.private, UsacoData):
        raise TypeError(f"task {task.task_id} is not a USACO task")
    return task.private

GROUND_TRUTH = ("solution", "solution_python3", "solution_english")
REQUIRED: dict[str, type | tuple[type, ...]] = {
    "description": str,
    "runtime_limit": (int, float),
    "memory_limit": (int, float),
}
OPTIONAL: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "problem_id": str,
    "problem_level": str,
    "samples": list,
    "num_tests": int,
    "num_samples": int,
    "solution_python3": str,
}


def _type_name(t: type | tuple[type, ...]) -> str:
    if isinstance(t, tuple):
        return " or ".join(x.__name__ for x in t)
    return t.__name__


def _check_problem(key: str, problem: Any) -> str | None:
    """What is wrong with one problem entry, or None."""
    if not isinstance(problem, dict):
        return f"problem {key!r} must be a JSON object, got {type(problem).__name__}"
    for name, typ in REQUIRED.items():
        if name not in problem:
            return f"problem {key!r} lacks the field {name!r}"
        value = problem[name]
        if isinstance(value, HugeInt):
            continue  # a number, refused by its range below
        if isinstance(value, bool) or not isinstance(value, typ):
            return f"problem {key!r}: {name} must be {_type_name(typ)}, got {value!r}"
    for name, typ in OPTIONAL.items():
        if name in problem and problem[name] is not None:
            value = problem[name]
            if isinstance(value, HugeInt) and typ is int:
                continue  # a number, refused by its range below
            if isinstance(value, bool) or not isinstance(value, typ) or isinstance(value, HugeInt):
                return f"problem {key!r}: {name} must be {_type_name(typ)}, got {value!r}"
    try:
        check_number(problem["runtime_limit"], f"problem {key!r}: runtime_limit", maximum=MAX_RUNTIME_S)
        check_number(problem["memory_limit"], f"problem {key!r}: memory_limit", maximum=MAX_MEMORY_MB)
        if int(problem["memory_limit"]) < 1:
            raise ValueError(f"problem {key!r}: memory_limit must be at least 1 (MB), got {problem['memory_limit']!r}")
        if problem.get("num_tests") is not None:
            check_number(problem["num_tests"], f"problem {key!r}: num_tests", integer=True, minimum=0,
                         exclusive_min=False, maximum=MAX_TESTS)
    except ValueError as e:
        return str(e)
    if "problem_id" in problem and problem["problem_id"] != key:
        return f"problem {key!r}: its problem_id is {problem['problem_id']!r}; they must agree"
    return None


class UsacoFormat(TaskFormat):
    name = "usaco"
    markers = {"usaco": "USACO-format benchmark tasks", "bronze": "USACO bronze problems",
               "silver": "USACO silver problems", "gold": "USACO gold problems",
               "platinum": "USACO platinum problems"}

    def load_benchmark(self, root: Path, spec: Mapping[str, Any], benchmark: str) -> list[Task | BrokenTask]:
        toml_path = root / "benchmark.toml"
        dataset_name = spec.get("dataset")
        if not isinstance(dataset_name, str) or not dataset_name:
            raise BenchmarkError(toml_path, "'dataset' must name the problems JSON file")
        tests_name = spec.get("tests_dir", "tests")
        if not isinstance(tests_name, str):
            raise BenchmarkError(toml_path, "'tests_dir' must be a folder name")
        dataset = (root / dataset_name).resolve()
        tests_dir = (root / tests_name).resolve()
        for path, what in ((dataset, "dataset"), (tests_dir, "tests_dir")):
            if not path.is_relative_to(root.resolve()):
                raise BenchmarkError(toml_path, f"{what} {path} lies outside the benchmark folder")
        if not dataset.is_file():
            raise BenchmarkError(toml_path, f"dataset {dataset_name!r} does not exist")
        try:
            problems = json.loads(dataset.read_text(encoding="utf-8"), parse_int=parse_json_int)
        except UnicodeDecodeError as e:
            raise BenchmarkError(dataset, f"not UTF-8 text ({e.reason} at byte {e.start})") from e
        except json.JSONDecodeError as e:
            raise BenchmarkError(dataset, f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from e
        except RecursionError as e:
            raise BenchmarkError(dataset, "invalid JSON: nested too deeply") from e
        except ValueError as e:  # e.g. an integer over Python's 4300-digit limit
            raise BenchmarkError(dataset, f"invalid JSON: {str(e)[:200]}") from e
        if not isinstance(problems, dict):
            raise BenchmarkError(dataset, f"expected a JSON object keyed by problem_id, got {type(problems).__name__}")
        if not problems:
            raise BenchmarkError(dataset, "holds no problems")

        tasks: list[Task | BrokenTask] = []
        dataset_text, tests_text = str(dataset), str(tests_dir)
        limits: dict[tuple[Any, Any], Limits] = {}  # shared: most problems have the same limits
        for key in sorted(problems):
            problem = problems[key]
            where = f"{dataset_text}[{key!r}]"
            if not is_safe_id(key):
                # Real ids may hold any printable character (HAL's "..._where_am_i?"); a path
                # separator, "..", or a control character is refused: results folders derive from ids.
                safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in key)[:100].strip("._-") or "task"
                tasks.append(BrokenTask(benchmark, f"invalid_{safe}", dataset,
                                        f"problem id {key!r} is not a safe name (no '/', '\\', '..' or "
                                        "control characters)"))
                continue
            problem_error = _check_problem(key, problem)
            if problem_error:
                tasks.append(BrokenTask(benchmark, key, dataset, problem_error))
                continue
            if not os.path.isdir(os.path.join(tests_text, key)):
                tasks.append(BrokenTask(benchmark, key, dataset, f"problem {key!r}: hidden tests: "
                                        f"{tests_dir / key}: test folder for problem {key!r} does not exist"))
                continue
            level = problem.get("problem_level") or ""
            level_marker = marker_name(level)
            markers = ("usaco", level_marker) if level_marker else ("usaco",)
            limit_key = (problem["runtime_limit"], problem["memory_limit"])
            if limit_key not in limits:
                limits[limit_key] = Limits(time_limit_s=float(problem["runtime_limit"]),
                                           test_memory_mb=int(problem["memory_limit"]))
            agent_input = {k: v for k, v in problem.items() if k not in GROUND_TRUTH}
            tasks.append(Task(
                benchmark=benchmark,
                task_id=key,
                format=self.name,
                source=dataset,
                root=root,
                instruction=problem["description"],
                agent_input=agent_input,
                limits=limits[limit_key],
                markers=markers,
                private=UsacoData(reference=problem.get("solution_python3"), tests_dir=tests_dir,
                                  num_tests=problem.get("num_tests"), where=where),
            ))
        return tasks

    def prepare(self, task: Task, sandbox: Sandbox, settings: Settings) -> None:
        data(task).tests(task)  # missing or unpaired hidden tests: an error before the agent runs

    def oracle(self, task: Task, sandbox: Sandbox, settings: Settings, timeout_s: float) -> AgentOutput:
        reference = data(task).reference
        if not isinstance(reference, str) or not reference.strip():
            raise BenchmarkError(task.source, f"problem {task.task_id!r} has no solution_python3 for the oracle")
        return AgentOutput(answer=reference)

    def judge(self, task: Task, output: AgentOutput, sandbox: Sandbox, settings: Settings,
              task_dir: Path) -> Judgement:
        source = output.answer
        if source is None or source == "":
            source = ""
        if not isinstance(source, str):
            return Judgement(False, 0.0, "BAD_ANSWER",
                             f"the answer must be Python source (str), got {type(source).__name__}")
        time_limit = (task.limits.time_limit_s or 2.0) * settings.limit_multiplier
        memory_mb = int((task.limits.test_memory_mb or 256) * settings.limit_multiplier)
        tests = data(task).tests(task)
        semantics = settings.usaco_judge
        # The submission is a process of the sandbox, local or not: whatever it starts (setsid
        # daemons included) is the sandbox's, and dies with it. Where the sandbox's processes run on
        # this host, the judge runs here and starts it into the sandbox; elsewhere the judge is a
        # command of the sandbox.
        launch = sandbox.host_launch()
        if sandbox.host_root is not None and launch is not None:
            report = self._judge_on_host(source, tests, time_limit, memory_mb, semantics, sandbox.host_root,
                                         launch)
        elif sandbox.host_root is not None:
            # Locally the tests are read where they are (copies would only add places to find
            # them) and the submission works in a fresh folder holding nothing but its source.
            workdir = tempfile.mkdtemp(prefix="judge-", dir=sandbox.host_root)
            report = self._judge_in_sandbox(source, tests, time_limit, memory_mb, semantics, sandbox,
                                            python=sys.executable, local_workdir=workdir)
        else:
            report = self._judge_in_sandbox(source, tests, time_limit, memory_mb, semantics, sandbox)
        # Redacted before serialization (the submission's output may echo a secret); verdicts are kept.
        atomic_write_json(task_dir / "judge.json", redactor_for(settings).result(report))
        verdict = report["verdict"]
        passed = verdict == "ACCEPTED"
        message = f"{verdict}: {report['passed']}/{report['total']} tests accepted"
        for test in report.get("tests", []):
            if test.get("verdict") != "ACCEPTED":
                detail = f" ({test['detail']})" if test.get("detail") else ""
                message += f"; first failing: test {test['index']} {test['verdict']}{detail}"
                break
        return Judgement(passed, float(report["score"]), verdict, message, report=report,
                         metrics={"tests_passed": report["passed"], "tests_total": report["total"],
                                  "time_limit_s": time_limit, "memory_mb": memory_mb})

    def _judge_on_host(self, source: str, tests: list[tuple[Path, Path]], time_limit: float, memory_mb: int,
                       semantics: str, host_root: Path, launch: HostLaunch) -> dict[str, Any]:
        """Judge in this worker; each submission is started as one of the sandbox's processes.

        The same judge code as in a sandbox command, without an interpreter that only starts another
        (one Python start-up per attempt, the largest per-task cost of a local run). The tests are
        read where they are, the submission works in a fresh folder holding nothing but its source,
        gets the judge's minimal environment (no secret) plus the sandbox's token, joins the
        sandbox's cgroup before it runs a line of the submission (held at its bootstrap's gate while
        the worker puts it there: no fork of the worker per test) and leads a process group the sandbox kills at close: whatever
        it starts (setsid daemons included) dies with the attempt.
        """
        workdir = Path(tempfile.mkdtemp(prefix="judge-", dir=host_root))
        try:
            return judge_mod.judge_submission(
                source, tests, time_limit_s=time_limit, memory_mb=memory_mb, workdir=workdir,
                python=sys.executable, semantics=semantics,
                extra_env={"PATH": JUDGE_PATH, **launch.env}, before_exec=launch.preexec,
                adopt=launch.adopt, on_start=launch.on_start)
        except judge_mod.JudgeSetupError as e:
            raise VerifierError(f"cannot judge: {e}") from e
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _judge_in_sandbox(self, source: str, tests: list[tuple[Path, Path]], time_limit: float,
                          memory_mb: int, semantics: str, sandbox: Sandbox, python: str = "python3",
                          local_workdir: str | None = None) -> dict[str, Any]:
        """Run the judge module as a sandbox command, so verdicts are the same in every sandbox.

        In a container the judge's code and the hidden tests travel on the stdin of a root command
        and never touch the sandbox's disk where the agent's user (or anything it left running)
        could read or rewrite them; the judge then runs the submission as yet another,
        unprivileged user. Locally (``local_workdir``) the tests are passed by path.
        """
        try:
            payload = judge_mod.sandbox_payload(source, tests, inline=local_workdir is None,
                                                workdir=local_workdir, time_limit_s=time_limit,
                                                memory_mb=memory_mb, semantics=semantics, python=python)
        except judge_mod.JudgeSetupError as e:
            raise VerifierError(f"cannot prepare the judge: {e}") from e
        budget = len(tests) * (time_limit + 5) + 30
        result = sandbox.exec([python, "-I", "-c", judge_mod.SANDBOX_LOADER], timeout=budget, stdin=payload,
                              user="0", env={"PATH": JUDGE_PATH, "LANG": "C.UTF-8"})
        if not result.ok:
            raise VerifierError(f"the judge failed in the sandbox (exit {result.exit_code}, "
                                f"timed out: {result.timed_out}): {result.stderr[-2000:]}")
        try:
            return json.loads(result.stdout)
        except json.JSONDecodeError as e:
            raise VerifierError(f"the judge printed no report: {result.stdout[-500:]!r}") from e
