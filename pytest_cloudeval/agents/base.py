"""The Agent contract and the context an agent gets for one task attempt."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from ..capture import CappedBuffer
from ..model import AgentOutput, Task

if TYPE_CHECKING:
    from ..sandbox.base import Sandbox
    from ..settings import Settings
    from ..tasks.base import TaskFormat

F = TypeVar("F", bound=Callable[..., Any])


class AgentFailure(Exception):
    """The agent's own fault (raised, hung, answered nonsense): its task *fails*, the run goes on."""

    def __init__(self, verdict: str, message: str) -> None:
        self.verdict = verdict
        self.message = message
        super().__init__(f"{verdict}: {message}")


@dataclass
class AgentContext:
    """What an agent may use for one attempt."""

    task: Task
    format: TaskFormat
    sandbox: Sandbox
    settings: Settings
    kwargs: Mapping[str, Any]
    timeout_s: float
    env: Mapping[str, str]
    log: CappedBuffer

    def note(self, text: str) -> None:
        self.log.write(text.encode() + (b"" if text.endswith("\n") else b"\n"))


class Agent(ABC):
    """Solves one task. Raise AgentFailure for the agent's faults, SandboxError for the engine's."""

    name: str = "agent"
    trusted: bool = False
    """Part of the task (the oracle): its processes may run on while the task is judged."""

    def validate(self) -> None:
        """Check at configure time (on the controller) that the agent can load; raise AgentSpecError."""

    @abstractmethod
    def solve(self, ctx: AgentContext) -> AgentOutput:
        """Work on ``ctx.task`` within ``ctx.timeout_s`` and return the output."""


def sandbox_agent(fn: F) -> F:
    """Mark ``fn(task: dict, sandbox: SandboxHandle, **kwargs)`` as an agent that acts in the sandbox.

    It runs in the worker process and acts only through the handle (``run``, ``read_file``,
    ``write_file``); it returns its answer, or ``{"answer": ..., "metrics": {...}}``.
    """
    fn.__cloudeval_sandbox_agent__ = True  # type: ignore[attr-defined]
    return fn


def split_answer(value: Any) -> tuple[Any, dict[str, Any]]:
    """HAL answers are either the answer itself or ``{"answer": ..., "metrics": {...}}``."""
    if isinstance(value, dict) and "answer" in value and set(value) <= {"answer", "metrics"}:
        metrics = value.get("metrics") or {}
        if not isinstance(metrics, dict):
            raise AgentFailure("BAD_ANSWER", f"metrics must be a dict, got {type(metrics).__name__}")
        return value["answer"], dict(metrics)
    return value, {}
