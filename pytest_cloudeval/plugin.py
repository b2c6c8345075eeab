"""The pytest plugin (entry point ``pytest11``): options, collection hooks, reports and the run summary.

Decides the role of this process: the controller (or a plain run) owns settings, the summary and
run.json; xdist workers receive settings from the controller and run tasks.
"""

from __future__ import annotations

import importlib
import signal
import threading
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from . import hookspecs
from .collect import BenchmarkFile, TaskErrored, TaskFailed, TaskFile, TaskItem, _BaseItem
from .crash import forget_junit_testcase, give_up, lost_attempt, requeue
from .errors import AgentSpecError
from .interrupts import InterruptGuard
from .layout import Roots, guard_conftests, is_results_dir, make_data_root
from .options import add_options
from .redact import STRUCTURED_FIELDS
from .report import format_summary
from .results import (
    atomic_write_json,
    finished_results,
    pack_task_dir,
    remove_temporaries,
    unpack_task_dir,
)
from .session import SESSION_KEY, CloudEvalSession
from .settings import CORE_OPTIONS, Settings, settings_from_config

ROOTS_KEY = pytest.StashKey[Roots]()
GUARD_KEY = pytest.StashKey[InterruptGuard]()
PYTEST_SESSION_KEY = pytest.StashKey[pytest.Session]()


# Subsystems that hook into the run; each imports its cloud SDK lazily, only when used.
SUBSYSTEM_PLUGINS = ("pytest_cloudeval.artifacts.plugin", "pytest_cloudeval.backends.plugin",
                     "pytest_cloudeval.sandbox.k8s_config")


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)
    from . import builtins

    if not pluginmanager.is_registered(builtins):
        pluginmanager.register(builtins, "cloudeval-builtins")
    for name in SUBSYSTEM_PLUGINS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if not e.name or not (name == e.name or name.startswith(e.name + ".")):
                raise  # a real import error inside the subsystem, not its absence
            continue
        if not pluginmanager.is_registered(module):
            pluginmanager.register(module, name)


def pytest_addoption(parser: pytest.Parser) -> None:
    # Subsystems (artifacts/, backends/) add their own tables from their plugin modules.
    group = parser.getgroup("cloudeval", "cloudeval: run agent benchmarks as tests")
    add_options(group, parser, CORE_OPTIONS)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    if not config.getoption("cloudeval_cleanup", default=False):
        return None
    from .cleanup import cleanup_all

    return cleanup_all(config)


def _roots(config: pytest.Config) -> Roots:
    """Which folders are data (benchmark, task or results roots); formats say which are theirs."""
    if ROOTS_KEY not in config.stash:
        early: list[Any] = []

        def formats() -> list[Any]:
            state = config.stash.get(SESSION_KEY, None)
            if state is not None:
                return list(state.formats().values())
            if not early:  # before configure: the formats of installed plugins
                early.extend(f for batch in config.hook.pytest_cloudeval_task_formats() for f in batch or [])
            return early

        config.stash[ROOTS_KEY] = Roots(formats)
    return config.stash[ROOTS_KEY]


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    # pytest imports conftests of the command-line folders (and their test* subfolders) before any
    # collection hook runs: a task folder's tests/conftest.py must not be among them (layout.py).
    guard_conftests(early_config.pluginmanager, _roots(early_config))


def pytest_configure(config: pytest.Config) -> None:
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and "cloudeval_settings" in workerinput:
        settings = Settings.from_dict(workerinput["cloudeval_settings"])
        resume = workerinput.get("cloudeval_resume", {})
    else:
        settings = settings_from_config(config)
        resume = {}
        if settings.resuming:
            remove_temporaries(settings.run_dir)  # half-written files of the killed run
            resume = finished_results(settings.run_dir)
            if not resume and not settings.run_dir.is_dir() and not settings.artifacts_url:
                raise pytest.UsageError(f"--resume {settings.run_id}: no such run in {settings.results_dir}")
        if threading.current_thread() is threading.main_thread():
            # Default SIGTERM skips pytest_unconfigure and leaks sandboxes and VMs; make it a Ctrl+C.
            signal.signal(signal.SIGTERM, signal.default_int_handler)
    session = CloudEvalSession(config, settings, resume)
    config.stash[SESSION_KEY] = session
    for fmt in session.formats().values():
        for name, text in fmt.markers.items():
            config.addinivalue_line("markers", f"{name}: {text}")
    config.pluginmanager.register(ReportHooks(session), "cloudeval-reports")
    if not config.option.collectonly and settings.agent:
        config.pluginmanager.register(PrepareAheadHooks(session), "cloudeval-prepare-ahead")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(XdistHooks(session), "cloudeval-xdist")
    if not session.is_worker and not config.option.collectonly and settings.agent:
        # An agent run: Ctrl+C/SIGTERM stop it once, later ones do not break the teardown that
        # removes sandboxes and writes run.json (interrupts.py). Plain test suites keep Python's way.
        guard = InterruptGuard()
        if guard.install():
            config.stash[GUARD_KEY] = guard
    if not config.option.collectonly and settings.agent:
        # The sandbox class (its SDK) loads while xdist starts the workers and they collect; an
        # unknown name is a usage error now, a missing SDK when the run loop starts (ReportHooks).
        session.load_sandbox_in_background()
    if not session.is_worker and not config.option.collectonly:
        if not settings.agent:
            session.sandbox_cls()  # an unknown sandbox or a missing SDK is a usage error, before any task
        else:
            try:
                session.agent()
            except AgentSpecError as e:
                raise pytest.UsageError(str(e)) from e
    config.hook.pytest_cloudeval_configure(session=session)


class XdistHooks:
    """Registered only when xdist is installed: ships settings and resume state to workers, and
    re-queues tasks whose local worker died (see ``crash.py``; cloud runs do that in their backend)."""

    def __init__(self, session: CloudEvalSession) -> None:
        self.session = session
        self.attempts: dict[str, int] = {}  # nodeid -> attempt number, for tasks lost with a worker
        self.finished: set[str] = set()  # nodeids whose final report (with its result) came back

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["cloudeval_settings"] = self.session.settings.to_dict()
        node.workerinput["cloudeval_resume"] = self.session.resume
        node.workerinput.setdefault("cloudeval_attempts", dict(self.attempts))

    def pytest_handlecrashitem(self, crashitem: str, report: Any, sched: Any) -> None:
        settings = self.session.settings
        if settings.cloud:
            return  # the cloud backend re-queues and relocates lost workers itself
        if crashitem in self.finished:
            # The worker died after the task's call report (its stored result) but before xdist heard
            # the end of its protocol, so xdist blames it: running it again would replace a stored result.
            report.outcome = "rerun"
            report.cloudeval_already_finished = True
            report.longrepr = f"{report.longrepr}: its result had already come back, not run again"
            return
        self.session.lost_attempts.append(lost_attempt(crashitem, report, self.attempts.get(crashitem, 1)))
        if requeue(crashitem, report, sched, self.attempts, settings.attempts):
            return
        tried = self.attempts.get(crashitem, 1)
        give_up(crashitem, report, settings, f"its worker died {tried} time(s), --attempts {settings.attempts}",
                tried, "worker")

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> Generator[None, None, None]:
        outcome = report.outcome
        if outcome != "rerun" and (report.when == "call" or outcome != "passed"):
            self.finished.add(report.nodeid)
        yield
        if outcome == "rerun" and not self.session.settings.cloud:
            forget_junit_testcase(report)

    def pytest_report_teststatus(self, report: Any) -> tuple[str, str, tuple[str, dict[str, bool]]] | None:
        if getattr(report, "cloudeval_already_finished", False) and not self.session.settings.cloud:
            return "", "", ("", {})  # not a test outcome: counted nowhere, printed nowhere
        if getattr(report, "outcome", None) == "rerun" and not self.session.settings.cloud:
            return "rerun", "R", ("RERUN", {"yellow": True})
        return None


class PrepareAheadHooks:
    """Where items run: the next item's sandbox comes up while the current item runs
    (``prepare_ahead.py``), and whatever was prepared and not used is removed at the session's end."""

    def __init__(self, session: CloudEvalSession) -> None:
        self.session = session

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, object, object]:
        state = self.session
        if state.prepared is not None:
            # xdist may hand this worker other items than the ones it was told of: their sandboxes go.
            state.prepared.discard_except({item.nodeid} | ({nextitem.nodeid} if nextitem is not None else set()))
        if isinstance(nextitem, TaskItem) and not item.session.shouldstop and not item.session.shouldfail:
            state.prepare_ahead(nextitem.task, nextitem.repeat, nextitem.nodeid)
        try:
            return (yield)
        finally:
            if state.prepared is not None:
                # Not taken by its item (resumed, skipped, interrupted): removed now.
                state.prepared.discard_except({nextitem.nodeid} if nextitem is not None else set())

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        # Before the controller's label sweep: no preparation may create a container after it.
        self.shutdown()

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.shutdown()

    def shutdown(self) -> None:
        state = self.session
        if state.prepared is not None:
            state.prepared.shutdown()
        cls = state._sandbox_cls
        if cls is not None:
            cls.session_teardown()


@pytest.hookimpl(tryfirst=True)
def pytest_collect_directory(path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """A benchmark, task or results root becomes one collector that never walks the folder."""
    kind, source, fmt = _roots(parent.config).classify(path)
    if kind == "benchmark":
        return make_data_root(parent, path, source, lambda root, src: BenchmarkFile.from_parent(root, path=src))
    if kind == "task":
        return make_data_root(parent, path, source,
                              lambda root, src: TaskFile.from_parent(root, path=src, fmt=fmt))
    if kind == "results":
        return make_data_root(parent, path, None, None)
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    # Results folders hold files agents wrote (conftest.py, test_*.py among them): never collected.
    if is_results_dir(collection_path):
        return True
    return None


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    state = config.stash[SESSION_KEY]
    state.task_items = sum(1 for i in items if isinstance(i, _BaseItem))
    if state.task_items and not config.option.collectonly and not state.settings.agent and not state.is_worker:
        raise pytest.UsageError("benchmark tasks were collected but no agent was given: add --agent SPEC "
                                "(a built-in: oracle, noop; or path/to/file.py:function)")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    state = item.config.stash.get(SESSION_KEY, None)
    if state is None:
        return report
    if isinstance(item, _BaseItem) and item.cloudeval_result is not None:
        report.cloudeval_result = item.cloudeval_result
        if state.is_worker and state.settings.ship_results and report.when != "teardown" \
                and not getattr(item, "_cloudeval_shipped", False) and not item.cloudeval_result.get("resumed"):
            report.cloudeval_files = pack_task_dir(state.settings, item.cloudeval_result)
            item._cloudeval_shipped = True  # type: ignore[attr-defined]
        if call.excinfo is not None and isinstance(call.excinfo.value, (TaskFailed, TaskErrored)):
            # A verdict, not a bug: the message says it all, a traceback into the plugin would not.
            report.longrepr = str(call.excinfo.value)
    red = state.redactor
    if red:
        report.sections = [(title, red.text(text)) for title, text in report.sections]
        if report.longrepr is not None and not isinstance(report.longrepr, tuple):
            report.longrepr = red.text(str(report.longrepr))
    return report


class ReportHooks:
    """Gathers every item's result on the controller (xdist ships ``cloudeval_result`` in reports)."""

    def __init__(self, session: CloudEvalSession) -> None:
        self.session = session

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.session.started = time.time()
        self.session.config.stash[PYTEST_SESSION_KEY] = session

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        state = self.session
        agent_run = not state.is_worker and not session.config.option.collectonly and bool(state.settings.agent)
        if agent_run:
            state.sandbox_loaded()  # a missing SDK is a usage error before any task runs
        try:
            return (yield)
        finally:
            guard = session.config.stash.get(GUARD_KEY, None)
            if guard is not None:
                guard.teardown = True  # from here on a signal must not break the teardown
            if agent_run:
                warm_reporters(session.config)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = getattr(report, "cloudeval_result", None)
        if data is not None:
            self.session.results[report.nodeid] = data
            files = getattr(report, "cloudeval_files", None)
            if files and not self.session.is_worker:
                task_dir = unpack_task_dir(self.session.settings, data, files, self.session.redactor)
                if task_dir is not None:
                    # The remote worker does not upload (no store credentials on VMs); the
                    # controller takes over as soon as the folder has arrived.
                    self.session.config.hook.pytest_cloudeval_task_finished(
                        result=data, task_dir=task_dir, settings=self.session.settings)


def warm_reporters(config: pytest.Config) -> None:
    """While xdist stops the workers, the reporters load what they need (``Reporter.warm_up``: the
    HTML template's engine and compiled template), in a thread: the run files are written sooner."""
    from .reporters.base import unique

    def warm() -> None:
        for reporter in unique(config.hook.pytest_cloudeval_reporters()):
            try:
                reporter.warm_up()
            except Exception:  # noqa: BLE001 - render() reports it, if it happens again
                pass

    threading.Thread(target=warm, name="cloudeval-reporters-warm", daemon=True).start()


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    state = config.stash.get(SESSION_KEY, None)
    if state is None:
        return None
    s = state.settings
    line = f"cloudeval: run {s.run_id}, agent {s.agent or '-'}, sandbox {s.sandbox}, results {s.run_dir}"
    if s.resuming:
        line += f" (resuming: {len(state.resume)} finished tasks kept)"
    return [line]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash.get(SESSION_KEY, None)
    if state is None:
        return
    if state.is_worker:
        _freeze_heap(session, state)
        return
    try:
        if state.results or (not session.config.option.collectonly
                             and any(state.settings.run_dir.glob("*/*/result.json"))):
            _finish_run(session, state, int(session.exitstatus))
    finally:
        # Also after Ctrl+C or a failing hook: whatever a crashed worker or an interrupted task left.
        _sweep_sandboxes(session, state)
        _freeze_heap(session, state)


def _freeze_heap(session: pytest.Session, state: CloudEvalSession) -> None:
    """At the end of an agent run's session, move every live object to the collector's permanent
    generation (``gc.freeze``). pytest then runs five full collections before the process exits
    (looking for unraisable exceptions): with the plugin's modules, SDKs and results frozen they
    walk only what is made after this point (~0.1 s less per process, on the path of the run's end,
    since the controller waits for each worker to exit). Nothing of the run is lost: every task
    has ended, and objects that hold sandboxes were closed explicitly (the cleanup does not rely on
    the collector). Plain test suites keep pytest's full sweep."""
    if not state.settings.agent or session.config.option.collectonly:
        return
    import gc

    gc.freeze()


def _finish_run(session: pytest.Session, state: CloudEvalSession, exitstatus: int) -> None:
    from .run_reports import finish_run  # the summary and every run file (run.json, report.html, ...)

    finish_run(state, exitstatus)


def _sweep_sandboxes(session: pytest.Session, state: CloudEvalSession) -> None:
    """Remove the run's leftover sandboxes by label: xdist's own sessionfinish (registered later,
    so run earlier) has stopped the workers, so this finds what a killed worker could not remove."""
    try:
        cls = state._sandbox_cls
        if cls is None and state._sandbox_loading is not None:
            cls = state.sandbox_loaded()  # the run ended (Ctrl+C) while the class was loading
        if cls is not None:
            cls.session_cleanup(state.settings.run_id)
    except Exception as e:  # noqa: BLE001 - cleanup must not hide the results
        session.config.issue_config_time_warning(pytest.PytestWarning(f"cloudeval cleanup: {e}"), stacklevel=1)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(SESSION_KEY, None)
    run = state.summary if state is not None else None
    if state is None or state.is_worker or run is None:
        return
    terminalreporter.section("cloudeval summary")
    lines = format_summary(run["summary"], where=str(state.settings.run_dir))
    for line in lines:
        terminalreporter.write_line(state.redactor.text(line))


def pytest_unconfigure(config: pytest.Config) -> None:
    """run.json must state the status the process really exits with: a later hook (a failed upload of
    the run files) can still change it after run.json was written, so check it once more here."""
    guard = config.stash.get(GUARD_KEY, None)
    state = config.stash.get(SESSION_KEY, None)
    session = config.stash.get(PYTEST_SESSION_KEY, None)
    try:
        if state is not None and not state.is_worker and state.summary is not None and session is not None:
            final = int(session.exitstatus)
            if state.summary.get("exit_status") != final:
                state.summary["exit_status"] = final
                atomic_write_json(state.settings.run_dir / "run.json",
                                  state.redactor.obj(state.summary, STRUCTURED_FIELDS))
    finally:
        if guard is not None:
            guard.restore()
