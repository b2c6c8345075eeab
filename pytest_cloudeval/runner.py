"""Runs one attempt of one task where the worker is: sandbox up, agent, judge, result folder.

Outcome mapping: the agent's faults and wrong answers are *failed*; sandbox, verifier, benchmark
and harness trouble is *error*. ``result.json`` is written atomically, last, and redacted.
"""

from __future__ import annotations

import datetime as _dt
import json
import shutil
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .agents.base import Agent, AgentContext, AgentFailure
from .capture import CappedBuffer
from .errors import BenchmarkError, InfrastructureError
from .layout import mark_results_dir
from .model import DEFAULT_AGENT_TIMEOUT_S, AgentOutput, Task, TaskResult
from .prepare_ahead import PreparedSandboxes
from .redact import Redactor
from .results import atomic_write_bytes, atomic_write_json, redact_tree, result_dirname
from .sandbox.base import Sandbox, SandboxSpec
from .sandbox.config import options_from_settings
from .settings import Settings
from .tasks.base import TaskFormat, resolve_env

METRIC_ALIASES = {
    "tokens_in": ("tokens_in", "input_tokens", "prompt_tokens"),
    "tokens_out": ("tokens_out", "output_tokens", "completion_tokens"),
    "cost_usd": ("cost_usd", "cost"),
}


def utcnow() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def _metric(metrics: dict[str, Any], name: str, kind: type) -> Any:
    for alias in METRIC_ALIASES[name]:
        value = metrics.get(alias)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return kind(value)
    return None


@dataclass
class Attempt:
    """One attempt of one task, with everything needed to run it."""

    task: Task
    fmt: TaskFormat
    agent: Agent
    agent_name: str
    sandbox_cls: type[Sandbox]
    settings: Settings
    redactor: Redactor
    repeat: int = 1
    attempt: int = 1
    nodeid: str = ""
    # The redacted record written to result.json, kept so the caller does not serialize it again.
    record: dict[str, Any] | None = None
    lost: bool = False
    """Set when the sandbox went away under the attempt (``SandboxLost``): the session runs it again."""

    @property
    def dirname(self) -> str:
        return result_dirname(self.task.task_id, self.repeat, self.settings.repeat)

    @property
    def key(self) -> str:
        return f"{self.task.benchmark}/{self.dirname}"

    @property
    def task_dir(self) -> Path:
        return self.settings.run_dir / self.task.benchmark / self.dirname

    def sandbox_name(self) -> str:
        import secrets

        raw = f"ce-{self.settings.run_id}-{self.task.task_id}-r{self.repeat}-a{self.attempt}"
        safe = "".join(c if c.isalnum() or c in "_.-" else "-" for c in raw)[:100]
        return f"{safe}-{secrets.token_hex(3)}"

    def new_result(self) -> TaskResult:
        return TaskResult(task_id=self.task.task_id, benchmark=self.task.benchmark, agent=self.agent_name,
                          outcome="error", verdict="NOT_RUN", worker=self.settings.worker,
                          attempt=self.attempt, repeat=self.repeat, key=self.key, nodeid=self.nodeid,
                          run_id=self.settings.run_id, sandbox=self.settings.sandbox,
                          limit_multiplier=self.settings.limit_multiplier)


def timeout_for(task: Task, settings: Settings) -> float:
    return settings.task_timeout_s or task.limits.agent_timeout_s or DEFAULT_AGENT_TIMEOUT_S


def sandbox_spec(att: Attempt, image: str | None = None) -> SandboxSpec:
    task, settings = att.task, att.settings
    if settings.network == "auto":
        network = task.limits.allow_internet
    else:
        network = settings.network != "none"
    return SandboxSpec(
        task=task,
        run_id=settings.run_id,
        name=att.sandbox_name(),
        image=image,
        cpus=settings.cpus or task.limits.cpus,
        # A task that sets no memory limit (USACO) gets the default one: no agent is unbounded.
        memory_mb=settings.memory_mb or task.limits.memory_mb or settings.default_memory_mb,
        storage_mb=task.limits.storage_mb,
        network=network,
        env=dict(settings.secrets) | resolve_env(task.environment.env, settings.secrets, task.source, "environment"),
        labels={"cloudeval.run": settings.run_id, "cloudeval.task": task.task_id[:60],
                "cloudeval.benchmark": task.benchmark[:60]},
        environment=task.environment,
        options=options_from_settings(settings),
    )


def skip_reason(att: Attempt) -> str | None:
    """Why the attempt's sandbox cannot run its task (a skip, not an error); None when it can."""
    task, settings = att.task, att.settings
    if task.limits.gpus and "gpu" not in att.sandbox_cls.capabilities.names():
        return (f"{task.source}: the task asks for {task.limits.gpus} GPU(s) ([environment] gpus); "
                f"the {settings.sandbox!r} sandbox offers none")
    missing = att.fmt.requires & ~att.sandbox_cls.capabilities
    if missing:
        return (f"{task.format} tasks need a sandbox with {', '.join(missing.names())} "
                f"support (--sandbox=docker); {settings.sandbox!r} has none")
    return None


def run_attempt(att: Attempt, prepared: PreparedSandboxes | None = None) -> TaskResult:
    """Run the attempt and write its folder. Never raises except KeyboardInterrupt/SystemExit.

    ``prepared``: the worker's sandboxes prepared ahead; the one for this item is used when it was
    prepared for exactly this attempt's spec (else it is discarded and a sandbox starts as usual).
    """
    task, settings, red = att.task, att.settings, att.redactor
    task_dir = att.task_dir
    if task_dir.exists():  # an earlier errored or interrupted attempt: start clean
        shutil.rmtree(task_dir, ignore_errors=True)
    task_dir.mkdir(parents=True, exist_ok=True)
    mark_results_dir(settings.run_dir)  # agent-written files below: pytest must never collect them
    result = att.new_result()
    result.started_at = utcnow()
    t0 = time.monotonic()
    half = max(1024, settings.output_cap_bytes // 2)
    log = CappedBuffer(half, half)
    sandbox: Sandbox | None = None
    output: AgentOutput | None = None
    interrupted = False
    started = False
    try:
        reason = skip_reason(att)
        if reason is not None:
            result.outcome, result.verdict = "skipped", "SKIPPED"
            result.message = reason
            return result
        spec = sandbox_spec(att)
        taken = prepared.take(att.nodeid, spec) if prepared is not None else None
        if taken is not None and taken.note:
            log.write(f"[cloudeval: {taken.note}]\n".encode())
        if taken is not None and taken.sandbox is not None:
            sandbox = taken.sandbox
            spec = sandbox.spec
            result.metrics["sandbox.prepared_ahead"] = True
        else:
            sandbox = att.sandbox_cls(spec)
            if att.sandbox_cls.prepares_ahead:
                result.metrics["sandbox.prepared_ahead"] = False
        sandbox.start()
        started = True
        # The caps this attempt ran under, in its result (sandbox.json says how each was applied).
        result.metrics.update({"sandbox.memory_mb": spec.memory_mb,
                               "sandbox.copy_max_files": spec.options.copy_max_files})
        att.fmt.prepare(task, sandbox, settings)
        timeout = timeout_for(task, settings)
        ctx = AgentContext(task=task, format=att.fmt, sandbox=sandbox, settings=settings,
                           kwargs=settings.agent_kwargs, timeout_s=timeout, env=dict(settings.secrets), log=log)
        try:
            output = att.agent.solve(ctx)
        except AgentFailure as e:
            result.outcome, result.verdict, result.score = "failed", e.verdict, 0.0
            result.message = e.message
        else:
            # Nothing an untrusted agent started (daemons, setsid) may run on while its work is
            # judged. The oracle is the task's own reference, trusted like its tests (its services,
            # e.g. a server the verifier queries, keep running); --keep-agent-processes trusts all.
            if att.agent.trusted or settings.keep_agent_processes:
                result.metrics["sandbox.agent_processes"] = "kept"
            else:
                sandbox.stop_processes()
                result.metrics["sandbox.agent_processes"] = "stopped"
            _record_output(output, result, task_dir, red)
            judgement = att.fmt.judge(task, output, sandbox, settings, task_dir)
            result.outcome = "passed" if judgement.passed else "failed"
            result.verdict, result.score, result.message = judgement.verdict, judgement.score, judgement.message
            result.metrics.update(judgement.metrics)
    except InfrastructureError as e:
        att.lost = bool(getattr(e, "retryable", False))
        result.outcome, result.verdict, result.error_kind = "error", "ERROR", e.kind
        result.error = str(e)
        result.message = f"{e.kind} error: {e}"
    except BenchmarkError as e:
        result.outcome, result.verdict, result.error_kind = "error", "ERROR", "benchmark"
        result.error = result.message = str(e)
    except KeyboardInterrupt:
        interrupted = True
        result.outcome, result.verdict, result.error_kind = "error", "INTERRUPTED", "interrupted"
        result.error = result.message = "interrupted (Ctrl+C)"
        raise
    except Exception as e:  # noqa: BLE001 - a harness bug must not take the run down
        result.outcome, result.verdict, result.error_kind = "error", "ERROR", "internal"
        result.error = "".join(traceback.format_exception(type(e), e, e.__traceback__))[-6000:]
        result.message = f"internal error: {type(e).__name__}: {e}"
    finally:
        if sandbox is not None:
            if not interrupted and started:
                try:
                    atomic_write_json(task_dir / "sandbox.json", sandbox.describe())
                    att.fmt.collect(task, sandbox, settings, task_dir)
                except Exception as e:  # noqa: BLE001
                    log.write(f"\n[cloudeval: collecting logs failed: {e}]\n".encode())
            sandbox.close()
        att.record = _finish(result, t0, log, task_dir, red)
    return result


def _record_output(output: AgentOutput, result: TaskResult, task_dir: Path, red: Redactor) -> None:
    metrics = dict(output.metrics or {})
    result.tokens_in = _metric(metrics, "tokens_in", int)
    result.tokens_out = _metric(metrics, "tokens_out", int)
    result.cost_usd = _metric(metrics, "cost_usd", float)
    result.metrics.update({f"agent.{k}": v for k, v in metrics.items()
                           if isinstance(v, (int, float, str, bool)) or v is None})
    answer = output.answer
    if isinstance(answer, str):
        atomic_write_bytes(task_dir / "answer.txt", red.text(answer).encode())
    elif answer is not None:
        # Redacted before it is serialized: JSON escaping (\", \\, \u00f6) must not hide a secret.
        atomic_write_bytes(task_dir / "answer.json",
                           red.text(json.dumps(red.obj(answer), indent=2, default=str)).encode())


def _finish(result: TaskResult, t0: float, log: CappedBuffer, task_dir: Path, red: Redactor) -> dict[str, Any] | None:
    """Write agent.log and result.json; the redacted record written, None if writing failed."""
    result.duration_s = round(time.monotonic() - t0, 4)
    result.finished_at = utcnow()
    if result.score is None and result.outcome in ("failed",):
        result.score = 0.0
    result.message = red.text(result.message)
    if result.error:
        result.error = red.text(result.error)
    try:
        atomic_write_bytes(task_dir / "agent.log", red.bytes(log.getvalue()))
        # A safety net for files a format or sandbox wrote without redacting them on the way (names
        # and contents, any size, streamed); what cannot be redacted is removed, never kept.
        removed = redact_tree(task_dir, red)
        if removed:
            result.metrics["files_removed_unredacted"] = removed[:50]
        record = red.result(result.to_dict())
        atomic_write_json(task_dir / "result.json", record)
        return record
    except OSError as e:
        result.outcome, result.error_kind = "error", "results"
        result.error = result.message = f"cannot write results to {task_dir}: {e}"
        return None
