"""Images for task pods: local-only images are pushed to ``--image-registry`` under their content-hash tag.

An image whose name has a registry host (``gcr.io/...``, ``127.0.0.1:5000/...``) is used as given.
An image that exists only in the local engine (built from a Harbor ``environment/``, the runner
image) is tagged ``REGISTRY/<name>:<first 16 hex of its image id>`` and pushed once per process;
without ``--image-registry`` it is used as given (a cluster sharing the engine, like the emulator).
"""

from __future__ import annotations

import re
import threading

from ..errors import SandboxError

_pushed: dict[tuple[str, str], str] = {}
_locks: dict[str, threading.Lock] = {}
_guard = threading.Lock()


def has_registry(image: str) -> bool:
    first = image.split("/", 1)[0]
    return "/" in image and ("." in first or ":" in first or first == "localhost")


def image_for_pod(image: str, registry: str | None) -> str:
    if not registry or has_registry(image):
        return image
    with _guard:
        done = _pushed.get((image, registry))
        if done is not None:
            return done
        lock = _locks.setdefault(image, threading.Lock())
    with lock:
        done = _pushed.get((image, registry))
        if done is None:
            done = _push(image, registry)
            with _guard:
                _pushed[(image, registry)] = done
    return done


def _push(image: str, registry: str) -> str:
    import docker.errors

    from . import docker_engine as engine

    api = engine.client()
    data = engine.inspect_image(image, hint="it cannot be pushed to --image-registry")
    digest = str(data["Id"]).split(":")[-1][:16]
    name = re.sub(r"[^a-z0-9._/-]+", "-", image.rsplit(":", 1)[0].lower()).strip("-/") or "image"
    repository = f"{registry}/{name}"
    ref = f"{repository}:{digest}"
    try:
        api.tag(image, repository, digest)
        for line in api.push(repository, tag=digest, stream=True, decode=True):
            if isinstance(line, dict) and line.get("error"):
                raise SandboxError(f"pushing {image} to {ref} failed: {line['error']}")
    except docker.errors.DockerException as e:
        raise SandboxError(f"pushing {image} to {ref} failed: {engine.describe(e)}") from e
    return ref
