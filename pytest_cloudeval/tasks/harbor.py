"""Harbor task directories (Terminal-Bench 2.0 style): ``task.toml``, ``instruction.md``,
``environment/``, ``solution/solve.sh``, ``tests/test.sh``.

Loading and validation live here (collection, no Docker needed); running lives in
``harbor_exec`` (needs a container sandbox).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import BenchmarkError
from ..model import AgentOutput, Judgement, Limits, Task, TaskEnvironment
from ..results import is_safe_name
from ..sandbox.base import Capability, Sandbox
from ..settings import Settings
from .base import BrokenTask, TaskFormat, marker_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; errors name the file and the fault."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise BenchmarkError(path, f"cannot read: {e.strerror or e}") from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BenchmarkError(path, f"not UTF-8 text ({e.reason} at byte {e.start})") from e
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise BenchmarkError(path, f"invalid TOML: {e}") from e


def _number(table: Mapping[str, Any], key: str, where: str, *, integer: bool = False) -> float | int | None:
    if key not in table:
        return None
    value = table[key]
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok:
        kind = "a whole number" if integer else "a number"
        raise ValueError(f"[{where}] {key} must be {kind}, got {value!r}")
    if value <= 0:
        raise ValueError(f"[{where}] {key} must be positive, got {value!r}")
    return value


def _table(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ValueError(f"[{key}] must be a table")
    return value


def _env_table(table: Mapping[str, Any], where: str) -> dict[str, str]:
    env = table.get("env", {})
    if not isinstance(env, dict) or not all(isinstance(v, (str, int, float)) for v in env.values()):
        raise ValueError(f"[{where}] env must be a table of strings")
    return {str(k): str(v) for k, v in env.items()}


def load_task_dir(path: Path, benchmark: str) -> Task | BrokenTask:
    """One Harbor task directory, validated."""
    task_id = path.name
    toml_path = path / "task.toml"
    if not is_safe_name(task_id):
        return BrokenTask(benchmark, "invalid_task_name", toml_path,
                          f"task folder name {task_id!r} is not a safe id (letters, digits, . _ -)")
    try:
        data = read_toml(toml_path)
    except BenchmarkError as e:
        return BrokenTask(benchmark, task_id, toml_path, e.message)
    try:
        task_t, meta = _table(data, "task"), _table(data, "metadata")
        agent_t, verifier_t, env_t = _table(data, "agent"), _table(data, "verifier"), _table(data, "environment")
        agent_timeout = _number(agent_t, "timeout_sec", "agent") or 600.0
        verifier_timeout = _number(verifier_t, "timeout_sec", "verifier") or 600.0
        cpus = _number(env_t, "cpus", "environment") or 1.0
        memory_mb = _number(env_t, "memory_mb", "environment", integer=True) or 2048
        storage_mb = _number(env_t, "storage_mb", "environment", integer=True)
        allow_internet = env_t.get("allow_internet", True)
        if not isinstance(allow_internet, bool):
            raise ValueError(f"[environment] allow_internet must be true or false, got {allow_internet!r}")
        image = env_t.get("docker_image")
        if image is not None and (not isinstance(image, str) or not image.strip()):
            raise ValueError(f"[environment] docker_image must be an image name, got {image!r}")
        # Without a workdir, Harbor uses the image's WORKDIR (the sandbox reads it from the image).
        workdir = env_t.get("workdir")
        if workdir is not None and (not isinstance(workdir, str) or not workdir.startswith("/")):
            raise ValueError(f"[environment] workdir must be an absolute path, got {workdir!r}")
        env = _env_table(env_t, "environment")
        verifier_env = _env_table(verifier_t, "verifier")
        verifier_user = verifier_t.get("user")
        tags = meta.get("tags", [])
        if not isinstance(tags, list):
            raise ValueError("[metadata] tags must be a list")
    except ValueError as e:
        return BrokenTask(benchmark, task_id, toml_path, str(e))

    instruction_path = path / "instruction.md"
    if not instruction_path.is_file():
        return BrokenTask(benchmark, task_id, instruction_path, "missing instruction.md (what the agent is told)")
    try:
        instruction = instruction_path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        return BrokenTask(benchmark, task_id, instruction_path, f"not UTF-8 text ({e.reason} at byte {e.start})")
    if image is None and not (path / "environment" / "Dockerfile").is_file():
        return BrokenTask(benchmark, task_id, path / "environment",
                          "needs environment/Dockerfile or [environment] docker_image")
    if not (path / "tests" / "test.sh").is_file():
        return BrokenTask(benchmark, task_id, path / "tests", "missing tests/test.sh (the verifier)")

    markers = ["harbor"]
    for value in [meta.get("difficulty"), meta.get("category"), *tags]:
        if isinstance(value, str) and marker_name(value):
            markers.append(marker_name(value))
    agent_input = {
        "task_id": task_id,
        "instruction": instruction,
        "name": task_t.get("name", task_id),
        "description": task_t.get("description", ""),
        "metadata": dict(meta),
        "workdir": workdir,
    }
    return Task(
        benchmark=benchmark,
        task_id=task_id,
        format="harbor",
        source=toml_path,
        root=path,
        instruction=instruction,
        agent_input=agent_input,
        limits=Limits(agent_timeout_s=float(agent_timeout), verifier_timeout_s=float(verifier_timeout),
                      cpus=float(cpus), memory_mb=int(memory_mb),
                      storage_mb=int(storage_mb) if storage_mb else None, allow_internet=allow_internet),
        markers=tuple(dict.fromkeys(markers)),
        environment=TaskEnvironment(image=image, build_context=path / "environment"
                                    if (path / "environment" / "Dockerfile").is_file() else None,
                                    workdir=workdir, env=env),
        private={"dir": str(path), "image": image, "workdir": workdir, "env": env,
                 "verifier_env": verifier_env, "verifier_user": verifier_user},
    )


class HarborFormat(TaskFormat):
    name = "harbor"
    requires = Capability.CONTAINER

    def load_benchmark(self, root: Path, spec: Mapping[str, Any], benchmark: str) -> list[Task | BrokenTask]:
        tasks_dir = root / str(spec.get("tasks_dir", "."))
        if not tasks_dir.is_dir():
            raise BenchmarkError(root / "benchmark.toml", f"tasks_dir {tasks_dir} is not a folder")
        folders = sorted(p for p in tasks_dir.iterdir() if p.is_dir() and (p / "task.toml").is_file())
        if not folders:
            raise BenchmarkError(root / "benchmark.toml", "no task folders (with a task.toml) found")
        return [load_task_dir(p, benchmark) for p in folders]

    def prepare(self, task: Task, sandbox: Sandbox, settings: Settings) -> None:
        from . import harbor_exec

        harbor_exec.prepare(task, sandbox, settings)

    def oracle(self, task: Task, sandbox: Sandbox, settings: Settings, timeout_s: float) -> AgentOutput:
        from . import harbor_exec

        return harbor_exec.run_oracle(task, sandbox, settings, timeout_s)

    def judge(self, task: Task, output: AgentOutput, sandbox: Sandbox, settings: Settings,
              task_dir: Path) -> Judgement:
        from . import harbor_exec

        return harbor_exec.verify(task, sandbox, settings, task_dir)

    def collect(self, task: Task, sandbox: Sandbox, settings: Settings, task_dir: Path) -> None:
        from . import harbor_exec

        harbor_exec.collect_logs(task, sandbox, settings, task_dir)
