"""Every private pytest-xdist (and pytest) internal the plugin touches, in one place, checked.

xdist has no public API for what cloud workers need, so a few internals are patched or read. Each
one is wrapped here with the reason it exists; ``problems()`` checks that every one still exists
with the expected shape, and ``require()`` turns a broken one into a clear error at configure time
(``--cloud`` runs; local runs only lose the JUnit clean-up, see ``forget_junit_testcase``).
``tests/test_xdist_internals.py`` runs the check in CI, so an xdist upgrade that breaks one fails
the build instead of a user's run.

Checked against: pytest-xdist 3.8.0 and pytest 8.x (the versions installed by ``setup-dev.sh``);
the ``make_reltoroot`` patch was written for xdist 3.5 and later (older releases lack it).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import pytest

CHECKED_XDIST = "3.8.0"


def _source(obj: Any) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        return ""


def _params(fn: Any) -> list[str]:
    try:
        return list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return []


def problems() -> list[str]:
    """What no longer matches in the installed xdist and pytest (empty when all is well)."""
    found: list[str] = []
    try:
        import xdist
        import xdist.dsession as dsession
        import xdist.newhooks as newhooks
        import xdist.workermanage as workermanage
    except ImportError as e:
        return [f"pytest-xdist cannot be imported: {e}"]
    version = getattr(xdist, "__version__", "?")

    # 1. make_reltoroot(roots, args): maps the controller's path arguments onto the rsync roots of
    #    non-popen workers. Cloud workers get no rsync (the bundle carries the code), so their
    #    argv (computed by wiring.worker_args) replaces its result for the run.
    fn = getattr(workermanage, "make_reltoroot", None)
    if fn is None:
        found.append("xdist.workermanage.make_reltoroot is gone")
    elif _params(fn) != ["roots", "args"]:
        found.append(f"xdist.workermanage.make_reltoroot takes {_params(fn)}, not ['roots', 'args']")
    elif "make_reltoroot(" not in _source(workermanage.WorkerController.setup):
        found.append("xdist.workermanage.WorkerController.setup no longer calls make_reltoroot")
    # 2. NodeManager.roots: the folders xdist rsyncs to every non-popen host (its own pytest among
    #    them). Emptied for cloud runs: the shipped runtime bundle already carries them.
    if "self.roots" not in _source(workermanage.NodeManager.__init__):
        found.append("xdist.workermanage.NodeManager no longer sets self.roots")
    # 3. DSession._max_worker_restart: set to 0 when no live host is left, so xdist stops
    #    restarting workers against a dead host (HostNotFound would end the run in INTERNALERROR).
    if "self._max_worker_restart" not in _source(dsession.DSession.worker_errordown):
        found.append("xdist.dsession.DSession.worker_errordown no longer reads self._max_worker_restart")
    # 4. Hooks the plugin implements, with the arguments it takes.
    for name, args in (("pytest_xdist_setupnodes", ["config", "specs"]),
                       ("pytest_configure_node", ["node"]),
                       ("pytest_testnodedown", ["node", "error"]),
                       ("pytest_handlecrashitem", ["crashitem", "report", "sched"]),
                       ("pytest_xdist_node_collection_finished", ["node", "ids"])):
        spec = getattr(newhooks, name, None)
        if spec is None:
            found.append(f"xdist hook {name} is gone")
        elif _params(spec) != args:
            found.append(f"xdist hook {name} takes {_params(spec)}, not {args}")
    # 5. Scheduler.mark_test_pending(item): re-queues a task lost with its worker (crash.py).
    from xdist.scheduler import LoadScheduling, WorkStealingScheduling

    for cls in (LoadScheduling, WorkStealingScheduling):
        if _params(getattr(cls, "mark_test_pending", None)) != ["self", "item"]:
            found.append(f"xdist.scheduler.{cls.__name__}.mark_test_pending(item) is gone")
    # 6. pytest's LogXML.node_reporters(_ordered): a re-queued task's synthetic crash report
    #    opened a nameless JUnit testcase, dropped again (crash.forget_junit_testcase).
    from _pytest import junitxml

    if not hasattr(junitxml, "xml_key") or "self.node_reporters_ordered" not in _source(junitxml.LogXML.__init__) \
            or "self.node_reporters" not in _source(junitxml.LogXML.__init__):
        found.append("pytest's junitxml.LogXML no longer keeps node_reporters / node_reporters_ordered")
    # 7. WorkerController.setup hands every ``popen`` worker the controller's sys.path, sent after
    #    pytest_configure_node: a transport whose popen interpreter runs elsewhere (``kubectl
    #    exec``) has its spec marked non-popen in that hook (see ``popen_runs_elsewhere``).
    setup = _source(workermanage.WorkerController.setup)
    marker = "change_sys_path = _sys_path if self.gateway.spec.popen else None"
    if marker not in setup or setup.find("pytest_configure_node") > setup.find(marker):
        found.append("xdist.workermanage.WorkerController.setup no longer decides the worker's sys.path "
                     "by spec.popen after pytest_configure_node")
    # 8. NodeManager.group: the execnet group whose makegateway(spec) setup_node calls. Cloud runs
    #    open every worker's gateway in it at once beforehand (backends/gateways.py): xdist would
    #    open them one after another.
    if "self.group.makegateway(spec)" not in _source(getattr(workermanage.NodeManager, "setup_node", None)):
        found.append("xdist.workermanage.NodeManager.setup_node no longer calls self.group.makegateway(spec)")
    # 9. execnet's Group._gateways, Group._register(gateway), Group.allocate_id(spec) and
    #    Gateway._group: backends/gateways.adopt moves the gateway the code was shipped over into
    #    the node manager's group as a worker's (one ssh login and Python start less per host).
    import execnet.gateway
    import execnet.multi

    if "self._gateways" not in _source(execnet.multi.Group.__init__) \
            or _params(getattr(execnet.multi.Group, "_register", None)) != ["self", "gateway"] \
            or _params(getattr(execnet.multi.Group, "allocate_id", None)) != ["self", "spec"] \
            or "gateway._group = self" not in _source(execnet.multi.Group._register):
        found.append(f"execnet {getattr(execnet, '__version__', '?')}: Group._gateways/_register/allocate_id "
                     f"changed (backends/gateways.adopt relies on them)")
    return [f"{p} (pytest-xdist {version}; checked against {CHECKED_XDIST})" for p in found]


def require() -> None:
    """Raise a clear error naming what changed when an internal the plugin needs is broken."""
    found = problems()
    if found:
        raise pytest.UsageError("--cloud: this pytest-xdist/pytest version changed internals the plugin "
                                  "relies on (pin pytest-xdist==" + CHECKED_XDIST + " or update "
                                  "pytest_cloudeval/xdist_internals.py): " + "; ".join(found))


# -- the patches themselves ------------------------------------------------------------------------
def replace_reltoroot(argv: Sequence[str]) -> Callable[[], None]:
    """Make xdist hand every non-popen worker ``argv`` (see 1.); returns the undo."""
    import xdist.workermanage as workermanage

    original = workermanage.make_reltoroot
    workermanage.make_reltoroot = lambda roots, args: list(argv)

    def restore() -> None:
        workermanage.make_reltoroot = original

    return restore


def node_manager(config: pytest.Config) -> Any:
    """xdist's NodeManager of this run (``dsession.nodemanager``), or None."""
    return getattr(config.pluginmanager.getplugin("dsession"), "nodemanager", None)


def skip_rsync(config: pytest.Config) -> None:
    """No rsync roots for this run's workers (see 2.)."""
    manager = node_manager(config)
    if manager is None or not hasattr(manager, "roots"):
        raise pytest.UsageError("--cloud: xdist's node manager has no rsync roots to replace "
                                  f"(checked against pytest-xdist {CHECKED_XDIST})")
    manager.roots = []


def stop_worker_restarts(config: pytest.Config) -> None:
    """No more worker restarts in this run (see 3.)."""
    dsession = config.pluginmanager.getplugin("dsession")
    if dsession is not None:
        dsession._max_worker_restart = 0


def popen_runs_elsewhere(node: Any) -> None:
    """Call from ``pytest_configure_node``: this ``popen`` worker's interpreter is on another host,
    so it keeps its own sys.path instead of the controller's (see 7.). xdist restarts a lost worker
    with this very spec object: ``restore_popen`` must undo this first (``pytest_testnodedown``)."""
    node.gateway.spec.popen = False
    node.gateway.spec.cloudeval_popen = True


def restore_popen(node: Any) -> None:
    """Undo ``popen_runs_elsewhere`` on a worker that went down, so xdist's restart (which reuses the
    spec) makes a popen gateway again instead of failing with "no gateway type found"."""
    spec: Any = getattr(getattr(node, "gateway", None), "spec", None)
    if spec is not None and getattr(spec, "cloudeval_popen", False):
        spec.popen = True


def junit_reporters(config: pytest.Config) -> tuple[dict[Any, Any], list[Any]] | None:
    """pytest's JUnit reporters by (nodeid, node) and in order (see 6.), or None without --junitxml."""
    from _pytest.junitxml import xml_key

    xml = config.stash.get(xml_key, None)
    reporters = getattr(xml, "node_reporters", None)
    ordered = getattr(xml, "node_reporters_ordered", None)
    if reporters is None or ordered is None:
        return None
    return reporters, ordered
