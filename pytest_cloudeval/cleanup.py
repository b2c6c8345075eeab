"""``pytest --cleanup``: remove every sandbox and cloud worker this plugin labeled, for killed runs."""

from __future__ import annotations

from typing import Any

import pytest

from .errors import CloudEvalError
from .settings import settings_from_config


def cleanup_all(config: pytest.Config) -> int:
    """Sweep every registered sandbox kind and cloud backend; report what failed; exit code."""
    config.pluginmanager.hook.pytest_cloudeval_sandboxes  # noqa: B018 - hooks are registered by now
    settings = settings_from_config(config)
    failures: list[str] = []
    loaders: dict[str, Any] = {}
    for batch in config.hook.pytest_cloudeval_sandboxes():
        for name, loader in (batch or {}).items():
            loaders.setdefault(name, loader)
    for name, loader in sorted(loaders.items()):
        try:
            cls = loader()
        except ImportError:
            continue  # its SDK is not installed, so it cannot have left anything behind from here
        try:
            # With --run-id, only that run's sandboxes (other runs may be going on, e.g. in CI).
            cls.session_cleanup(config.getoption("cloudeval_run_id", default=None))
            print(f"cloudeval --cleanup: {name} sandboxes swept")
        except CloudEvalError as e:
            failures.append(f"{name}: {e}")
    backends: dict[str, Any] = {}
    for batch in config.hook.pytest_cloudeval_backends():
        for name, loader in (batch or {}).items():
            backends.setdefault(name, loader)
    cloud = getattr(config.option, "cloudeval_cloud", None)
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
