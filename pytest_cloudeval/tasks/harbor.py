"""Harbor task directories (Terminal-Bench 2.0 style): ``task.toml``, ``instruction.md``,
``environment/``, ``solution/solve.sh``, ``tests/test.sh``.

Loading and validation live here (collection, no Docker needed); running lives in
``harbor_exec`` (needs a container sandbox).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BenchmarkError
from ..model import AgentOutput, Judgement, Limits, Task, TaskEnvironment
from ..results import is_safe_id
from ..sandbox.base import Capability, Sandbox
from ..settings import Settings
from .base import BrokenTask, TaskFormat, check_number, marker_name, read_toml

__all__ = ["HarborData", "HarborFormat", "Healthcheck", "load_task_dir", "read_toml"]

WEEK_S = 7 * 24 * 3600.0
MAX_MB = 16 * 1024 * 1024  # 16 TiB: anything larger is a typo, not a machine
TEMPLATE = re.compile(r"\$\{([^}:]+)(?::-(.*))?\}")
"""Harbor's env template: the whole value is ``${VAR}`` or ``${VAR:-default}``."""


class Unsupported(ValueError):
    """A valid Harbor field this plugin cannot honour: the task is skipped, naming the field."""


@dataclass(frozen=True)
class Healthcheck:
    """``[environment.healthcheck]``: run after start; all must pass before the agent starts."""

    command: str
    interval_s: float = 5.0
    timeout_s: float = 30.0
    start_period_s: float = 0.0
    start_interval_s: float = 5.0
    retries: int = 3


@dataclass(frozen=True)
class HarborData:
    """Harbor's private task data (``Task.private``): read by ``harbor_exec`` only."""

    task_dir: Path
    verifier_env: Mapping[str, str] = field(default_factory=dict)
    verifier_user: str | None = None
    solution_env: Mapping[str, str] = field(default_factory=dict)
    healthcheck: Healthcheck | None = None


def data(task: Task) -> HarborData:
    if not isinstance(task.private, HarborData):
        raise TypeError(f"task {task.task_id} is not a Harbor task")
    return task.private


def _table(data: Mapping[str, Any], key: str, where: str = "") -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ValueError(f"[{where + key}] must be a table")
    return value


def _num(table: Mapping[str, Any], key: str, where: str, **kw: Any) -> Any:
    if key not in table or table[key] is None:
        return None
    return check_number(table[key], f"[{where}] {key}", **kw)


def _env_table(table: Mapping[str, Any], where: str) -> dict[str, str]:
    env = table.get("env", {})
    if not isinstance(env, dict):
        raise ValueError(f"[{where}] env must be a table of strings")
    out: dict[str, str] = {}
    for k, v in env.items():
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            raise ValueError(f"[{where}] env {k} must be a string, got {v!r}")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(k)):
            raise ValueError(f"[{where}] env {k!r} is not a variable name")
        text = str(v)
        if "\0" in text:
            raise ValueError(f"[{where}] env {k} holds a NUL character")
        out[str(k)] = text
    return out


def _user(table: Mapping[str, Any], where: str) -> str | None:
    user = table.get("user")
    if user is None:
        return None
    if isinstance(user, bool) or not isinstance(user, (str, int)) or (isinstance(user, str) and not user.strip()):
        raise ValueError(f"[{where}] user must be a user name or uid, got {user!r}")
    if isinstance(user, int):
        check_number(user, f"[{where}] user", integer=True, minimum=0, exclusive_min=False, maximum=2 ** 31 - 1)
    elif not re.fullmatch(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*(:[A-Za-z0-9_.][A-Za-z0-9_.-]*)?", user):
        raise ValueError(f"[{where}] user {user!r} is not a user name or uid")
    return str(user)


def size_mb(value: Any, field_name: str) -> int:
    """Harbor's legacy size strings (``memory = "4G"``): a number with a K, M or G suffix (any case,
    powers of 1024; K rounds down to whole megabytes), as Harbor's own loader reads them."""
    if not isinstance(value, str):
        raise ValueError(f"[environment] {field_name} must be a size string such as \"4G\" or \"512M\" "
                         f"(use {field_name}_mb for a number of megabytes), got {value!r}")
    text = value.strip().upper()
    factors = {"G": 1024.0, "M": 1.0, "K": 1 / 1024}
    if not text or text[-1] not in factors or not re.fullmatch(r"[0-9]*\.?[0-9]+(E[+-]?[0-9]+)?", text[:-1]):
        raise ValueError(f"[environment] {field_name} = {value!r} is not a size: expected a number with "
                         "a K, M or G suffix, like \"4G\" or \"512M\"")
    mb = float(text[:-1]) * factors[text[-1]]
    return int(check_number(int(mb) if mb < 2 ** 63 else mb, f"[environment] {field_name} ({value!r} in MB)",
                            integer=True, maximum=MAX_MB))


def _sizes(env_t: Mapping[str, Any]) -> tuple[int | None, int | None]:
    out: list[int | None] = []
    for name in ("memory", "storage"):
        mb = _num(env_t, f"{name}_mb", "environment", integer=True, maximum=MAX_MB)
        if name in env_t:
            legacy = size_mb(env_t[name], name)
            if mb is not None and mb != legacy:
                raise ValueError(f"[environment] {name} = {env_t[name]!r} ({legacy} MB) and {name}_mb = {mb} "
                                 "disagree: give one")
            mb = legacy
        out.append(mb)
    return out[0], out[1]


def _network(data: Mapping[str, Any], env_t: Mapping[str, Any], agent_t: Mapping[str, Any],
             verifier_t: Mapping[str, Any]) -> bool:
    """Whether the task's container gets a network. One network for the whole attempt: phases that
    ask for another one are refused by name."""
    modes = ("public", "no-network", "allowlist")
    mode = env_t.get("network_mode")
    if mode is None:
        legacy = env_t.get("allow_internet")
        if legacy is not None and not isinstance(legacy, bool):
            raise ValueError(f"[environment] allow_internet must be true or false, got {legacy!r}")
        mode = "no-network" if legacy is False else "public"
    elif mode not in modes:
        raise ValueError(f"[environment] network_mode must be one of {', '.join(modes)}, got {mode!r}")
    for where, table in (("environment", env_t), ("agent", agent_t), ("verifier", verifier_t)):
        phase = table.get("network_mode")
        if phase is not None and phase not in modes:
            raise ValueError(f"[{where}] network_mode must be one of {', '.join(modes)}, got {phase!r}")
        hosts = table.get("allowed_hosts")
        if hosts is not None and (not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts)):
            raise ValueError(f"[{where}] allowed_hosts must be a list of host names")
        if hosts and (phase or mode) != "allowlist":
            raise ValueError(f"[{where}] allowed_hosts is only valid with network_mode = \"allowlist\"")
        if phase == "allowlist" or (where == "environment" and mode == "allowlist"):
            raise Unsupported(f"[{where}] network_mode = \"allowlist\" (allowed_hosts) is not supported: "
                              "sandboxes here have no egress filter, so the task would get the whole network")
        if where != "environment" and phase is not None and phase != mode:
            raise Unsupported(f"[{where}] network_mode = {phase!r} differs from the environment's {mode!r}: "
                              "a network per phase is not supported (one network per attempt)")
    return mode != "no-network"


def _refuse_unsupported(data: Mapping[str, Any], env_t: Mapping[str, Any], verifier_t: Mapping[str, Any],
                        path: Path) -> None:
    """Fields of Harbor's task model that a local or container run here cannot honour."""
    if data.get("steps"):
        raise Unsupported("steps (a multi-step task) is not supported: each task runs one agent phase "
                          "and one verifier")
    if data.get("artifacts"):
        raise Unsupported("artifacts (extra paths to collect) is not supported: /logs/agent, /logs/verifier "
                          "and /logs/artifacts are collected")
    os_name = env_t.get("os", "linux")
    if not isinstance(os_name, str) or os_name.lower() not in ("linux", "windows"):
        raise ValueError(f"[environment] os must be \"linux\" or \"windows\", got {os_name!r}")
    if os_name.lower() == "windows":
        raise Unsupported("[environment] os = \"windows\" is not supported: sandboxes here run Linux")
    if env_t.get("mcp_servers"):
        raise Unsupported("[environment] mcp_servers is not supported: agents here get no MCP servers")
    for name, why in (("tpu", "no TPUs"), ("gpu_types", "no GPU type selection"),
                      ("skills_dir", "agents here have no skills folder")):
        if env_t.get(name) is not None:
            raise Unsupported(f"[environment] {name} is not supported: {why}")
    env_mode = verifier_t.get("environment_mode")
    if env_mode not in (None, "shared", "separate"):
        raise ValueError(f"[verifier] environment_mode must be \"shared\" or \"separate\", got {env_mode!r}")
    if env_mode == "separate" or verifier_t.get("environment") is not None:
        raise Unsupported("[verifier] environment / environment_mode = \"separate\" is not supported: the "
                          "verifier runs in the agent's container")
    if verifier_t.get("collect"):
        raise Unsupported("[verifier] collect is not supported (it runs commands in compose services)")
    for name in ("docker-compose.yaml", "docker-compose.yml", "compose.yaml", "compose.yml"):
        if (path / "environment" / name).is_file():
            raise Unsupported(f"environment/{name}: docker-compose environments are not supported "
                              "(one container per task)")


def _healthcheck(env_t: Mapping[str, Any]) -> Healthcheck | None:
    if env_t.get("healthcheck") is None:
        return None
    hc = _table(env_t, "healthcheck", "environment.")
    command = hc.get("command")
    if not isinstance(command, str) or not command.strip():
        raise ValueError("[environment.healthcheck] command must be a shell command")
    where = "environment.healthcheck"
    return Healthcheck(
        command=command,
        interval_s=float(_num(hc, "interval_sec", where, maximum=3600) or 5.0),
        timeout_s=float(_num(hc, "timeout_sec", where, maximum=WEEK_S) or 30.0),
        start_period_s=float(_num(hc, "start_period_sec", where, minimum=0, exclusive_min=False,
                                  maximum=WEEK_S) or 0.0),
        start_interval_s=float(_num(hc, "start_interval_sec", where, maximum=3600) or 5.0),
        retries=int(_num(hc, "retries", where, integer=True, maximum=10_000) or 3),
    )


def load_task_dir(path: Path, benchmark: str) -> Task | BrokenTask:
    """One Harbor task directory, validated field by field against Harbor's task model."""
    task_id = path.name
    toml_path = path / "task.toml"
    if not is_safe_id(task_id):
        return BrokenTask(benchmark, "invalid_task_name", toml_path,
                          f"task folder name {task_id!r} is not a safe id (no control characters)")
    try:
        data = read_toml(toml_path)
    except BenchmarkError as e:
        return BrokenTask(benchmark, task_id, toml_path, e.message)
    try:
        task_t, meta = _table(data, "task"), _table(data, "metadata")
        agent_t, verifier_t, env_t = _table(data, "agent"), _table(data, "verifier"), _table(data, "environment")
        solution_t = _table(data, "solution")
        _refuse_unsupported(data, env_t, verifier_t, path)
        allow_internet = _network(data, env_t, agent_t, verifier_t)
        agent_timeout = _num(agent_t, "timeout_sec", "agent", maximum=WEEK_S) or 600.0
        verifier_timeout = _num(verifier_t, "timeout_sec", "verifier", maximum=WEEK_S) or 600.0
        build_timeout = _num(env_t, "build_timeout_sec", "environment", maximum=WEEK_S) or 600.0
        # Docker's smallest CPU quota is 0.01 CPU; smaller would silently mean "no limit".
        cpus = _num(env_t, "cpus", "environment", minimum=0.01, exclusive_min=False, maximum=1024) or 1.0
        memory_mb, storage_mb = _sizes(env_t)
        gpus = _num(env_t, "gpus", "environment", integer=True, minimum=0, exclusive_min=False, maximum=64)
        image = env_t.get("docker_image")
        if image is not None and (not isinstance(image, str) or not image.strip()):
            raise ValueError(f"[environment] docker_image must be an image name, got {image!r}")
        # Without a workdir, Harbor uses the image's WORKDIR (the sandbox reads it from the image).
        workdir = env_t.get("workdir")
        if workdir is not None and (not isinstance(workdir, str) or not workdir.startswith("/")):
            raise ValueError(f"[environment] workdir must be an absolute path, got {workdir!r}")
        env = _env_table(env_t, "environment")
        verifier_env = _env_table(verifier_t, "verifier")
        solution_env = _env_table(solution_t, "solution")
        agent_user = _user(agent_t, "agent")
        verifier_user = _user(verifier_t, "verifier")
        healthcheck = _healthcheck(env_t)
        tags = meta.get("tags", [])
        if not isinstance(tags, list):
            raise ValueError("[metadata] tags must be a list")
    except Unsupported as e:
        return BrokenTask(benchmark, task_id, toml_path, str(e), skip=True)
    except ValueError as e:
        return BrokenTask(benchmark, task_id, toml_path, str(e))

    instruction_path = path / "instruction.md"
    if not instruction_path.is_file():
        return BrokenTask(benchmark, task_id, instruction_path, "missing instruction.md (what the agent is told)")
    try:
        instruction = instruction_path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        return BrokenTask(benchmark, task_id, instruction_path, f"not UTF-8 text ({e.reason} at byte {e.start})")
    context = path / "environment"
    has_dockerfile = (context / "Dockerfile").is_file()
    if image is None and not has_dockerfile:
        return BrokenTask(benchmark, task_id, context, "needs environment/Dockerfile or [environment] docker_image")
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
                      cpus=float(cpus), memory_mb=int(memory_mb or 2048),
                      storage_mb=int(storage_mb) if storage_mb else None, allow_internet=allow_internet,
                      gpus=int(gpus) if gpus else None),
        environment=TaskEnvironment(image=image, build_context=context if has_dockerfile else None,
                                    build_timeout_s=float(build_timeout), workdir=workdir, env=env,
                                    agent_user=agent_user),
        markers=tuple(dict.fromkeys(markers)),
        private=HarborData(task_dir=path, verifier_env=verifier_env, verifier_user=verifier_user,
                           solution_env=solution_env, healthcheck=healthcheck),
    )


class HarborFormat(TaskFormat):
    name = "harbor"
    requires = Capability.CONTAINER
    markers = {"harbor": "Harbor-format benchmark tasks"}

    def detect(self, directory: Path) -> Path | None:
        source = directory / "task.toml"
        return source if source.is_file() and (directory / "instruction.md").is_file() else None

    def load_task(self, source: Path, benchmark: str) -> Task | BrokenTask:
        return load_task_dir(source.parent, benchmark)

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
