"""Built-in implementations of the ``pytest_cloudeval_*`` hooks (all ``trylast``, so users override)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .agents.base import Agent
from .errors import MissingExtraError
from .settings import Settings


def lazy(target: str, *, sdk: str | None = None, what: str = "", extra: str = "") -> Callable[[], Any]:
    """A loader that imports ``package.module:Name`` on first use, checking its SDK is installed."""

    def load() -> Any:
        if sdk is not None:
            try:
                importlib.import_module(sdk)
            except ImportError as e:
                raise MissingExtraError(what, extra, e) from e
        module, _, name = target.partition(":")
        return getattr(importlib.import_module(module, __package__), name)

    return load


@pytest.hookimpl(trylast=True)
def pytest_cloudeval_task_formats() -> list[Any]:
    from .tasks.harbor import HarborFormat
    from .tasks.usaco import UsacoFormat

    return [UsacoFormat(), HarborFormat()]


@pytest.hookimpl(trylast=True)
def pytest_cloudeval_sandboxes() -> dict[str, Any]:
    return {
        "local": lazy(".sandbox.local:LocalSandbox"),
        "docker": lazy(".sandbox.docker:DockerSandbox", sdk="docker", what="the docker sandbox", extra="docker"),
        "k8s": lazy(".sandbox.k8s:K8sSandbox", sdk="kubernetes", what="the k8s sandbox", extra="k8s"),
    }


@pytest.hookimpl(trylast=True)
def pytest_cloudeval_make_agent(spec: str, settings: Settings) -> Agent | None:
    from .agents.loader import load_agent

    # Relative agent paths are relative to where pytest was started, like pytest's own arguments.
    return load_agent(spec, Path(settings.invocation_dir or Path.cwd()))


@pytest.hookimpl(trylast=True)
def pytest_cloudeval_result_stores() -> dict[str, Any]:
    # The SDK (~0.4 s CPU to import) is looked up here and imported off the main thread by the first
    # store call (the controller's probe thread): see GcsStore.__init__.
    return {"gs": lazy(".artifacts.gcs:GcsStore")}


@pytest.hookimpl(trylast=True)
def pytest_cloudeval_backends() -> dict[str, Any]:
    return {"gce": lazy(".backends.gce:GceBackend", sdk="google.cloud.compute_v1", what="--cloud=gce",
                        extra="gce"),
            "gke": lazy(".backends.gke:GkeProvider", sdk="kubernetes", what="--cloud=gke", extra="k8s")}


@pytest.hookimpl(trylast=True)
def pytest_cloudeval_transports() -> dict[str, Any]:
    return {"ssh": lazy(".backends.ssh:SshTransport"), "kubectl": lazy(".backends.kubectl:KubectlTransport")}


@pytest.hookimpl(trylast=True)
def pytest_cloudeval_reporters() -> list[Any]:
    from .reporters.files import JunitReporter, RunJsonReporter, SummaryTextReporter
    from .reporters.html import HtmlReporter

    return [RunJsonReporter(), SummaryTextReporter(), JunitReporter(), HtmlReporter()]
