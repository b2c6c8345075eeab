"""Frozen data types that cross module boundaries: tasks, agent outputs, judgements and task results.

Only primitives cross execnet, so results have ``to_dict``/``from_dict``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUTCOMES = ("passed", "failed", "error", "skipped")
DEFAULT_AGENT_TIMEOUT_S = 2700.0


@dataclass(frozen=True)
class Limits:
    """Resource limits of one task; ``None`` means "not set by the task" (options or defaults apply)."""

    agent_timeout_s: float | None = None
    verifier_timeout_s: float | None = None
    cpus: float | None = None
    memory_mb: int | None = None
    storage_mb: int | None = None
    allow_internet: bool = True
    # Per-test limits of a judged submission (USACO): seconds and megabytes.
    time_limit_s: float | None = None
    test_memory_mb: int | None = None
    gpus: int | None = None


@dataclass(frozen=True)
class TaskEnvironment:
    """Where a task runs, as the task declares it; a sandbox turns it into something it can run.

    The format fills this in at collection (typed, never read from ``Task.private`` by key); the
    runner and the sandboxes read it. ``image`` and ``build_context`` may both be set (Terminal-Bench
    2.0 names a prebuilt image and ships ``environment/``): the sandbox decides, by its options, to use
    the image as given, pull it, or build the context.
    """

    image: str | None = None
    """A prebuilt image reference (``[environment] docker_image``); None: build, or the sandbox default."""
    build_context: Path | None = None
    """A host folder with a Dockerfile (Harbor's ``environment/``), or None."""
    dockerfile: str = "Dockerfile"
    """The Dockerfile's path relative to ``build_context``."""
    build_timeout_s: float | None = None
    workdir: str | None = None
    """Where agents work; None means the image's own WORKDIR (Harbor's rule)."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Task variables every command in the sandbox gets. Values may be ``${VAR}`` / ``${VAR:-default}``
    templates (Harbor's syntax): the runner resolves them where the task runs, against the variables
    the user passed (``--secrets-env``/``--pass-env``), never the host's whole environment."""
    agent_user: str | None = None
    """The user agents run as (None: the image's default user)."""


@dataclass(frozen=True)
class Task:
    """One benchmark task, as collected. Identical on every worker (collection is deterministic)."""

    benchmark: str
    task_id: str
    format: str
    source: Path
    """The file or folder that defines the task (named in every error about it)."""
    root: Path
    """The benchmark's folder."""
    instruction: str
    agent_input: Mapping[str, Any] = field(compare=False)
    """The fields a HAL-style agent receives: the task without its ground truth."""
    limits: Limits = field(default_factory=Limits)
    environment: TaskEnvironment = field(default_factory=TaskEnvironment)
    markers: tuple[str, ...] = ()
    private: Any = field(default=None, compare=False)
    """Format-specific data the agent must not see (ground truth, hidden tests, folders): a frozen
    dataclass of the format's own (e.g. ``HarborData``, ``UsacoData``), read only by that format."""


@dataclass(frozen=True)
class AgentOutput:
    """What an agent produced: its answer (format-specific) and metrics (tokens, cost, ...)."""

    answer: Any
    metrics: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Judgement:
    """The grader's decision on one attempt."""

    passed: bool
    score: float
    verdict: str
    message: str = ""
    report: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class TaskResult:
    """The record written to ``result.json``: the single truth about one attempt of one task."""

    task_id: str
    benchmark: str
    agent: str
    outcome: str
    verdict: str
    score: float | None = None
    duration_s: float = 0.0
    started_at: str = ""
    finished_at: str = ""
    worker: str = ""
    attempt: int = 1
    repeat: int = 1
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None
    error: str | None = None
    error_kind: str | None = None
    message: str = ""
    key: str = ""
    nodeid: str = ""
    run_id: str = ""
    sandbox: str = ""
    limit_multiplier: float = 1.0
    metrics: dict[str, Any] = field(default_factory=dict)
    resumed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskResult:
        names = {f.name for f in dataclasses.fields(cls)}
        missing = {"task_id", "benchmark", "agent", "outcome", "verdict"} - set(data)
        if missing:
            raise ValueError(f"result is missing {sorted(missing)}")
        if data["outcome"] not in OUTCOMES:
            raise ValueError(f"result has unknown outcome {data['outcome']!r}")
        return cls(**{k: v for k, v in data.items() if k in names})
