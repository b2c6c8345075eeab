"""Task images for ``--sandbox=k8s`` on worker pods: the controller builds what tasks build.

A worker pod has no Docker engine, so a task whose image is built from its ``environment/`` (Harbor)
cannot be built where it runs. Before the workers start, the controller finds the tasks under the
paths given to pytest (with the same task formats the workers collect with), builds each distinct
build context once with its own engine (``docker_images.resolve``, tagged by content hash), pushes it
to ``--image-registry`` when one is given, and hands the workers ``content hash -> image``
(``K8sConfig.prebuilt``). A worker runs the image whose hash matches the context it collected, so
an edited task is never run with a stale image: it fails with a clear error instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from ...errors import CloudEvalError
from ...model import Task

Say = Callable[[str], None]


def _roots(args: Iterable[str], invocation_dir: Path) -> list[Path]:
    roots = []
    for arg in args:
        if arg.startswith("-"):
            continue
        path = Path(arg.split("::", 1)[0])
        path = path if path.is_absolute() else invocation_dir / path
        if path.exists():
            roots.append(path.resolve())
    return roots


def find_tasks(args: Iterable[str], invocation_dir: Path, formats: dict[str, Any]) -> Iterator[Task]:
    """Every well-formed task under ``args`` (benchmark folders and lone task folders); broken ones are
    the workers' to report."""
    from ...layout import is_results_dir
    from ...tasks.base import read_toml

    seen: set[Path] = set()
    for root in _roots(args, invocation_dir):
        start = root if root.is_dir() else root.parent
        for folder, dirs, _files in os.walk(start):
            here = Path(folder)
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not is_results_dir(here / d))
            if here in seen:
                dirs[:] = []
                continue
            seen.add(here)
            loaded: list[Any] = []
            try:
                if (here / "benchmark.toml").is_file():
                    spec = read_toml(here / "benchmark.toml")
                    fmt = formats.get(str(spec.get("format")))
                    if fmt is not None:
                        loaded = fmt.load_benchmark(here, spec, str(spec.get("name") or here.name))
                    dirs[:] = []
                else:
                    for fmt in formats.values():
                        defining = fmt.detect(here)
                        if defining is not None:
                            loaded = [fmt.load_task(defining, here.parent.name or fmt.name)]
                            dirs[:] = []
                            break
            except (CloudEvalError, OSError, ValueError):
                continue  # a malformed benchmark: the workers' collection names it
            yield from (task for task in loaded if isinstance(task, Task))


def needs_build(task: Task) -> bool:
    env = task.environment
    context = env.build_context
    return env.image is None and context is not None and (context / env.dockerfile).is_file()


def prebuild(tasks: Iterable[Task], default_image: str, force_build: bool, registry: str | None,
             say: Say) -> dict[str, str]:
    """``content hash -> image`` for every buildable task (built once per content, pushed when a
    registry is given). A task whose image cannot be built is left out (said): its worker reports it."""
    from ...sandbox import docker_images
    from ...sandbox.build_context import content_hash
    from ...sandbox.k8s_images import image_for_pod

    built: dict[str, str] = {}
    for task in tasks:
        if not needs_build(task):
            continue
        context = task.environment.build_context
        assert context is not None
        digest = content_hash(context)
        if digest in built:
            continue
        try:
            image = docker_images.resolve(task.environment, task.task_id, default_image, force_build)
            built[digest] = image_for_pod(image, registry)
        except CloudEvalError as e:
            say(f"cloudeval gke: no image for task {task.task_id} (its attempts will be errors): {e}")
    return built
