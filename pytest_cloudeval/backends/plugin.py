"""pytest hooks of the cloud backends (registered by the core plugin when this module exists).

Controller: ``--cloud NAME -n N`` turns xdist's N popen workers into N ``ssh=`` workers on VMs,
provisioned when xdist sets up its nodes; lost VMs' tasks run again elsewhere; every collected task
ends with an outcome; the VMs are deleted when the session ends (also on Ctrl+C and SIGTERM).
Worker (on a VM): keeps the VM's idle watchdog fed.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ..crash import forget_junit_testcase, give_up, lost_attempt, lost_result, requeue
from ..errors import BackendError, MissingExtraError
from ..options import add_options
from ..results import atomic_write_json, is_safe_name
from .base import Provider
from .options import BACKEND_OPTIONS, CloudSettings
from .transport import load_transport

if TYPE_CHECKING:  # the controller (bundles, pricing, wiring) is imported only where a cloud run starts:
    from .controller import CloudRun  # every worker loads this plugin, none needs it

CLOUD_KEY = pytest.StashKey["CloudRun"]()
ALLOWED_DIST = ("load", "worksteal")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cloudeval-cloud", "cloudeval cloud: run workers on cloud VMs (--cloud)")
    add_options(group, parser, BACKEND_OPTIONS)


def _say(config: pytest.Config) -> Callable[[str], None]:
    lock = threading.Lock()

    def say(line: str) -> None:
        terminal = config.pluginmanager.getplugin("terminalreporter")
        with lock:
            if terminal is not None:
                terminal.write_line(line)
            else:
                print(line, file=sys.stderr, flush=True)

    return say


def load_backend(config: pytest.Config, name: str) -> type[Provider]:
    loaders: dict[str, Any] = {}
    for batch in config.hook.pytest_cloudeval_backends():
        for key, loader in (batch or {}).items():
            loaders.setdefault(key, loader)
    if name not in loaders:
        raise pytest.UsageError(f"--cloud {name!r}: unknown cloud (known: {', '.join(sorted(loaders))})")
    try:
        cls: type[Provider] = loaders[name]()
    except MissingExtraError as e:
        raise pytest.UsageError(f"--cloud {name}: {e}") from e
    return cls


def _workers(config: pytest.Config) -> int:
    n = getattr(config.option, "numprocesses", None)
    if not isinstance(n, int) or n < 1:
        raise pytest.UsageError("--cloud needs the number of workers: add -n N (a number, e.g. -n 8)")
    return n


# -- controller commands that exit ----------------------------------------------------------------
@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    if hasattr(config, "workerinput") or config.getoption("cloudeval_cleanup", default=False):
        return None
    opts = CloudSettings.from_config(config, dict(os.environ))
    if not (opts.status or opts.dry_run or opts.check):
        return None
    if not opts.cloud:
        raise pytest.UsageError("--cloud-status, --cloud-dry-run and --cloud-check need --cloud NAME "
                                "(e.g. --cloud=gce)")
    from ..settings import settings_from_config

    settings = settings_from_config(config)
    cls = load_backend(config, opts.cloud)
    if opts.status:
        return _print_status(cls, config, settings)
    backend = cls.from_config(config, settings)
    plan = backend.plan(settings.run_id, _workers(config), opts.workers_per_vm, opts.keep_workers)
    for line in backend.describe(plan):
        print(line)
    if opts.check:
        return _print_check(backend, opts.cloud)
    print(f"cloudeval {opts.cloud}: dry run, nothing was provisioned")
    return 0


def _print_check(backend: Provider, cloud: str) -> int:
    """``--cloud-check``: the provider's checks (nothing is created); exit 1 when something is missing."""
    try:
        backend.preflight()
        problems = backend.check()
    except (BackendError, pytest.UsageError) as e:
        print(f"cloudeval --cloud-check FAILED: {e}")
        return 1
    for line in problems:
        print(f"cloudeval --cloud-check: {line}")
    if problems:
        print(f"cloudeval --cloud-check FAILED: {len(problems)} problem(s); nothing was created")
        return 1
    print(f"cloudeval --cloud-check: OK, checked {backend.check_summary()}; nothing was created")
    return 0


def _print_status(cls: type[Provider], config: pytest.Config, settings: Any) -> int:
    try:
        vms = cls.status(config, settings)
    except BackendError as e:
        print(f"cloudeval --cloud-status FAILED: {e}")
        return 1
    now = time.time()
    print(f"{'name':<40} {'zone':<16} {'status':<11} {'age':>8}  {'run id':<26} pool")
    for vm in vms:
        age = now - vm.created_at if vm.created_at else 0.0
        shown = f"{age / 3600:.1f}h" if age >= 3600 else f"{age / 60:.0f}m" if age >= 60 else f"{age:.0f}s"
        print(f"{vm.name:<40} {vm.zone:<16} {vm.status:<11} {shown:>8}  {vm.run_id:<26} {vm.pool}")
    print(f"{len(vms)} VM(s) carry the cloudeval label")
    return 0


# -- wiring ---------------------------------------------------------------------------------------
def pytest_configure(config: pytest.Config) -> None:
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and "cloudeval_cloud" in workerinput:
        from .watchdog import Heartbeat

        heartbeat = Heartbeat()
        heartbeat.start()
        config.stash[_HEARTBEAT_KEY] = heartbeat


_HEARTBEAT_KEY = pytest.StashKey[Any]()


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """On a VM, the agent code shipped from outside the rootdir sits inside the rootdir's copy:
    it is never collected, so a VM collects exactly what the same command collects locally."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None or "cloudeval_cloud" not in workerinput:
        return None
    from .wiring import AGENT_DIR, AGENT_PATH_DIR

    if collection_path.name in (AGENT_DIR, AGENT_PATH_DIR) and collection_path.parent == Path(config.rootpath):
        return True
    return None


def pytest_cloudeval_configure(session: Any) -> None:
    """Controller with ``--cloud``: plan the VMs and give xdist one ``ssh=`` spec per worker."""
    config: pytest.Config = session.config
    if session.is_worker or config.option.help or getattr(config.option, "version", False):
        return
    opts = CloudSettings.from_config(config, dict(os.environ))
    if not opts.cloud or config.option.collectonly:
        return
    if not config.pluginmanager.hasplugin("xdist"):
        raise pytest.UsageError("--cloud needs pytest-xdist: pip install pytest-xdist")
    workers = _workers(config)
    dist = config.option.dist
    if dist not in ("no", *ALLOWED_DIST):
        raise pytest.UsageError(f"--cloud works with --dist load or worksteal (lost tasks are re-queued), "
                                f"not --dist {dist}")
    from ..xdist_internals import require

    require()  # before anything is provisioned: a changed xdist internal is a clear error, not a hang
    cls = load_backend(config, opts.cloud)
    transport_cls = load_transport(config, cls.transport)
    settings = session.settings
    backend = cls.from_config(config, settings)
    backend.preflight()
    from .controller import CloudRun

    run = CloudRun(config, settings, backend, workers, opts.workers_per_vm, opts.keep_workers, _say(config),
                   transport_cls)
    config.option.tx = run.tx_specs()
    config.option.dist = "load" if dist == "no" else dist
    if config.option.maxworkerrestart is None:
        config.option.maxworkerrestart = str(2 * workers)
    config.stash[CLOUD_KEY] = run
    session.settings = settings.replace(cloud=opts.cloud, cloud_run=replace(opts, workers=workers))
    config.pluginmanager.register(CloudXdistHooks(run, session), "cloudeval-cloud-xdist")


@pytest.hookimpl(trylast=True)
def pytest_cloudeval_run_finished(summary: dict[str, Any], session: Any) -> None:
    run = session.config.stash.get(CLOUD_KEY, None)
    if run is None:
        return
    summary["cloud"] = run.cost_summary()
    notes = summary.setdefault("summary", {}).setdefault("notes", [])
    notes.append(run.cost_line())
    notes.extend(f"cloud {run.plan.cloud}: {note}" for note in run.notes)


def pytest_unconfigure(config: pytest.Config) -> None:
    heartbeat = config.stash.get(_HEARTBEAT_KEY, None)
    if heartbeat is not None:
        heartbeat.stop()
    run = config.stash.get(CLOUD_KEY, None)
    if run is None:
        return
    hooks = config.pluginmanager.get_plugin("cloudeval-cloud-xdist")
    if isinstance(hooks, CloudXdistHooks):
        hooks.restore()
    run.teardown()


# -- xdist hooks of a cloud run -------------------------------------------------------------------
class CloudXdistHooks:
    """Registered on the controller of a cloud run."""

    def __init__(self, run: CloudRun, session: Any) -> None:
        self.run = run
        self.session = session
        self.attempts: dict[str, int] = {}
        """nodeid -> number of the attempt that runs next (absent: 1)."""
        self.collected: list[str] | None = None
        self.finished: set[str] = set()
        self.reruns = 0
        self._restore_reltoroot: Callable[[], None] | None = None
        self._stopped_restarts = False

    # bring-up, when xdist is about to make its gateways ------------------------------------------------
    def pytest_xdist_setupnodes(self, config: pytest.Config, specs: list[Any]) -> None:
        from .. import xdist_internals
        from ..collect import _BaseItem  # noqa: F401 - the core must be importable before we provision
        from .wiring import option_arity, worker_args

        # xdist would rsync its own pytest to every non-popen host: the bundle already carries one.
        xdist_internals.skip_rsync(config)
        argv, warnings = worker_args([str(a) for a in config.invocation_params.args],
                                     [str(a) for a in config.args], self.run.layout, _remote_importable,
                                     option_arity(config))
        for line in warnings:
            self.run.say(f"cloudeval: {line}")
        # xdist maps local path arguments against its rsync roots (which we emptied); the VM's
        # paths were computed above, so hand xdist those instead.
        self._restore_reltoroot = xdist_internals.replace_reltoroot(argv)
        try:
            count = self.run.bring_up()
        except BackendError as e:
            self.run.teardown()
            pytest.exit(f"cloudeval --cloud={self.run.plan.cloud}: {e}", returncode=pytest.ExitCode.INTERNAL_ERROR)
        # Partial capacity: fewer slots. The scheduler counts nodes from ``tx``, the node manager
        # from ``specs``: shrink both, or the scheduler waits forever for the missing workers.
        del specs[count:]
        config.option.tx = list(config.option.tx)[:count]
        # xdist then opens the workers' gateways one after another; open them all at once instead.
        from .gateways import prestart

        manager = xdist_internals.node_manager(config)
        if manager is not None:
            # Each host's first worker takes over the gateway its code was shipped over.
            prestart(manager.group, specs, self.run.say,  # see xdist_internals 8.
                     opened=lambda spec: self.run.handed_over(manager.group, spec),
                     prepare=self.run.prepare_gateway)
            if self.run.handed_over_count:
                self.run.say(f"cloudeval {self.run.plan.cloud}: {self.run.handed_over_count} of {count} worker(s) "
                             f"start on the interpreter their code was shipped over")
        self.run.drop_handovers()

    def restore(self) -> None:
        if self._restore_reltoroot is not None:
            self._restore_reltoroot()
            self._restore_reltoroot = None

    @pytest.hookimpl(trylast=True)  # after the core's XdistHooks filled in the settings
    def pytest_configure_node(self, node: Any) -> None:
        from .wiring import worker_settings

        run = self.run
        workerinput = node.workerinput
        settings = workerinput.get("cloudeval_settings")
        if settings is not None:
            workerinput["cloudeval_settings"] = worker_settings(settings, run.layout, run.agent.remote_spec,
                                                                run.plan.cloud)
            run.backend.adjust_worker_settings(workerinput["cloudeval_settings"])
        workerinput["cloudeval_attempts"] = dict(self.attempts)
        if run.transport.popen_runs_elsewhere and getattr(node.gateway.spec, "popen", False):
            from ..xdist_internals import popen_runs_elsewhere

            popen_runs_elsewhere(node)
        vm = run.vm_of(run.slot_of(node.gateway.spec))
        workerinput["cloudeval_cloud"] = {"cloud": run.plan.cloud, "vm": vm.name if vm else ""}

    # lost workers ---------------------------------------------------------------------------------------
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        from ..xdist_internals import restore_popen

        restore_popen(node)
        if error is None or self.run.torn_down:
            return
        alias = self.run.slot_of(node.gateway.spec)
        target = self.run.relocate(alias) if alias else None
        if target is None and not self._stopped_restarts:
            self._stop_restarts(node.config, "no live VM is left to restart workers on")

    def _stop_restarts(self, config: pytest.Config, why: str) -> None:
        # xdist would restart the worker against a dead host (HostNotFound -> INTERNALERROR); ending
        # restarts instead lets the run finish, and the missing tasks are reported as errors.
        self._stopped_restarts = True
        self.run.say(f"cloudeval {self.run.plan.cloud}: {why}; stopping worker restarts")
        self.run.notes.append(why)
        from ..xdist_internals import stop_worker_restarts

        stop_worker_restarts(config)

    def pytest_handlecrashitem(self, crashitem: str, report: Any, sched: Any) -> None:
        if crashitem in self.finished:
            # Its result already came back: the VM died after the task's call report but before xdist
            # heard the end of its protocol, so xdist blames it. Running it again would replace a
            # stored result (the soak test caught this): drop xdist's synthetic failure instead.
            report.outcome = "rerun"
            report.cloudeval_already_finished = True
            report.longrepr = f"{report.longrepr}: its result had already come back, not run again"
            return
        limit = self.run.settings.attempts
        if self.session is not None:  # for the run report's timeline
            self.session.lost_attempts.append(lost_attempt(crashitem, report, self.attempts.get(crashitem, 1)))
        if not self._stopped_restarts and requeue(crashitem, report, sched, self.attempts, limit):
            self.reruns += 1
            return
        tried = self.attempts.get(crashitem, 1)
        why = ("no live VM was left to run it again" if self._stopped_restarts
               else f"lost with its worker {tried} time(s), --attempts {limit}")
        give_up(crashitem, report, self.run.settings, why, tried, "backend")

    def pytest_report_teststatus(self, report: Any) -> tuple[str, str, tuple[str, dict[str, bool]]] | None:
        if getattr(report, "cloudeval_already_finished", False):
            return "", "", ("", {})  # not a test outcome: counted nowhere, printed nowhere
        if getattr(report, "outcome", None) == "rerun":
            return "rerun", "R", ("RERUN", {"yellow": True})
        return None

    # bookkeeping of outcomes ---------------------------------------------------------------------------
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        if self.collected is None:
            self.collected = list(ids)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> Generator[None, None, None]:
        nodeid = report.nodeid
        result = getattr(report, "cloudeval_result", None)
        fixes: dict[str, Any] = {}
        if isinstance(result, dict):
            attempt = self.attempts.get(nodeid)
            if attempt is not None and result.get("attempt") != attempt:
                # Re-queued tasks may run on workers set up before the crash: the controller knows.
                fixes["attempt"] = attempt
            spec = self.run.settings.agent
            if spec and result.get("agent") == self.run.agent.remote_spec and spec != self.run.agent.remote_spec:
                fixes["agent"] = spec  # the agent's name as the user gave it, not its path on the VM
            result.update(fixes)
            if "attempt" in fixes:
                report.user_properties = [(k, fixes["attempt"] if k == "attempt" else v)
                                          for k, v in report.user_properties]
        outcome = report.outcome
        if outcome != "rerun" and (report.when == "call" or outcome != "passed"):
            self.finished.add(nodeid)
        yield
        if outcome == "rerun":
            forget_junit_testcase(report)
        elif fixes and isinstance(result, dict) and getattr(report, "cloudeval_files", None):
            _patch_stored_result(self.session.settings, result, fixes)
        return None

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.collected is None or exitstatus == pytest.ExitCode.INTERRUPTED:
            return
        missing = [nodeid for nodeid in self.collected if nodeid not in self.finished]
        if not missing:
            return
        self.run.notes.append(f"{len(missing)} task(s) never got a result (counted as errors)")
        for nodeid in missing:
            _report_missing(session.config, nodeid, self.run)
        if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _remote_importable(name: str) -> bool:
    """Whether ``-p name`` can load on the VM: pytest's own plugins and the shipped packages."""
    from _pytest.config import builtin_plugins

    from .bundle import runtime_distributions, top_level_modules

    if name in builtin_plugins:
        return True
    shipped = {m for dist in runtime_distributions() for m in top_level_modules(dist)}
    return name.split(".")[0] in shipped


def _patch_stored_result(settings: Any, result: dict[str, Any], fixes: dict[str, Any]) -> None:
    """Apply the controller's corrections to the result.json that came back from the VM."""
    parts = str(result.get("key", "")).split("/")
    if len(parts) != 2 or not all(is_safe_name(p) for p in parts):
        return
    path = Path(settings.results_dir) / settings.run_id / parts[0] / parts[1] / "result.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    data.update(fixes)
    atomic_write_json(path, data)


def _report_missing(config: pytest.Config, nodeid: str, run: CloudRun) -> None:
    fspath, _, name = nodeid.partition("::")
    message = (f"no result: this task was lost with its worker and could not be run again "
               f"(--cloud={run.plan.cloud}, lost VMs: {', '.join(sorted(run.dead)) or 'none'})")
    report = pytest.TestReport(nodeid=nodeid, location=(fspath, None, name or fspath), keywords={},
                               outcome="failed", longrepr=message, when="setup")
    report.cloudeval_result = lost_result(nodeid, run.settings, message, 0, "backend")  # type: ignore[attr-defined]
    config.hook.pytest_runtest_logreport(report=report)
