"""Extension points of pytest-cloudeval (``pytest_cloudeval_*``), registered in ``pytest_addhooks``.

Built-ins implement them as ``trylast`` hooks, so a plugin or conftest can add formats, sandboxes,
agents, stores and clouds, or override the built-ins.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .agents.base import Agent
    from .settings import Settings

hookspec = pluggy.HookspecMarker("pytest")


@hookspec
def pytest_cloudeval_task_formats() -> list[Any]:
    """Return TaskFormat instances; ``benchmark.toml``'s ``format`` selects one by its ``name``."""


@hookspec
def pytest_cloudeval_sandboxes() -> dict[str, Any]:
    """Return ``{name: loader}``; ``loader()`` imports lazily and returns a Sandbox subclass."""


@hookspec(firstresult=True)
def pytest_cloudeval_make_agent(spec: str, settings: Settings) -> Agent | None:
    """Resolve an ``--agent`` spec to an Agent, or None to let the next implementation try."""


@hookspec
def pytest_cloudeval_result_stores() -> dict[str, Any]:
    """Return ``{url scheme: loader}``; ``loader()`` returns a ResultStore subclass."""


@hookspec
def pytest_cloudeval_backends() -> dict[str, Any]:
    """Return ``{cloud name: loader}``; ``loader()`` returns a ``backends.base.Provider`` subclass."""


@hookspec
def pytest_cloudeval_transports() -> dict[str, Any]:
    """Return ``{transport name: loader}``; ``loader()`` returns a ``backends.transport.Transport``
    subclass. A provider names the transport of its hosts in its ``transport`` class attribute."""


@hookspec
def pytest_cloudeval_configure(session: Any) -> None:
    """Called at the end of pytest_configure with the CloudEvalSession (controller and workers).

    Stores and backends set themselves up here (e.g. add stored results to ``session.resume``).
    """


@hookspec
def pytest_cloudeval_task_finished(result: dict[str, Any], task_dir: Path, settings: Settings) -> None:
    """Called where the task ran, after its folder and result.json are written (uploads hook here).

    For remote workers (``settings.ship_results``) it is called on the controller instead, once the
    shipped folder has been written there.
    """


@hookspec
def pytest_cloudeval_run_finished(summary: dict[str, Any], run_dir: Path, settings: Settings) -> None:
    """Called on the controller after run.json is written; add to ``summary`` before it is printed."""
