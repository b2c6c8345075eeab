"""Turning a task's declared environment (:class:`~pytest_cloudeval.model.TaskEnvironment`) into an
image the Docker engine can run: the local image if present, else a pull when the engine can, else a
build of the task's build context (always a build with ``--force-build``), bounded by the task's
``build_timeout_s``. Built images are tagged by the context's content hash
(``cloudeval-task/<task>:<hash12>``) and reused across tasks, workers and runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import docker.errors

from ..errors import SandboxError
from ..model import TaskEnvironment
from . import docker_engine as engine
from .build_context import content_hash

__all__ = ["content_hash", "resolve", "exists", "build", "repo_name"]

IMAGE_REPO = "cloudeval-task"
HASH_LABEL = "cloudeval.env-hash"
BUILD_LOG_TAIL = 40
PULL_TIMEOUT_S = 600.0

_resolved: dict[tuple[str, str, bool], str] = {}
"""(task id, environment, force) -> image, per process: a task's image is settled once per worker."""


def repo_name(task_id: str) -> str:
    """A Docker repository component made of a task id (lowercase, separators between alphanumerics)."""
    name = re.sub(r"[^a-z0-9]+", "-", task_id.lower()).strip("-")
    return name[:100] or "task"


@contextlib.contextmanager
def build_lock(digest: str) -> Iterator[None]:
    """One build per environment at a time on this host (xdist workers share the engine)."""
    path = Path(tempfile.gettempdir()) / f"cloudeval-build-{digest[:16]}.lock"
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def resolve(env: TaskEnvironment, task_id: str, default_image: str, force_build: bool) -> str:
    """The image to run for a task that declares ``env``.

    Raises:
        SandboxError: no way worked; the message names the image, the task and what was tried.
    """
    key = (task_id, repr((env.image, str(env.build_context), env.dockerfile)), force_build)
    cached = _resolved.get(key)
    if cached is not None:
        return cached
    context = env.build_context
    buildable = context is not None and (context / env.dockerfile).is_file()
    tried: list[str] = []
    image: str | None = None
    if env.image is None and not buildable:
        image = default_image
        engine.inspect_image(image)
    elif force_build and buildable:
        image = _build_context(env, task_id, force=True)
    else:
        if env.image is not None:
            if exists(env.image):
                image = env.image
            else:
                tried.append(f"{env.image} is not on the engine ({engine.engine_address()})")
                reason = _pull(env.image)
                if reason is None:
                    image = env.image
                else:
                    tried.append(f"pulling it failed, so it was never pulled: {reason}")
        if image is None and buildable:
            try:
                image = _build_context(env, task_id, force=False)
            except SandboxError as e:
                if not tried:
                    raise
                tried.append(f"building {context} failed: {e}")
        elif image is None:
            tried.append(f"no build context to build it from ({context / env.dockerfile if context else 'none given'})")
    if image is None:
        raise SandboxError(f"task {task_id}: no image for [environment] docker_image = {env.image!r}: "
                           + "; ".join(tried))
    _resolved[key] = image
    return image


def exists(image: str) -> bool:
    api = engine.client()
    try:
        engine.with_retries(f"inspect image {image}", lambda: api.inspect_image(image),
                            passthrough=(docker.errors.NotFound,))
    except docker.errors.NotFound:
        return False
    return True


def _pull(image: str) -> str | None:
    """Pull ``image``; None when it worked, else why not."""
    repo, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "latest")
    api = engine.client(PULL_TIMEOUT_S)
    try:
        api.pull(repo, tag=tag or "latest")
    except (docker.errors.DockerException, OSError, Exception) as e:  # noqa: BLE001 - any failure: build
        return engine.describe(e)[:300]
    engine.forget_image(image)
    return None if exists(image) else "the engine reported no error, yet the image is not there"


def _build_context(env: TaskEnvironment, task_id: str, *, force: bool) -> str:
    assert env.build_context is not None
    digest = content_hash(env.build_context)
    tag = f"{IMAGE_REPO}/{repo_name(task_id)}:{digest[:12]}"
    if force:
        with build_lock(digest):
            build(env, task_id, tag, digest)
        return tag
    if not exists(tag):
        with build_lock(digest):
            if not exists(tag) and not _tag_same_environment(digest, tag):
                build(env, task_id, tag, digest)
    return tag


def _tag_same_environment(digest: str, tag: str) -> bool:
    """Reuse an image built from an identical environment of another task (a cheap tag)."""
    api = engine.client()
    found = engine.with_retries("list images", lambda: api.images(filters={"label": f"{HASH_LABEL}={digest}"},
                                                                  quiet=True))
    if not found:
        return False
    repo, _, version = tag.rpartition(":")
    engine.with_retries(f"tag image {tag}", lambda: api.tag(found[0], repo, version))
    return True


def build(env: TaskEnvironment, task_id: str, tag: str, digest: str) -> None:
    """``docker build`` of the environment's context within its ``build_timeout_s`` (SandboxError if not)."""
    assert env.build_context is not None
    timeout = env.build_timeout_s or engine.BUILD_TIMEOUT_S
    deadline = time.monotonic() + timeout
    api = engine.client(min(timeout, engine.BUILD_TIMEOUT_S) + 5)
    lines: list[str] = []
    error = None
    where = f"task {task_id}: docker build of {env.build_context}"
    try:
        stream = api.build(path=str(env.build_context), dockerfile=env.dockerfile, tag=tag, rm=True,
                           forcerm=True, pull=False, decode=True,
                           # Containers inherit image labels: none that the sweeps select on.
                           labels={HASH_LABEL: digest, "cloudeval.built-for": task_id[:60]})
        for chunk in stream:
            text = chunk.get("stream") or chunk.get("status") or ""
            if text:
                lines.extend(text.rstrip("\n").splitlines())
                del lines[:-BUILD_LOG_TAIL]
            if chunk.get("error"):
                error = str(chunk["error"]).strip()
                lines.append(error)
            if time.monotonic() > deadline:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()
                raise SandboxError(f"{where} did not finish within {timeout:g} s (build_timeout_s)")
    except SandboxError:
        raise
    except Exception as e:  # noqa: BLE001 - engine or context trouble: an infrastructure error
        if time.monotonic() > deadline:
            raise SandboxError(f"{where} did not finish within {timeout:g} s (build_timeout_s)") from e
        raise SandboxError(f"{where} failed: {engine.describe(e)}") from e
    if error is not None:
        tail = "\n".join(lines[-BUILD_LOG_TAIL:])
        raise SandboxError(f"{where} failed: {error}\n--- build log (tail) ---\n{tail}")
