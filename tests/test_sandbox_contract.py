"""The sandbox contract (``pytest_cloudeval.sandbox.base.Sandbox``), run against every built-in
sandbox through the shipped conformance suite: the local one, the docker one with the runner image
(non-root user ``agent``), and the docker one with a task image run as root (how Harbor tasks run)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from pytest_cloudeval.sandbox.base import Sandbox
from pytest_cloudeval.sandbox.local import LocalSandbox
from pytest_cloudeval.testing.sandbox_conformance import SandboxConformance
from tests.docker_support import BASE_IMAGE, require_docker


class TestLocal(SandboxConformance):
    sandbox_cls = LocalSandbox


class _Docker(SandboxConformance):
    def make_sandbox(self, tmp_path: Path, **changes: Any) -> Sandbox:
        require_docker()
        from pytest_cloudeval.sandbox.docker import DockerSandbox

        type(self).sandbox_cls = DockerSandbox
        return super().make_sandbox(tmp_path, **changes)

    def test_declares_its_name_and_capabilities(self) -> None:
        require_docker()
        from pytest_cloudeval.sandbox.docker import DockerSandbox

        type(self).sandbox_cls = DockerSandbox
        super().test_declares_its_name_and_capabilities()


@pytest.mark.docker
class TestDocker(_Docker):
    """The runner image, its non-root user ``agent``."""


@pytest.mark.docker
class TestDockerRoot(_Docker):
    """A task image run as root, in /app (how Harbor tasks run)."""

    spec_changes = {"image": BASE_IMAGE, "workdir": "/app"}


class _K8s(SandboxConformance):
    """The Kubernetes sandbox on the shipped emulator (pods are containers of the local engine)."""

    def make_sandbox(self, tmp_path: Path, **changes: Any) -> Sandbox:
        from pytest_cloudeval.sandbox.k8s import K8sSandbox
        from tests.k8s_support import use_emulator

        use_emulator()
        type(self).sandbox_cls = K8sSandbox
        return super().make_sandbox(tmp_path, **changes)

    def test_declares_its_name_and_capabilities(self) -> None:
        from pytest_cloudeval.sandbox.k8s import K8sSandbox

        type(self).sandbox_cls = K8sSandbox
        super().test_declares_its_name_and_capabilities()


@pytest.mark.docker
class TestK8s(_K8s):
    """The runner image, its non-root user ``agent`` (switched to inside the pod)."""


@pytest.mark.docker
class TestK8sRoot(_K8s):
    """A task image run as root, in /app."""

    spec_changes = {"image": BASE_IMAGE, "workdir": "/app"}


def test_local_sandboxes_leave_no_registry_folder_behind(tmp_path: Path) -> None:
    """The run's registry folder (the controller's sweep reads it) goes with the run's last local
    sandbox: closing one keeps the others' entries, closing all leaves no folder in the temp dir."""
    from pytest_cloudeval.sandbox import local_jail

    first = TestLocal().make_sandbox(tmp_path)
    boxes = [first, LocalSandbox(dataclasses.replace(first.spec, name=first.spec.name + "-b"))]
    for box in boxes:
        box.start()
    folder = local_jail.registry_dir(first.spec.run_id)
    assert len(list(folder.glob("*.json"))) == 2
    boxes[0].close()
    assert len(list(folder.glob("*.json"))) == 1, "the other sandbox's entry stays for the sweep"
    boxes[1].close()
    assert not folder.exists(), "an empty registry folder was left behind"
    # A sandbox of the same run started after the folder went registers again.
    again = LocalSandbox(dataclasses.replace(first.spec, name=first.spec.name + "-c"))
    again.start()
    try:
        assert len(list(folder.glob("*.json"))) == 1
    finally:
        again.close()
    assert not folder.exists()
