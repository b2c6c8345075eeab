"""Collection: ``benchmark.toml`` files and lone task folders (any registered format) become one
item per task and repeat.

Deterministic and offline, so every xdist worker collects the same items in the same order. Which
folders are benchmark or task roots, and why pytest never walks below them, is ``layout.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .errors import BenchmarkError
from .model import Task
from .results import is_safe_name
from .session import SESSION_KEY, CloudEvalSession
from .tasks.base import BrokenTask, TaskFormat, read_toml


class TaskFailed(Exception):
    """The agent's answer was judged wrong (or the agent failed): a test failure."""


class TaskErrored(Exception):
    """Infrastructure or benchmark trouble: a test error."""


def _session(config: pytest.Config) -> CloudEvalSession:
    return config.stash[SESSION_KEY]


def _benchmark_name(path: Path, spec: dict[str, Any], settings: Any) -> str:
    name = spec.get("name", settings.local_name(path.parent))
    if not isinstance(name, str) or not is_safe_name(name):
        raise BenchmarkError(path, f"benchmark name {name!r} must be letters, digits, '.', '_' or '-'")
    return name


class _TaskSource(pytest.File):
    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:  # type: ignore[override]
        # A malformed benchmark is the user's input, not our bug: name the file and the fault only.
        if isinstance(excinfo.value, BenchmarkError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


class BenchmarkFile(_TaskSource):
    """A ``benchmark.toml``: its ``format`` decides how the folder becomes tasks."""

    def collect(self) -> Iterator[pytest.Item]:
        session = _session(self.config)
        spec = read_toml(self.path)
        fmt_name = spec.get("format")
        if not isinstance(fmt_name, str):
            raise BenchmarkError(self.path, "missing 'format' (e.g. format = \"usaco\" or \"harbor\")")
        formats = session.formats()
        if fmt_name not in formats:
            known = ", ".join(sorted(formats))
            raise BenchmarkError(self.path, f"unknown format {fmt_name!r} (known: {known})")
        benchmark = _benchmark_name(self.path, spec, session.settings)
        tasks = formats[fmt_name].load_benchmark(self.path.parent, spec, benchmark)
        yield from make_items(self, tasks, session)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, self.name


class TaskFile(_TaskSource):
    """A lone task folder's defining file (e.g. Harbor's ``task.toml`` with no ``benchmark.toml`` above):
    one task, benchmark = the folder's parent's name."""

    def __init__(self, *, fmt: TaskFormat, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fmt = fmt

    def collect(self) -> Iterator[pytest.Item]:
        session = _session(self.config)
        parent_name = session.settings.local_name(self.path.parent.parent)
        benchmark = parent_name if is_safe_name(parent_name) else self.fmt.name
        yield from make_items(self, [self.fmt.load_task(self.path, benchmark)], session)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, self.name


def _unique(tasks: list[Task | BrokenTask]) -> list[Task | BrokenTask]:
    """A repeated id makes the repeats errors (with unique names), never drops the benchmark."""
    seen: set[str] = set()
    out: list[Task | BrokenTask] = []
    for task in tasks:
        if task.task_id not in seen:
            seen.add(task.task_id)
            out.append(task)
            continue
        n = 2
        while f"{task.task_id}-dup{n}" in seen:
            n += 1
        new_id = f"{task.task_id}-dup{n}"
        seen.add(new_id)
        message = task.message if isinstance(task, BrokenTask) else f"task id {task.task_id!r} appears twice"
        out.append(BrokenTask(task.benchmark, new_id, task.source, message))
    return out


def make_items(parent: pytest.File, tasks: list[Task | BrokenTask], session: CloudEvalSession) -> Iterator[pytest.Item]:
    repeats = session.settings.repeat
    decorators: dict[str, pytest.MarkDecorator] = {}
    for task in _unique(tasks):
        for repeat in range(1, repeats + 1):
            name = task.task_id if repeats == 1 else f"{task.task_id}[r{repeat}]"
            if isinstance(task, BrokenTask):
                yield BrokenTaskItem.from_parent(parent, name=name, broken=task, repeat=repeat)
                continue
            item = TaskItem.from_parent(parent, name=name, task=task, repeat=repeat)
            for marker in task.markers:
                decorator = decorators.get(marker)
                if decorator is None:
                    session.register_marker(marker)
                    decorator = decorators[marker] = getattr(pytest.mark, marker)
                item.add_marker(decorator)
            yield item


class _BaseItem(pytest.Item):
    cloudeval_result: dict[str, Any] | None = None

    def runtest(self) -> None:
        result = self.cloudeval_result
        if result is not None and result["outcome"] == "failed":
            verdict, message = str(result.get("verdict") or "FAILED"), str(result.get("message") or "")
            raise TaskFailed(message if message.startswith(verdict) else f"{verdict}: {message}")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:  # type: ignore[override]
        session = _session(self.config)
        if isinstance(excinfo.value, (TaskFailed, TaskErrored)):
            text = str(excinfo.value)
        else:
            text = str(super().repr_failure(excinfo))
        return session.redactor.text(text)

    def record(self, result: dict[str, Any]) -> None:
        self.cloudeval_result = result
        for key in ("score", "verdict", "duration_s", "tokens_in", "tokens_out", "cost_usd", "worker",
                    "attempt"):
            value = result.get(key)
            self.user_properties.append((key, "" if value is None else value))
        if result.get("resumed"):
            self.user_properties.append(("resumed", "true"))


class TaskItem(_BaseItem):
    """One attempt of one task. The work happens in setup, so harness trouble is a test *error*."""

    def __init__(self, *, task: Task, repeat: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.task = task
        self.repeat = repeat

    def setup(self) -> None:
        session = _session(self.config)
        result = session.run_item(self.task, self.repeat, self.nodeid)
        self.record(result)
        if result["outcome"] == "error":
            raise TaskErrored(result.get("message") or result.get("error") or "error")
        if result["outcome"] == "skipped":
            pytest.skip(result.get("message") or "skipped")

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{self.task.benchmark}::{self.name}"


class BrokenTaskItem(_BaseItem):
    """A task whose definition is malformed: errors with the file and the fault, the others run."""

    def __init__(self, *, broken: BrokenTask, repeat: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.broken = broken
        self.repeat = repeat

    def setup(self) -> None:
        session = _session(self.config)
        result = session.record_broken(self.broken, self.repeat, self.nodeid)
        self.record(result)
        if result["outcome"] == "skipped":
            pytest.skip(result["message"])
        raise TaskErrored(result["message"])

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.broken.source, None, f"{self.broken.benchmark}::{self.name}"
