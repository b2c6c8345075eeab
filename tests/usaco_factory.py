"""Builds small HAL-layout USACO benchmarks for tests (and benches)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

ADD = "a, b = map(int, input().split())\nprint(a + b)\n"


def problem(pid: str, *, level: str = "bronze", solution: str = ADD, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": pid.replace("_", " "),
        "problem_id": pid,
        "cp_id": pid.split("_")[0],
        "problem_level": level,
        "description": f"Problem {pid}: read two integers and print their sum.",
        "description_no_samples": f"Problem {pid}.",
        "samples": [{"input": "1 2", "output": "3", "explanation": ""}],
        "num_samples": 1,
        "num_tests": 2,
        "runtime_limit": 2,
        "memory_limit": 256,
        "solution": "add them",
        "solution_python3": solution,
        "solution_english": "add them",
    }
    data.update(extra)
    return data


def write_benchmark(root: Path, problems: dict[str, dict[str, Any]] | None = None, *, name: str | None = None,
                    tests: dict[str, list[tuple[str, str]]] | None = None) -> Path:
    """Write ``root/benchmark.toml``, the dataset and hidden tests; return ``root``."""
    if problems is None:
        problems = {pid: problem(pid, level=level) for pid, level in
                    (("1001_bronze_add", "bronze"), ("1002_silver_add", "silver"), ("1003_gold_add", "gold"))}
    root.mkdir(parents=True, exist_ok=True)
    lines = ['format = "usaco"', 'dataset = "dataset.json"', 'tests_dir = "tests"']
    if name:
        lines.append(f'name = "{name}"')
    (root / "benchmark.toml").write_text("\n".join(lines) + "\n")
    (root / "dataset.json").write_text(json.dumps(problems, indent=1))
    for pid, prob in problems.items():
        if not isinstance(prob, dict):
            continue
        cases = (tests or {}).get(pid, [("1 2\n", "3\n"), ("40 2\n", "42\n")])
        folder = root / "tests" / pid
        folder.mkdir(parents=True, exist_ok=True)
        for i, (inp, out) in enumerate(cases, 1):
            (folder / f"{i}.in").write_text(inp)
            (folder / f"{i}.out").write_text(out)
    return root


def trivial_benchmark(root: Path, count: int, *, pid: Callable[[int], str] = lambda i: f"{9000 + i}_bronze_t{i}",
                      first: int = 0) -> Path:
    """``count`` problems with one tiny test each (print the input plus one), for ``i`` from ``first``:
    ids ``pid(i)``, input ``i`` (benches and tests that need many tasks)."""
    numbers = range(first, first + count)
    problems = {pid(i): problem(pid(i), solution="print(int(input()) + 1)\n", num_tests=1) for i in numbers}
    tests = {pid(i): [(f"{i}\n", f"{i + 1}\n")] for i in numbers}
    return write_benchmark(root, problems, tests=tests)
