"""HAL's USACO dataset layout: a ``{problem_id: problem}`` JSON plus hidden tests per problem.

``benchmark.toml``: ``format = "usaco"``, ``dataset = "<file>.json"``, ``tests_dir = "tests"``.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import BenchmarkError, VerifierError
from ..judge import usaco as judge_mod
from ..model import AgentOutput, Judgement, Limits, Task
from ..results import atomic_write_json, is_safe_name
from ..sandbox.base import Sandbox
from ..settings import Settings
from .base import BrokenTask, TaskFormat, marker_name

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
        if isinstance(value, bool) or not isinstance(value, typ):
            return f"problem {key!r}: {name} must be {_type_name(typ)}, got {value!r}"
    for name, typ in OPTIONAL.items():
        if name in problem and problem[name] is not None:
            value = problem[name]
            if isinstance(value, bool) or not isinstance(value, typ):
                return f"problem {key!r}: {name} must be {_type_name(typ)}, got {value!r}"
    if problem["runtime_limit"] <= 0:
        return f"problem {key!r}: runtime_limit must be positive, got {problem['runtime_limit']!r}"
    if problem["memory_limit"] <= 0:
        return f"problem {key!r}: memory_limit must be positive, got {problem['memory_limit']!r}"
    if "problem_id" in problem and problem["problem_id"] != key:
        return f"problem {key!r}: its problem_id is {problem['problem_id']!r}; they must agree"
    return None


class UsacoFormat(TaskFormat):
    name = "usaco"

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
            problems = json.loads(dataset.read_text(encoding="utf-8"))
        except UnicodeDecodeError as e:
            raise BenchmarkError(dataset, f"not UTF-8 text ({e.reason} at byte {e.start})") from e
        except json.JSONDecodeError as e:
            raise BenchmarkError(dataset, f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from e
        if not isinstance(problems, dict):
            raise BenchmarkError(dataset, f"expected a JSON object keyed by problem_id, got {type(problems).__name__}")
        if not problems:
            raise BenchmarkError(dataset, "holds no problems")

        tasks: list[Task | BrokenTask] = []
        for key in sorted(problems):
            problem = problems[key]
            where = f"{dataset}[{key!r}]"
            if not is_safe_name(key):
                safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in key)[:100].strip("._-") or "task"
                tasks.append(BrokenTask(benchmark, f"invalid_{safe}", dataset,
                                        f"problem id {key!r} is not a safe name (letters, digits, . _ -)"))
                continue
            problem_error = _check_problem(key, problem)
            if problem_error:
                tasks.append(BrokenTask(benchmark, key, dataset, problem_error))
                continue
            try:
                tests = judge_mod.discover_tests(tests_dir, key, problem.get("num_tests"))
            except judge_mod.JudgeSetupError as e:
                tasks.append(BrokenTask(benchmark, key, dataset, f"problem {key!r}: hidden tests: {e}"))
                continue
            level = problem.get("problem_level") or ""
            markers = ("usaco",) + ((marker_name(level),) if marker_name(level) else ())
            agent_input = {k: v for k, v in problem.items() if k not in GROUND_TRUTH}
            tasks.append(Task(
                benchmark=benchmark,
                task_id=key,
                format=self.name,
                source=dataset,
                root=root,
                instruction=problem["description"],
                agent_input=agent_input,
                limits=Limits(time_limit_s=float(problem["runtime_limit"]),
                              test_memory_mb=int(problem["memory_limit"])),
                markers=markers,
                private={
                    "reference": problem.get("solution_python3"),
                    "tests": [(str(i), str(o)) for i, o in tests],
                    "where": where,
                },
            ))
        return tasks

    def oracle(self, task: Task, sandbox: Sandbox, settings: Settings, timeout_s: float) -> AgentOutput:
        reference = task.private.get("reference")
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
        tests = [(Path(i), Path(o)) for i, o in task.private["tests"]]
        # The judge runs as a command of the sandbox, local or not: whatever the submission starts
        # (setsid daemons included) is the sandbox's, and dies with it.
        if sandbox.host_root is not None:
            report = self._judge_in_sandbox(source, tests, time_limit, memory_mb, sandbox,
                                            base=str(sandbox.host_root / ".judge"), python=sys.executable)
        else:
            report = self._judge_in_sandbox(source, tests, time_limit, memory_mb, sandbox)
        atomic_write_json(task_dir / "judge.json", report)
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

    def _judge_in_sandbox(self, source: str, tests: list[tuple[Path, Path]], time_limit: float,
                          memory_mb: int, sandbox: Sandbox, base: str = "/tmp/cloudeval-judge",
                          python: str = "python3") -> dict[str, Any]:
        """Run the judge module as a sandbox command, so verdicts are the same in every sandbox."""
        sandbox.write_file(f"{base}/usaco_judge.py", Path(judge_mod.__file__).read_bytes())
        sandbox.write_file(f"{base}/submission_src.py", source)
        remote_tests = []
        for n, (inp, out) in enumerate(tests, 1):
            sandbox.copy_in(inp, f"{base}/tests/{n}.in")
            sandbox.copy_in(out, f"{base}/tests/{n}.out")
            remote_tests.append([f"{base}/tests/{n}.in", f"{base}/tests/{n}.out"])
        spec = {"source_path": f"{base}/submission_src.py", "tests": remote_tests,
                "time_limit_s": time_limit, "memory_mb": memory_mb, "workdir": f"{base}/run",
                "python": python}
        sandbox.write_file(f"{base}/spec.json", json.dumps(spec))
        budget = len(tests) * (time_limit + 5) + 30
        result = sandbox.exec(
            f"mkdir -p {shlex.quote(base)}/run && {shlex.quote(python)} {shlex.quote(base + '/usaco_judge.py')} "
            f"{shlex.quote(base + '/spec.json')}",
            timeout=budget)
        if not result.ok:
            raise VerifierError(f"the judge failed in the sandbox (exit {result.exit_code}, "
                                f"timed out: {result.timed_out}): {result.stderr[-2000:]}")
        try:
            return json.loads(result.stdout)
        except json.JSONDecodeError as e:
            raise VerifierError(f"the judge printed no report: {result.stdout[-500:]!r}") from e
