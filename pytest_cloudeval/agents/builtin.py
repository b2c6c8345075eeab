"""Built-in agents: ``oracle`` submits the reference solution, ``noop`` does nothing useful."""

from __future__ import annotations

from ..model import AgentOutput
from .base import Agent, AgentContext


class OracleAgent(Agent):
    """Runs the task's reference solution; must pass every shipped task."""

    name = "oracle"
    trusted = True

    def solve(self, ctx: AgentContext) -> AgentOutput:
        return ctx.format.oracle(ctx.task, ctx.sandbox, ctx.settings, ctx.timeout_s)


class NoopAgent(Agent):
    """Answers nothing; must fail every task (as failures, not errors)."""

    name = "noop"

    def solve(self, ctx: AgentContext) -> AgentOutput:
        return AgentOutput(answer="")


BUILTINS: dict[str, type[Agent]] = {"oracle": OracleAgent, "noop": NoopAgent}
