"""The TaskFormat contract: load tasks at collection (no network), then prepare, oracle and judge."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..model import AgentOutput, Judgement, Task
from ..sandbox.base import Capability

if TYPE_CHECKING:
    from ..sandbox.base import Sandbox
    from ..settings import Settings


@dataclass(frozen=True)
class BrokenTask:
    """A task that could not be loaded: becomes an item that errors, naming the file and the fault."""

    benchmark: str
    task_id: str
    source: Path
    message: str


def marker_name(text: str) -> str:
    """A ``-m``-usable marker name made of a metadata value (``Hard Problems`` -> ``hard_problems``)."""
    name = re.sub(r"[^0-9a-zA-Z_]+", "_", str(text).strip().lower()).strip("_")
    if not name:
        return ""
    return name if not name[0].isdigit() else f"m_{name}"


class TaskFormat(ABC):
    """One benchmark format. Methods other than ``load_benchmark`` run where the task runs."""

    name: ClassVar[str]
    requires: ClassVar[Capability] = Capability.NONE
    """Sandbox capabilities the format needs (e.g. ``Capability.CONTAINER``); missing ones skip the task."""

    @abstractmethod
    def load_benchmark(self, root: Path, spec: Mapping[str, Any], benchmark: str) -> list[Task | BrokenTask]:
        """Tasks of the benchmark in ``root`` (``spec`` is benchmark.toml), in a deterministic order.

        Raises BenchmarkError when the benchmark as a whole is unreadable; a single bad task is
        returned as a BrokenTask so the others still run.
        """

    def prepare(self, task: Task, sandbox: Sandbox, settings: Settings) -> None:
        """Put what the agent needs into the sandbox before it starts."""

    @abstractmethod
    def oracle(self, task: Task, sandbox: Sandbox, settings: Settings, timeout_s: float) -> AgentOutput:
        """Produce the reference answer (the ``oracle`` agent)."""

    @abstractmethod
    def judge(self, task: Task, output: AgentOutput, sandbox: Sandbox, settings: Settings,
              task_dir: Path) -> Judgement:
        """Grade ``output``. Raise VerifierError when the grader itself is broken."""

    def collect(self, task: Task, sandbox: Sandbox, settings: Settings, task_dir: Path) -> None:
        """Copy the task's logs and artifacts from the sandbox into ``task_dir`` (also after errors)."""
