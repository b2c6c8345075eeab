"""A pytest plugin (``-p phase_timer``, with ``bench/`` on ``sys.path``) that times each phase of a task
attempt in the docker and k8s sandboxes, one JSON line per phase to ``$CLOUDEVAL_PHASE_LOG``.

Phases: start (k8s: create pod, wait running, learn user), each exec (labelled solve, verify or
other), copy out, read file, close. Used by ``bench/k8s_phases.py``; not part of the plugin.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from typing import Any

_lock = threading.Lock()


def _record(sandbox: str, phase: str, seconds: float) -> None:
    path = os.environ.get("CLOUDEVAL_PHASE_LOG")
    if not path:
        return
    line = json.dumps({"sandbox": sandbox, "phase": phase, "s": seconds, "pid": os.getpid(),
                       "end": time.time()}) + "\n"
    with _lock, open(path, "a", encoding="utf-8") as fh:
        fh.write(line)


def _label(args: tuple[Any, ...]) -> str:
    argv = args[0] if args else ""
    text = argv if isinstance(argv, str) else " ".join(str(a) for a in argv)
    if "solve.sh" in text:
        return "exec solve"
    if "test.sh" in text:
        return "exec verify"
    return "exec other"


def _wrap(cls: Any, method: str, sandbox: str, phase: Any) -> None:
    original = getattr(cls, method)

    @functools.wraps(original)
    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            _record(sandbox, phase(args) if callable(phase) else phase, time.perf_counter() - started)

    setattr(cls, method, timed)


def _wrap_function(module: Any, name: str, phase: str) -> None:
    original = getattr(module, name)

    @functools.wraps(original)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            _record("k8s", phase, time.perf_counter() - started)

    setattr(module, name, timed)


def _install() -> None:
    from pytest_cloudeval.sandbox import k8s_api, k8s_exec
    from pytest_cloudeval.sandbox.docker import DockerSandbox
    from pytest_cloudeval.sandbox.k8s import K8sSandbox

    for cls, name in ((DockerSandbox, "docker"), (K8sSandbox, "k8s")):
        _wrap(cls, "start", name, "start (total)")
        _wrap(cls, "exec", name, _label)
        _wrap(cls, "copy_out_report", name, "copy out")
        _wrap(cls, "read_file", name, "read file")
        _wrap(cls, "close", name, "close/delete")
        _wrap(cls, "stop_processes", name, "stop processes")
    _wrap(K8sSandbox, "_wait_running", "k8s", "  wait running")
    _wrap(K8sSandbox, "_learn_user_and_workdir", "k8s", "  learn user/workdir")
    from pytest_cloudeval.sandbox import k8s as k8s_module

    for module, name, phase in ((k8s_api, "namespace_of", "  namespace/config"),
                                (k8s_api, "ensure_deny_all", "  deny-all policy"),
                                (k8s_module, "image_for_pod", "  image for pod")):
        _wrap_function(module, name, phase)
    call = k8s_api.call

    def timed_call(what: str, fn: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return call(what, fn, **kwargs)
        finally:
            if what.startswith("create pod"):
                _record("k8s", "  create pod", time.perf_counter() - started)

    k8s_api.call = timed_call  # type: ignore[assignment]
    open_stream = k8s_exec.open_stream

    def timed_open(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return open_stream(*args, **kwargs)
        finally:
            _record("k8s", "  (per exec) open websocket", time.perf_counter() - started)

    k8s_exec.open_stream = timed_open  # type: ignore[assignment]


_install()


def pytest_sessionstart(session: Any) -> None:
    _record("session", "session start", 0.0)


def pytest_sessionfinish(session: Any) -> None:
    _record("session", "session finish (before plugin's)", 0.0)


def pytest_unconfigure(config: Any) -> None:
    _record("session", "unconfigure", 0.0)
