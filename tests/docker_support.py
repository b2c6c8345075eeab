"""Docker for the test suite: docker tests FAIL when the engine or the images are missing (CI must
notice), unless the developer says ``CLOUDEVAL_SKIP_DOCKER=1``; then they skip.

Use ``require_docker()`` in a test or fixture, or the ``docker_api`` fixture (import it into the
test module: ``from tests.docker_support import docker_api``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SKIP_ENV = "CLOUDEVAL_SKIP_DOCKER"
BASE_IMAGE = "cloudeval/base:bookworm"
RUNNER_IMAGE = "cloudeval/runner:bookworm"

_problem: dict[tuple[str, ...], str | None] = {}


def docker_problem(images: tuple[str, ...] = (BASE_IMAGE, RUNNER_IMAGE)) -> str | None:
    """Why docker tests cannot run here (None when they can). Checked once per image set."""
    if images in _problem:
        return _problem[images]
    problem: str | None = None
    try:
        import docker
        from docker.utils import kwargs_from_env
    except ImportError:
        problem = "the docker SDK is not installed (pip install 'pytest-cloudeval[docker]')"
    else:
        try:
            api = docker.APIClient(version="auto", timeout=10, **kwargs_from_env())
            api.ping()
            for image in images:
                try:
                    api.inspect_image(image)
                except docker.errors.NotFound:
                    problem = f"image {image} is missing"
                    break
        except Exception as e:  # noqa: BLE001 - any failure means "no usable engine"
            problem = f"no Docker engine answers ({type(e).__name__}: {e})"
    _problem[images] = problem
    return problem


def require_docker(images: tuple[str, ...] = (BASE_IMAGE, RUNNER_IMAGE)) -> None:
    """Fail (or skip, with CLOUDEVAL_SKIP_DOCKER=1) when Docker or the images are unavailable."""
    problem = docker_problem(images)
    if problem is None:
        return
    if os.environ.get(SKIP_ENV, "").strip() in ("1", "true", "yes"):
        pytest.skip(f"{problem} ({SKIP_ENV}=1)")
    pytest.fail(f"{problem}: run scripts/setup-docker.sh, or set {SKIP_ENV}=1 to skip the docker tests",
                pytrace=False)


@pytest.fixture(scope="session")
def docker_api() -> Iterator[Any]:
    """A low-level Docker API client (docker.APIClient) for checks from the outside."""
    require_docker()
    import docker
    from docker.utils import kwargs_from_env

    api = docker.APIClient(version="auto", timeout=60, **kwargs_from_env())
    yield api
    api.close()


def new_run_id(prefix: str = "t") -> str:
    """A run id no other test (or concurrent test process) uses: their sweeps must not meet."""
    return f"{prefix}-{os.urandom(5).hex()}"


def run_containers(api: Any, run_id: str) -> list[str]:
    """Names of the containers (running or not) labeled with ``run_id``."""
    found = api.containers(all=True, filters={"label": [f"cloudeval.run={run_id}"]})
    return [c["Names"][0].lstrip("/") for c in found]


def wait_no_containers(api: Any, run_id: str, within: float = 5.0) -> list[str]:
    """The run's containers still there after ``within`` seconds (empty list: all gone)."""
    deadline = time.monotonic() + within
    while True:
        left = run_containers(api, run_id)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.2)


# -- generated Harbor tasks ------------------------------------------------------------------------

DOCKERFILE = "ARG BASE_IMAGE=cloudeval/base:bookworm\nFROM ${BASE_IMAGE}\nWORKDIR /app\n"
SOLVE_OK = "echo done > /app/out.txt\n"
TEST_OUT = ('mkdir -p /logs/verifier\n'
            'if [ "$(cat /app/out.txt 2>/dev/null)" = done ]; then echo 1; else echo 0; fi > /logs/verifier/reward.txt\n')


def write_harbor_task(root: Path, name: str, *, solve: str = SOLVE_OK, test: str = TEST_OUT,
                      dockerfile: str = DOCKERFILE, agent_timeout: float = 30, verifier_timeout: float = 10,
                      environment: str = "memory_mb = 256\nallow_internet = false\n",
                      instruction: str = "Write done to /app/out.txt.\n", verifier: str = "") -> Path:
    """One Harbor task folder under ``root`` (tiny: the default environment builds in a second, once)."""
    task = root / name
    for sub in ("environment", "solution", "tests"):
        (task / sub).mkdir(parents=True, exist_ok=True)
    (task / "task.toml").write_text(
        f'[task]\nname = "{name}"\n\n[agent]\ntimeout_sec = {agent_timeout}\n\n'
        f'[verifier]\ntimeout_sec = {verifier_timeout}\n{verifier}\n[environment]\n{environment}workdir = "/app"\n')
    (task / "instruction.md").write_text(instruction)
    if dockerfile:
        (task / "environment" / "Dockerfile").write_text(dockerfile)
    (task / "solution" / "solve.sh").write_text("#!/usr/bin/env bash\n" + solve)
    (task / "tests" / "test.sh").write_text("#!/usr/bin/env bash\n" + test)
    return task


def write_harbor_benchmark(root: Path, names: list[str] | tuple[str, ...] = ("t1", "t2"), *,
                           name: str = "gen", **task_options: Any) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "benchmark.toml").write_text(f'format = "harbor"\nname = "{name}"\n')
    for task_name in names:
        write_harbor_task(root, task_name, **task_options)
    return root


def task_results(run_dir: Path) -> dict[str, dict[str, Any]]:
    """``{task folder name: result.json}`` of one run folder (``results/<run-id>``)."""
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(run_dir.glob("*/*/result.json"))}


class EngineCalls:
    """Records the docker sandbox's engine calls that matter for counting: execs (their argv) and
    archive transfers (``get_archive`` with its path, ``put_archive``), as ``(kind, detail)``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from pytest_cloudeval.sandbox import docker_engine

        self.calls: list[tuple[str, Any]] = []
        calls = self.calls
        real_client, real_run = docker_engine.client, docker_engine.run_exec

        def run_exec(api: Any, ref: str, argv: Any, **kwargs: Any) -> Any:
            calls.append(("exec", argv))
            return real_run(api, ref, argv, **kwargs)

        def client(*args: Any) -> Any:
            api = real_client(*args)

            class Counted:
                def __getattr__(self, name: str) -> Any:
                    if name == "get_archive":
                        def fetch(ref: str, path: str) -> Any:
                            calls.append(("get_archive", path))
                            return api.get_archive(ref, path)
                        return fetch
                    if name == "put_archive":
                        calls.append(("put_archive", None))
                    return getattr(api, name)
            return Counted()

        monkeypatch.setattr(docker_engine, "client", client)
        monkeypatch.setattr(docker_engine, "run_exec", run_exec)

    @property
    def fetches(self) -> list[str]:
        return [str(detail) for kind, detail in self.calls if kind == "get_archive"]
