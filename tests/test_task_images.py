"""How the docker sandbox turns a task's declared environment into an image (issue 10 items 4 and 6):
the image's own WORKDIR when the task names none, a local image used as is, an absent image built
from ``environment/``, ``--force-build`` building even when the image is present, and a clear
error (a pytest error naming the image, the task and what was tried) when nothing works."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.docker_support import (
    BASE_IMAGE,
    docker_api,  # noqa: F401 - a fixture
    new_run_id,
    task_results,
)
from tests.test_sandbox_attacks import run_pytest

pytestmark = pytest.mark.docker

MARKER_DOCKERFILE = f"FROM {BASE_IMAGE}\nRUN echo built-from-context > /built-marker\nWORKDIR /app\n"
CHECK_MARKER = ('mkdir -p /logs/verifier\n'
                'if [ "$(cat /built-marker 2>/dev/null)" = built-from-context ]; then echo 1; else echo 0; fi '
                '> /logs/verifier/reward.txt\n')


def write_task(bench: Path, name: str, *, environment: str, dockerfile: str = "", solve: str = "true\n",
               test: str = CHECK_MARKER) -> Path:
    """A Harbor task whose task.toml is exactly ``environment`` (no workdir unless given)."""
    task = bench / name
    for sub in ("solution", "tests"):
        (task / sub).mkdir(parents=True, exist_ok=True)
    (task / "task.toml").write_text(f'[agent]\ntimeout_sec = 60\n\n[verifier]\ntimeout_sec = 30\n\n'
                                    f'[environment]\n{environment}')
    (task / "instruction.md").write_text("Nothing to do.\n")
    if dockerfile:
        (task / "environment").mkdir(exist_ok=True)
        (task / "environment" / "Dockerfile").write_text(dockerfile)
    (task / "solution" / "solve.sh").write_text("#!/usr/bin/env bash\n" + solve)
    (task / "tests" / "test.sh").write_text("#!/usr/bin/env bash\n" + test)
    return task


@pytest.fixture
def present_image(docker_api: Any) -> Iterator[str]:  # noqa: F811
    """An image present on the engine, WORKDIR /srv/x, without the build marker."""
    tag = f"cloudeval-test/present:{os.urandom(4).hex()}"
    dockerfile = f"FROM {BASE_IMAGE}\nWORKDIR /srv/x\n".encode()
    for _ in docker_api.build(fileobj=io.BytesIO(dockerfile), tag=tag, rm=True, decode=True):
        pass
    yield tag
    docker_api.remove_image(tag, force=True)


def test_workdir_defaults_to_the_images_workdir(tmp_path: Path, present_image: str) -> None:
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "benchmark.toml").write_text('format = "harbor"\nname = "img"\n')
    write_task(bench, "image-workdir", environment=f'docker_image = "{present_image}"\n',
               solve="pwd > /tmp/agent-cwd\n",
               test=('mkdir -p /logs/verifier\nif [ "$(cat /tmp/agent-cwd)" = /srv/x ]; then echo 1; else echo 0; fi'
                     ' > /logs/verifier/reward.txt\n'))
    run_id = new_run_id("workdir")
    res = run_pytest(tmp_path, "bench", "--sandbox=docker", "--agent", "oracle", "--run-id", run_id)
    result = task_results(tmp_path / "results" / run_id)["image-workdir"]
    assert result["outcome"] == "passed", res.stdout + res.stderr
    record = json.loads((tmp_path / "results" / run_id / "img" / "image-workdir" / "sandbox.json").read_text())
    assert (record["workdir"], record["image"]) == ("/srv/x", present_image)


def test_absent_image_is_built_present_is_used_force_build_builds(tmp_path: Path, present_image: str,
                                                                  docker_api: Any) -> None:  # noqa: F811
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "benchmark.toml").write_text('format = "harbor"\nname = "img"\n')
    absent = f"cloudeval-test/absent:{os.urandom(4).hex()}"
    write_task(bench, "absent-builds", environment=f'docker_image = "{absent}"\n', dockerfile=MARKER_DOCKERFILE)
    write_task(bench, "present-used", environment=f'docker_image = "{present_image}"\n', dockerfile=MARKER_DOCKERFILE)
    write_task(bench, "absent-no-context", environment=f'docker_image = "{absent}"\n')
    built: set[str] = set()
    try:
        run_id = new_run_id("images")
        res = run_pytest(tmp_path, "bench", "--sandbox=docker", "--agent", "oracle", "--run-id", run_id)
        results = task_results(tmp_path / "results" / run_id)
        outcomes = {k: (r["outcome"], r.get("error_kind")) for k, r in results.items()}
        assert outcomes == {"absent-builds": ("passed", None), "present-used": ("failed", None),
                            "absent-no-context": ("error", "sandbox")}, res.stdout + res.stderr
        image = json.loads((tmp_path / "results" / run_id / "img" / "absent-builds" / "sandbox.json").read_text())["image"]
        built.add(image)
        assert image.startswith("cloudeval-task/absent-builds:")
        message = results["absent-no-context"]["message"]
        for part in ("task absent-no-context", absent, "not on the engine", "pulling it failed", "no build context"):
            assert part in message, message
        assert "ERROR" in res.stdout and "absent-no-context" in res.stdout  # a pytest error, not a failure

        forced_id = new_run_id("forced")
        res = run_pytest(tmp_path, "bench", "--sandbox=docker", "--agent", "oracle", "--run-id", forced_id,
                         "--force-build", "-k", "present-used")
        forced = task_results(tmp_path / "results" / forced_id)["present-used"]
        assert forced["outcome"] == "passed", res.stdout + res.stderr
        image = json.loads((tmp_path / "results" / forced_id / "img" / "present-used" / "sandbox.json").read_text())["image"]
        built.add(image)
        assert image.startswith("cloudeval-task/present-used:")
    finally:
        for tag in built:
            try:
                docker_api.remove_image(tag)
            except Exception:  # noqa: BLE001 - shared by identical contexts of other tests
                pass


def test_build_is_bounded_by_build_timeout(tmp_path: Path) -> None:
    from pytest_cloudeval.errors import SandboxError
    from pytest_cloudeval.model import TaskEnvironment
    from pytest_cloudeval.sandbox import docker_images

    context = tmp_path / "env"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nRUN sleep 30 # {os.urandom(4).hex()}\n")
    env = TaskEnvironment(build_context=context, build_timeout_s=3)
    with pytest.raises(SandboxError, match=r"did not finish within 3 s \(build_timeout_s\)"):
        docker_images.resolve(env, "slow-build", BASE_IMAGE, False)
