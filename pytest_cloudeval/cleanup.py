"""``pytest --cleanup``: remove every sandbox and cloud worker this plugin labeled, for killed runs.

Scoped to one run whenever a run id is given from any source (``--run-id``, ``CLOUDEVAL_RUN_ID``, the
``cloudeval_run_id`` ini key, ``--resume``): other runs may be going on on the same engine or project.
Only a command with no run id at all sweeps every cloudeval sandbox, and only the sandbox kinds it
may mean: ``--cleanup --cloud NAME`` without a run id sweeps that cloud (every run's or one pool's
workers), not the local engine's sandboxes of every run, unless ``--sandbox KIND`` names one.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import pytest

from .errors import CloudEvalError
from .options import resolve
from .settings import CORE_OPTIONS, settings_from_config


def cleanup_run_id(config: pytest.Config) -> str | None:
    """The run id the user named (CLI > environment > ini, or ``--resume``), None if none was named.

    ``Settings.run_id`` cannot be used: it is a fresh id when none is given, which would sweep nothing.
    """
    options = {opt.dest: opt for opt in CORE_OPTIONS}
    env = dict(os.environ)
    resume = resolve(config, options["cloudeval_resume"], env)
    run_id = resolve(config, options["cloudeval_run_id"], env)
    if resume and run_id and resume != run_id:
        raise pytest.UsageError(f"--cleanup: --resume {resume} and run id {run_id} disagree: give one")
    return resume or run_id or None


def cleanup_all(config: pytest.Config) -> int:
    """Sweep every registered sandbox kind and cloud backend; report what failed; exit code."""
    config.pluginmanager.hook.pytest_cloudeval_sandboxes  # noqa: B018 - hooks are registered by now
    settings = settings_from_config(config)
    run_id = cleanup_run_id(config)
    print(f"cloudeval --cleanup: run {run_id}" if run_id else "cloudeval --cleanup: every run (no run id given)")
    failures: list[str] = []
    loaders: dict[str, Any] = {}
    for batch in config.hook.pytest_cloudeval_sandboxes():
        for name, loader in (batch or {}).items():
            loaders.setdefault(name, loader)
    whose = f"run {run_id}'s" if run_id else "every run's"
    cloud = getattr(config.option, "cloudeval_cloud", None)
    named = _named_sandbox(config)
    for name, loader in sorted(loaders.items()):
        if cloud and not run_id and name != named:
            # A cloud sweep of every run (or of a pool) must not also empty this machine's engine of
            # every run's sandboxes: other runs may be going on here (CI).
            print(f"cloudeval --cleanup: {name} sandboxes not swept: --cloud={cloud} without a run id sweeps "
                  f"the cloud only (add --run-id, or --sandbox={name}, to sweep them too)")
            continue
        try:
            cls = loader()
        except ImportError as e:
            # Its SDK is not installed, so it cannot have left anything behind from here.
            print(f"cloudeval --cleanup: {name} sandboxes not swept: its SDK is not installed ({e.name or e})")
            continue
        skipped = cls.cleanup_skipped()
        if skipped:
            print(f"cloudeval --cleanup: {name} sandboxes not swept: {skipped}")
            continue
        try:
            # With a run id, only that run's sandboxes (other runs may be going on, e.g. in CI).
            cls.session_cleanup(run_id)
            print(f"cloudeval --cleanup: {name} sandboxes swept ({whose})")
        except CloudEvalError as e:
            failures.append(f"{name}: {e}")
    backends: dict[str, Any] = {}
    for batch in config.hook.pytest_cloudeval_backends():
        for name, loader in (batch or {}).items():
            backends.setdefault(name, loader)
    for name, loader in sorted(backends.items()):
        if name != cloud:  # a cloud is swept only when named (it needs its project and credentials)
            continue
        try:
            backend_cls = loader()
            removed = backend_cls.cleanup(config, settings)
            print(f"cloudeval --cleanup: {name}: {removed}")
        except ImportError:
            continue
        except CloudEvalError as e:
            failures.append(f"{name}: {e}")
    for line in failures:
        print(f"cloudeval --cleanup FAILED: {line}")
    return 1 if failures else 0


def _named_sandbox(config: pytest.Config) -> str | None:
    """The sandbox kind the user named (option, environment or ini), None when only the default applies."""
    option = next(opt for opt in CORE_OPTIONS if opt.dest == "cloudeval_sandbox")
    value = resolve(config, dataclasses.replace(option, default=None), dict(os.environ))
    return str(value) if value else None
