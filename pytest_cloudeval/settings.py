"""One frozen ``Settings`` for the run, merged CLI > environment > ini, shipped to every worker.

Settings flow one way: the core options (``CORE_OPTIONS``, here) are resolved once on the
controller by ``settings_from_config``; each subsystem adds its own frozen section once, on the
controller, from its own table (the store: ``artifacts/settings.py`` into ``store``; cloud
workers: ``backends/options.py`` into ``cloud_run``); xdist workers receive the whole object
(``to_dict``/``from_dict``) and never read options themselves. The sandbox's fields are core rows;
sandboxes read only their typed view of them, ``sandbox_section`` (a ``SandboxOptions``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import secrets as _secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .artifacts.settings import StoreSettings
from .backends.options import CloudSettings
from .options import (
    Option,
    bounded_int,
    byte_size,
    choice,
    finite_float,
    positive_float,
    positive_int,
    resolve,
)
from .redact import unsafe_reason
from .sandbox.k8s_config import K8sConfig

if TYPE_CHECKING:
    from .sandbox.base import SandboxOptions

RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
SECRET_NAME_RE = re.compile(r"(API_?KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)
ENV_REDACT_MIN_CHARS = 8
"""Secret-looking variables of the environment (not passed to agents) are redacted from this length on."""
FLAG_VALUES = frozenset({"0", "1", "true", "false", "yes", "no", "on", "off", "none", "null"})
"""Values of secret-looking variables that are switches, not secrets: skipped without a warning."""


def _run_id(text: str) -> str:
    if not RUN_ID_RE.match(text) or ".." in text:
        raise ValueError("a run id is letters, digits, '.', '_' and '-' (at most 128), no '..'")
    return text


def _memory_mb(text: str) -> int:
    """Accept 512 (MiB), 512m, 2g, 2GiB."""
    t = text.strip()
    number = float(t) if re.fullmatch(r"[0-9]*\.?[0-9]+", t) else byte_size(t) / 1024 ** 2
    if not math.isfinite(number) or number > 16 * 1024 ** 2:
        raise ValueError("memory must be a finite size of at most 16 TiB")
    value = int(number)
    if value < 4:
        raise ValueError("memory must be at least 4 MiB")
    return value


def _agent_arg(text: str) -> str:
    if "=" not in text or not text.split("=", 1)[0].strip():
        raise ValueError("expected KEY=VALUE")
    return text


CORE_OPTIONS: tuple[Option, ...] = (
    Option("--agent", "cloudeval_agent", "agent: a built-in name (oracle, noop), path/to/file.py:function "
           "or package.module:function", env="CLOUDEVAL_AGENT", ini="cloudeval_agent", metavar="SPEC"),
    Option("--agent-arg", "cloudeval_agent_args", "KEY=VALUE passed to the agent as a keyword argument "
           "(repeatable)", type=_agent_arg, action="append", short="-A", metavar="KEY=VALUE"),
    Option("--sandbox", "cloudeval_sandbox", "where agents and judges run: local, docker or k8s",
           default="local", env="CLOUDEVAL_SANDBOX", ini="cloudeval_sandbox", metavar="NAME"),
    Option("--sandbox-image", "cloudeval_sandbox_image", "container image for tasks that name none (the "
           "docker sandbox's runner image)", default="cloudeval/runner:bookworm", env="CLOUDEVAL_SANDBOX_IMAGE",
           ini="cloudeval_sandbox_image", metavar="IMAGE"),
    Option("--task-timeout", "cloudeval_task_timeout", "wall-clock seconds for an agent (default: the "
           "task's own, else 2700)", type=positive_float, env="CLOUDEVAL_TASK_TIMEOUT",
           ini="cloudeval_task_timeout", metavar="SECONDS"),
    Option("--limit-multiplier", "cloudeval_limit_multiplier", "relax judged time and memory limits by "
           "this factor (recorded in results)", type=positive_float, default=1.0,
           env="CLOUDEVAL_LIMIT_MULTIPLIER", ini="cloudeval_limit_multiplier", metavar="X"),
    Option("--results-dir", "cloudeval_results_dir", "where results are written", default="results",
           env="CLOUDEVAL_RESULTS_DIR", ini="cloudeval_results_dir", metavar="DIR"),
    Option("--run-id", "cloudeval_run_id", "name of this run (default: a sortable timestamp)",
           type=_run_id, env="CLOUDEVAL_RUN_ID", ini="cloudeval_run_id", metavar="RUN_ID"),
    Option("--resume", "cloudeval_resume", "continue RUN_ID: tasks stored as passed or failed are not "
           "run again", type=_run_id, metavar="RUN_ID"),
    Option("--repeat", "cloudeval_repeat", "run every task K times (pass@k)", type=bounded_int(1, 1000), default=1,
           env="CLOUDEVAL_REPEAT", ini="cloudeval_repeat", metavar="K"),
    Option("--secrets-env", "cloudeval_secrets_env", "file of KEY=VALUE secrets passed to agents, "
           "redacted from every output", env="CLOUDEVAL_SECRETS_ENV", ini="cloudeval_secrets_env",
           metavar="FILE"),
    Option("--pass-env", "cloudeval_pass_env", "environment variable passed to agents as a secret "
           "(repeatable)", action="append", metavar="NAME"),
    Option("--pass-threshold", "cloudeval_pass_threshold", "minimum reward that passes a rewarded task",
           type=finite_float, default=1.0, env="CLOUDEVAL_PASS_THRESHOLD", ini="cloudeval_pass_threshold",
           metavar="X"),
    Option("--cpus", "cloudeval_cpus", "CPU limit per sandbox (default: the task's)", type=positive_float,
           env="CLOUDEVAL_CPUS", ini="cloudeval_cpus", metavar="N"),
    Option("--memory", "cloudeval_memory", "memory limit per sandbox, e.g. 2g (default: the task's)",
           type=_memory_mb, env="CLOUDEVAL_MEMORY", ini="cloudeval_memory", metavar="SIZE"),
    Option("--network", "cloudeval_network", "sandbox network: auto (the task decides), none, bridge",
           type=choice("auto", "none", "bridge"), default="auto", env="CLOUDEVAL_NETWORK",
           ini="cloudeval_network", metavar="MODE"),
    Option("--output-cap", "cloudeval_output_cap", "bytes of a command's output kept (head and tail)",
           type=positive_int, default=1024 * 1024, env="CLOUDEVAL_OUTPUT_CAP", ini="cloudeval_output_cap",
           metavar="BYTES"),
    Option("--attempts", "cloudeval_attempts", "how many times a task lost to infrastructure (a dead "
           "worker or VM) is tried", type=positive_int, default=3, env="CLOUDEVAL_ATTEMPTS",
           ini="cloudeval_attempts", metavar="N"),
    Option("--cleanup", "cloudeval_cleanup", "remove every sandbox container (and cloud worker) this "
           "plugin labeled, then exit", action="store_true"),
    Option("--artifacts-url", "cloudeval_artifacts_url", "also upload each task's results to this URL "
           "(gs://BUCKET/PREFIX)", env="CLOUDEVAL_ARTIFACTS_URL", ini="cloudeval_artifacts_url",
           metavar="URL"),
    Option("--force-build", "cloudeval_force_build", "build a task's environment (Harbor environment/) even "
           "when its image is present", action="store_true", env="CLOUDEVAL_FORCE_BUILD"),
    Option("--default-memory", "cloudeval_default_memory", "memory limit of sandboxes whose task sets none "
           "(e.g. USACO agents)", type=_memory_mb, default=2048, env="CLOUDEVAL_DEFAULT_MEMORY",
           ini="cloudeval_default_memory", metavar="SIZE"),
    Option("--keep-agent-processes", "cloudeval_keep_agent_processes", "let processes an agent started run on "
           "while its work is judged (Harbor services; lets a root agent forge its reward)", action="store_true",
           env="CLOUDEVAL_KEEP_AGENT_PROCESSES"),
    Option("--copy-max-files", "cloudeval_copy_max_files", "files copied back from a sandbox at most per "
           "task (logs, artifacts); the rest is listed as left out", type=positive_int, default=10_000,
           env="CLOUDEVAL_COPY_MAX_FILES", ini="cloudeval_copy_max_files", metavar="N"),
    Option("--usaco-judge", "cloudeval_usaco_judge", "USACO judging semantics: hal (as HAL's judge: exec under "
           "its guard, sys.exit is a runtime error) or script (python3 submission.py); recorded in results",
           type=choice("hal", "script"), default="hal", env="CLOUDEVAL_USACO_JUDGE", ini="cloudeval_usaco_judge",
           metavar="MODE"),
)


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + _secrets.token_hex(2)


def parse_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; blank lines and # comments ignored; optional quotes and ``export``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise pytest.UsageError(f"--secrets-env: {path} does not exist") from e
    except (OSError, UnicodeDecodeError) as e:
        raise pytest.UsageError(f"--secrets-env: cannot read {path}: {e}") from e
    values: dict[str, str] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].strip()
        if "=" not in line:
            raise pytest.UsageError(f"--secrets-env: {path}:{lineno}: expected KEY=VALUE")
        key, value = line.split("=", 1)
        key, value = key.strip(), value.strip()
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
            raise pytest.UsageError(f"--secrets-env: {path}:{lineno}: {key!r} is not a variable name")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


@dataclass(frozen=True)
class Settings:
    """Everything a controller or worker needs to run tasks. Secrets are kept out of ``repr``."""

    agent: str | None = None
    agent_kwargs: Mapping[str, Any] = field(default_factory=dict)
    sandbox: str = "local"
    sandbox_image: str = "cloudeval/runner:bookworm"
    task_timeout_s: float | None = None
    limit_multiplier: float = 1.0
    results_dir: str = "results"
    run_id: str = ""
    resuming: bool = False
    repeat: int = 1
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    secrets_file: str | None = None
    """The ``--secrets-env`` file, absolute (never shipped to remote workers)."""
    redact_values: tuple[str, ...] = field(default=(), repr=False)
    pass_threshold: float = 1.0
    cpus: float | None = None
    memory_mb: int | None = None
    network: str = "auto"
    output_cap_bytes: int = 1024 * 1024
    attempts: int = 3
    artifacts_url: str | None = None
    rootdir: str = "."
    rootdir_name: str = ""
    """The rootdir's folder name on the controller, when this process runs on a copy of it under
    another name (remote workers): benchmarks named after their folder keep their local name."""
    invocation_dir: str = ""
    work_root: str | None = None
    worker: str = "main"
    cloud: str | None = None
    ship_results: bool = False
    """Workers send each task's folder to the controller in their reports (remote workers)."""
    store: StoreSettings | None = None
    """The result store's section (``--artifacts-url``), added on the controller by the store."""
    cloud_run: CloudSettings | None = None
    """The cloud workers' section (``--cloud``), added on the controller by the cloud plugin."""
    k8s: K8sConfig | None = None
    """The Kubernetes sandbox's section (``--sandbox=k8s``), added on the controller by ``sandbox/k8s_config``."""
    force_build: bool = False
    default_memory_mb: int = 2048
    copy_max_files: int = 10_000
    keep_agent_processes: bool = False
    usaco_judge: str = "hal"
    """``hal`` or ``script`` semantics of the USACO judge (see judge/usaco.py)."""

    @property
    def run_dir(self) -> Path:
        return Path(self.results_dir) / self.run_id

    def public_dict(self) -> dict[str, Any]:
        """The configuration written to run.json: secret names only, never values."""
        data = self.to_dict()
        data.pop("redact_values")
        data["secrets"] = sorted(self.secrets)
        return data

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["agent_kwargs"] = dict(self.agent_kwargs)
        data["secrets"] = dict(self.secrets)
        data["redact_values"] = list(self.redact_values)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Settings:
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["redact_values"] = tuple(values.get("redact_values", ()))
        if isinstance(values.get("store"), Mapping):
            values["store"] = StoreSettings.from_dict(values["store"])
        if isinstance(values.get("cloud_run"), Mapping):
            values["cloud_run"] = CloudSettings.from_dict(values["cloud_run"])
        if isinstance(values.get("k8s"), Mapping):
            values["k8s"] = K8sConfig.from_dict(values["k8s"])
        return cls(**values)

    def local_name(self, folder: Path) -> str:
        """The name ``folder`` has on the controller (the rootdir's copy on a VM is named otherwise)."""
        if self.rootdir_name and folder.resolve() == Path(self.rootdir).resolve():
            return self.rootdir_name
        return folder.name

    @property
    def sandbox_section(self) -> SandboxOptions:
        """What a sandbox reads of the settings (secrets reach it per task, in its spec's env)."""
        from .sandbox.config import options_from_settings

        return options_from_settings(self)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def settings_from_config(config: pytest.Config, environ: Mapping[str, str] | None = None) -> Settings:
    env = dict(os.environ if environ is None else environ)
    values = {opt.dest: resolve(config, opt, env) for opt in CORE_OPTIONS}

    from .agents.args import parse_agent_args

    raw_args = values["cloudeval_agent_args"] or []
    kwargs = parse_agent_args(raw_args)  # typed as HAL types -A values

    secrets: dict[str, str] = {}
    origin: dict[str, str] = {}
    secrets_file = None
    if values["cloudeval_secrets_env"]:
        path = Path(values["cloudeval_secrets_env"])
        if not path.is_absolute():
            path = Path(config.invocation_params.dir) / path
        secrets.update(parse_env_file(path))
        origin.update((name, f"--secrets-env {path}") for name in secrets)
        secrets_file = str(path.resolve())
    for name in values["cloudeval_pass_env"] or []:
        if name not in env:
            raise pytest.UsageError(f"--pass-env {name}: no such environment variable")
        secrets[name] = env[name]
        origin[name] = "--pass-env"
    # A secret given to agents must be redactable: masking a short or common value would rewrite the
    # plugin's own records ("failed"), and leaving it unmasked would leak it. The value is never named.
    for name, value in secrets.items():
        reason = unsafe_reason(value) if value else None
        if reason:
            raise pytest.UsageError(f"{origin[name]}: secret {name} cannot be redacted safely: {reason}. "
                                    f"Give it a longer, unguessable value, or do not pass it.")
    redact = {v for v in secrets.values() if v}
    # Secret-looking variables of the environment are redacted too, whether or not they are passed;
    # those too short or common to mask safely are skipped (agents do not get them) with a warning.
    unmasked = []
    for name, value in sorted(env.items()):
        if not SECRET_NAME_RE.search(name) or name in secrets or not value:
            continue
        if len(value) >= ENV_REDACT_MIN_CHARS and unsafe_reason(value) is None:
            redact.add(value)
        elif value.strip().lower() not in FLAG_VALUES:
            unmasked.append(name)
    if unmasked and not hasattr(config, "workerinput"):
        config.issue_config_time_warning(pytest.PytestWarning(
            f"cloudeval: not redacting {', '.join(unmasked)}: too short or too common to mask safely "
            f"(they are not passed to agents; pass a secret with --secrets-env/--pass-env)"), stacklevel=2)
    for value in (item.split("=", 1)[1] for item in raw_args):
        if value in redact:
            raise pytest.UsageError("-A: pass secrets with --secrets-env or --pass-env, not on the command line")

    resume = values["cloudeval_resume"]
    run_id = values["cloudeval_run_id"]
    if resume and run_id and resume != run_id:
        raise pytest.UsageError(f"--resume {resume} and --run-id {run_id} disagree: give one")
    run_id = resume or run_id or new_run_id()

    results_dir = Path(values["cloudeval_results_dir"])
    if not results_dir.is_absolute():
        results_dir = Path(config.invocation_params.dir) / results_dir
    existing = next((d for d in (results_dir, *results_dir.parents) if d.exists()), None)
    if existing is not None and not existing.is_dir():
        raise pytest.UsageError(f"--results-dir {results_dir}: {existing} exists and is not a folder")

    sandbox = values["cloudeval_sandbox"]
    return Settings(
        agent=values["cloudeval_agent"],
        agent_kwargs=kwargs,
        sandbox=sandbox,
        sandbox_image=values["cloudeval_sandbox_image"],
        task_timeout_s=values["cloudeval_task_timeout"],
        limit_multiplier=values["cloudeval_limit_multiplier"],
        results_dir=str(results_dir),
        run_id=run_id,
        resuming=bool(resume),
        repeat=values["cloudeval_repeat"],
        secrets=secrets,
        secrets_file=secrets_file,
        redact_values=tuple(sorted(redact, key=len, reverse=True)),
        pass_threshold=values["cloudeval_pass_threshold"],
        cpus=values["cloudeval_cpus"],
        memory_mb=values["cloudeval_memory"],
        network=values["cloudeval_network"],
        output_cap_bytes=values["cloudeval_output_cap"],
        attempts=values["cloudeval_attempts"],
        artifacts_url=values["cloudeval_artifacts_url"],
        force_build=bool(values["cloudeval_force_build"]),
        default_memory_mb=values["cloudeval_default_memory"],
        copy_max_files=values["cloudeval_copy_max_files"],
        keep_agent_processes=bool(values["cloudeval_keep_agent_processes"]),
        rootdir=str(config.rootpath),
        invocation_dir=str(config.invocation_params.dir),
        usaco_judge=values["cloudeval_usaco_judge"],
    )
