"""Per-process state of a cloudeval run: settings, registries, the agent, and what ran.

Both the controller and xdist workers have one; workers get their ``Settings`` from the controller.
"""

from __future__ import annotations

import dataclasses
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from .agents.base import Agent
from .errors import AgentSpecError, MissingExtraError
from .layout import mark_results_dir
from .model import Task, TaskResult
from .prepare_ahead import PreparedSandboxes
from .redact import Redactor
from .results import atomic_write_json, result_dirname
from .runner import Attempt, run_attempt, sandbox_spec, skip_reason
from .sandbox.base import Sandbox
from .sandbox.config import options_from_settings
from .settings import Settings
from .tasks.base import BrokenTask, TaskFormat

SESSION_KEY = pytest.StashKey["CloudEvalSession"]()


class CloudEvalSession:
    def __init__(self, config: pytest.Config, settings: Settings, resume: dict[str, dict[str, Any]]) -> None:
        self.config = config
        self.settings = settings
        self.resume = resume
        self.redactor = Redactor(settings.redact_values)
        self.results: dict[str, dict[str, Any]] = {}  # nodeid -> result (controller view)
        self.task_items = 0
        self._formats: dict[str, TaskFormat] | None = None
        self._agent: Agent | None = None
        self._sandbox_cls: type[Sandbox] | None = None
        self._sandbox_lock = threading.Lock()
        self._sandbox_loading: threading.Thread | None = None
        self._markers: set[str] = set()
        self.is_worker = hasattr(config, "workerinput")
        self.started = 0.0
        self.summary: dict[str, Any] | None = None
        # End of the run (controller): attempts lost with their worker, and the run files reporters wrote.
        self.lost_attempts: list[dict[str, Any]] = []
        self.report_files: list[Any] = []  # reporters.base.ReportFile, uploaded by the store
        self.prepared: PreparedSandboxes | None = None
        """Sandboxes of the next items, prepared ahead where they run (``prepare_ahead.py``)."""

    # -- registries ---------------------------------------------------------------------------
    def formats(self) -> dict[str, TaskFormat]:
        if self._formats is None:
            found: dict[str, TaskFormat] = {}
            for batch in self.config.hook.pytest_cloudeval_task_formats():
                for fmt in batch or []:
                    found.setdefault(fmt.name, fmt)  # earlier (user) implementations win
            self._formats = found
        return self._formats

    def _sandbox_loader(self) -> Any:
        loaders: dict[str, Any] = {}
        for batch in self.config.hook.pytest_cloudeval_sandboxes():
            for name, loader in (batch or {}).items():
                loaders.setdefault(name, loader)
        name = self.settings.sandbox
        if name not in loaders:
            raise pytest.UsageError(f"--sandbox {name!r}: unknown sandbox (known: {', '.join(sorted(loaders))})")
        return loaders[name]

    def sandbox_cls(self) -> type[Sandbox]:
        """The ``--sandbox`` class, loaded once (thread-safe: waits for a load in the background)."""
        with self._sandbox_lock:
            if self._sandbox_cls is None:
                loader = self._sandbox_loader()
                try:
                    self._sandbox_cls = loader()
                except MissingExtraError as e:
                    raise pytest.UsageError(f"--sandbox {self.settings.sandbox}: {e}") from e
            return self._sandbox_cls

    def load_sandbox_in_background(self) -> None:
        """Load the sandbox class (its SDK's import: ~0.3 s of CPU for docker) and let it warm up
        (``Sandbox.warm_up``) in a thread, so that work overlaps the start of the workers and the
        collection instead of delaying the first attempt. An unknown name is a usage error at once;
        a failing load is reported by the next ``sandbox_cls()`` call (see ``sandbox_loaded``)."""
        self._sandbox_loader()  # cheap: no import, just the names
        thread = threading.Thread(target=self._load_and_warm, name="cloudeval-sandbox-load", daemon=True)
        self._sandbox_loading = thread
        thread.start()

    def _load_and_warm(self) -> None:
        try:
            self.sandbox_cls().warm_up(options_from_settings(self.settings))
        except Exception:  # noqa: BLE001 - sandbox_loaded() or the first attempt reports it
            pass

    def sandbox_loaded(self) -> type[Sandbox]:
        """``sandbox_cls()`` once the background load (if any) has ended: its error, if it failed."""
        thread = self._sandbox_loading
        if thread is not None:
            thread.join()
        return self.sandbox_cls()

    def agent(self) -> Agent:
        if self._agent is None:
            spec = self.settings.agent
            if not spec:
                raise pytest.UsageError("no agent: give --agent SPEC (e.g. --agent oracle)")
            try:
                agent = self.config.hook.pytest_cloudeval_make_agent(spec=spec, settings=self.settings)
            except AgentSpecError as e:
                raise pytest.UsageError(str(e)) from e
            if agent is None:
                raise pytest.UsageError(f"--agent {spec!r}: no plugin could load it")
            self._agent = agent
        return self._agent

    def register_marker(self, name: str) -> None:
        if name not in self._markers:
            self._markers.add(name)
            self.config.addinivalue_line("markers", f"{name}: benchmark tasks tagged {name!r} (cloudeval)")

    # -- running (where the item runs) --------------------------------------------------------
    def worker_name(self) -> str:
        wid = getattr(self.config, "workerinput", {}).get("workerid", "main")
        host = socket.gethostname()
        return f"{wid}@{host}"

    def _stored(self, task: Task, repeat: int) -> dict[str, Any] | None:
        """The finished result ``--resume`` keeps for this task and repeat (None: run it)."""
        return self.resume.get(f"{task.benchmark}/{result_dirname(task.task_id, repeat, self.settings.repeat)}")

    def _first_attempt(self, task: Task, repeat: int, nodeid: str) -> Attempt:
        settings = self.settings.replace(worker=self.worker_name())
        return Attempt(task=task, fmt=self.formats()[task.format], agent=self.agent(),
                       agent_name=settings.agent or "", sandbox_cls=self.sandbox_cls(), settings=settings,
                       redactor=self.redactor, repeat=repeat, nodeid=nodeid,
                       attempt=self._attempt_number(nodeid))

    def prepare_ahead(self, task: Task, repeat: int, nodeid: str) -> bool:
        """Start bringing up, in the background, the sandbox the first attempt of this (next) item
        will take: only for sandboxes that prepare ahead, never for an item ``--resume`` keeps or one
        that will be skipped. True when a preparation started."""
        if not self.settings.agent or self._stored(task, repeat) is not None:
            return False
        try:
            cls = self.sandbox_cls()
            if not cls.prepares_ahead:
                return False
            attempt = self._first_attempt(task, repeat, nodeid)
            if skip_reason(attempt) is not None:
                return False
            spec = sandbox_spec(attempt)
        except Exception:  # noqa: BLE001 - the attempt itself reports it, when it runs
            return False
        if self.prepared is None:
            self.prepared = PreparedSandboxes()
        return self.prepared.prepare(nodeid, cls(spec))

    def run_item(self, task: Task, repeat: int, nodeid: str) -> dict[str, Any]:
        stored = self._stored(task, repeat)
        if stored is not None:
            kept = dict(stored)
            kept["resumed"] = True
            return kept
        attempt = self._first_attempt(task, repeat, nodeid)
        settings = attempt.settings
        result = run_attempt(attempt, self.prepared)
        # A retry gets a fresh sandbox: only the first attempt takes the one prepared ahead.
        while attempt.lost and attempt.attempt < settings.attempts:
            # The sandbox went away under the attempt (an evicted pod...): not a verdict, run it again.
            attempt = dataclasses.replace(attempt, attempt=attempt.attempt + 1, lost=False, record=None)
            result = run_attempt(attempt)
        data = attempt.record if attempt.record is not None else self.redactor.result(result.to_dict())
        self.config.hook.pytest_cloudeval_task_finished(result=data, task_dir=attempt.task_dir, settings=settings)
        return data

    def _attempt_number(self, nodeid: str) -> int:
        attempts = getattr(self.config, "workerinput", {}).get("cloudeval_attempts", {})
        return int(attempts.get(nodeid, 1))

    def record_broken(self, broken: BrokenTask, repeat: int, nodeid: str) -> dict[str, Any]:
        settings = self.settings
        dirname = result_dirname(broken.task_id, repeat, settings.repeat)
        text = f"{broken.source}: {broken.message}"
        result = TaskResult(task_id=broken.task_id, benchmark=broken.benchmark, agent=settings.agent or "",
                            outcome="skipped" if broken.skip else "error",
                            verdict="UNSUPPORTED" if broken.skip else "BAD_TASK",
                            error_kind=None if broken.skip else "benchmark", error=None if broken.skip else text,
                            message=text, key=f"{broken.benchmark}/{dirname}",
                            nodeid=nodeid, run_id=settings.run_id, worker=self.worker_name(),
                            repeat=repeat, sandbox=settings.sandbox)
        data = self.redactor.result(result.to_dict())
        mark_results_dir(Path(settings.run_dir))
        task_dir = Path(settings.run_dir) / broken.benchmark / dirname
        atomic_write_json(task_dir / "result.json", data)
        return data
