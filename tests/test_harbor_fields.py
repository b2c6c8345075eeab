"""Harbor's task model, field by field (no Docker): honoured fields reach the typed task, fields that
cannot be honoured skip the task naming the field, malformed values error naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_cloudeval.errors import BenchmarkError
from pytest_cloudeval.model import Task
from pytest_cloudeval.tasks.base import BrokenTask, resolve_env
from pytest_cloudeval.tasks.harbor import HarborData, load_task_dir


def task_dir(root: Path, toml: str, *, compose: bool = False, name: str = "t1") -> Path:
    task = root / name
    for sub in ("environment", "solution", "tests"):
        (task / sub).mkdir(parents=True, exist_ok=True)
    (task / "task.toml").write_text(toml)
    (task / "instruction.md").write_text("do it\n")
    (task / "environment" / "Dockerfile").write_text("FROM scratch\n")
    if compose:
        (task / "environment" / "docker-compose.yaml").write_text("services: {}\n")
    (task / "tests" / "test.sh").write_text("exit 0\n")
    return task


def load(tmp_path: Path, toml: str, **kw: Any) -> Task | BrokenTask:
    return load_task_dir(task_dir(tmp_path, toml, **kw), "b")


@pytest.mark.parametrize("sizes,memory_mb,storage_mb", [
    ('memory = "4G"\nstorage = "10G"', 4096, 10240),
    ('memory = "8g"', 8192, None),
    ('memory = "1.5G"', 1536, None),
    ('memory = "512M"\nstorage = "512m"', 512, 512),
    ('memory = " 2048M "', 2048, None),
    ('memory = "4194304K"', 4096, None),
    ('memory = "4G"\nmemory_mb = 4096', 4096, None),
    ("memory_mb = 3000\nstorage_mb = 700", 3000, 700),
])
def test_sizes(tmp_path: Path, sizes: str, memory_mb: int, storage_mb: int | None) -> None:
    task = load(tmp_path, f"[environment]\n{sizes}\n")
    assert isinstance(task, Task), task
    assert task.limits.memory_mb == memory_mb and task.limits.storage_mb == storage_mb


@pytest.mark.parametrize("sizes,message", [
    ('memory = "4GB"', "[environment] memory = '4GB' is not a size"),
    ('memory = "lots"', "[environment] memory = 'lots' is not a size"),
    ("memory = 4096", "[environment] memory must be a size string"),
    ('memory = "nanG"', "[environment] memory = 'nanG' is not a size"),
    ('memory = "1e400G"', "memory ('1e400G' in MB) must be a whole number"),
    ('storage = "0.1K"', "storage ('0.1K' in MB) must be positive"),
    ('memory = "4G"\nmemory_mb = 2048', "[environment] memory = '4G' (4096 MB) and memory_mb = 2048 disagree"),
])
def test_bad_sizes(tmp_path: Path, sizes: str, message: str) -> None:
    task = load(tmp_path, f"[environment]\n{sizes}\n")
    assert isinstance(task, BrokenTask) and not task.skip and message in task.message, task


def test_honoured_fields(tmp_path: Path) -> None:
    task = load(tmp_path, """
[agent]
user = "agent"
network_mode = "no-network"
[verifier]
user = 0
env = { TOKEN = "${API_TOKEN}", MODE = "${MODE:-fast}" }
[solution]
env = { HELPER = "on" }
[environment]
network_mode = "no-network"
build_timeout_sec = 120
gpus = 1
workdir = "/srv"
docker_image = "img:1"
env = { A = "1", B = "${B:-dflt}" }
[environment.healthcheck]
command = "test -f /ready"
interval_sec = 0.5
retries = 4
""")
    assert isinstance(task, Task), task
    assert task.limits.allow_internet is False and task.limits.gpus == 1
    env = task.environment
    assert (env.image, env.workdir, env.agent_user, env.build_timeout_s) == ("img:1", "/srv", "agent", 120.0)
    assert env.build_context == tmp_path / "t1" / "environment"
    data = task.private
    assert isinstance(data, HarborData)
    assert data.verifier_user == "0" and data.solution_env == {"HELPER": "on"}
    assert data.healthcheck is not None and data.healthcheck.retries == 4 and data.healthcheck.interval_s == 0.5
    assert resolve_env(env.env, {}, task.source, "environment") == {"A": "1", "B": "dflt"}
    assert resolve_env(data.verifier_env, {"API_TOKEN": "t0k"}, task.source, "verifier") == \
        {"TOKEN": "t0k", "MODE": "fast"}
    with pytest.raises(BenchmarkError, match=r"\[verifier\] env TOKEN = '\$\{API_TOKEN\}': variable API_TOKEN "
                                             "was not passed"):
        resolve_env(data.verifier_env, {}, task.source, "verifier")


def test_templates_never_read_the_host_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "host-secret")
    task = load(tmp_path, '[environment]\nenv = { K = "${AWS_SECRET_ACCESS_KEY:-none}" }\n')
    assert isinstance(task, Task)
    assert resolve_env(task.environment.env, {}, task.source, "environment") == {"K": "none"}


def test_legacy_allow_internet_and_defaults(tmp_path: Path) -> None:
    off = load(tmp_path, "[environment]\nallow_internet = false\n")
    assert isinstance(off, Task) and off.limits.allow_internet is False
    on = load_task_dir(task_dir(tmp_path, "", name="t2"), "b")
    assert isinstance(on, Task) and on.limits.allow_internet is True
    assert on.environment.workdir is None  # the image's WORKDIR, as Harbor
    assert on.environment.agent_user is None


@pytest.mark.parametrize("toml,field", [
    ('[[steps]]\nname = "one"\n', "steps"),
    ('artifacts = ["/app/out"]\n', "artifacts"),
    ('[environment]\nos = "windows"\n', "[environment] os"),
    ('[environment]\nnetwork_mode = "allowlist"\nallowed_hosts = ["pypi.org"]\n', "[environment] network_mode"),
    ('[agent]\nnetwork_mode = "no-network"\n', "[agent] network_mode"),
    ('[verifier]\nnetwork_mode = "no-network"\n', "[verifier] network_mode"),
    ('[verifier]\nenvironment_mode = "separate"\n', "[verifier] environment"),
    ('[verifier.environment]\ncpus = 1\n', "[verifier] environment"),
    ('[[verifier.collect]]\ncommand = "x"\nservice = "db"\n', "[verifier] collect"),
    ('[[environment.mcp_servers]]\nname = "m"\nurl = "http://x"\n', "[environment] mcp_servers"),
    ('[environment]\ntpu = { type = "v5e", topology = "2x2" }\n', "[environment] tpu"),
    ('[environment]\nskills_dir = "/skills"\n', "[environment] skills_dir"),
])
def test_refused_fields_skip_naming_the_field(tmp_path: Path, toml: str, field: str) -> None:
    task = load(tmp_path, toml)
    assert isinstance(task, BrokenTask) and task.skip, task
    assert field in task.message and "not supported" in task.message


def test_compose_environment_is_refused(tmp_path: Path) -> None:
    task = load(tmp_path, "", compose=True)
    assert isinstance(task, BrokenTask) and task.skip and "docker-compose.yaml" in task.message


def test_refused_task_is_skipped_in_a_run(pytester: pytest.Pytester) -> None:
    task_dir(pytester.path / "bench", '[environment]\nos = "windows"\n', name="win")
    (pytester.path / "bench" / "benchmark.toml").write_text('format = "harbor"\n')
    res = pytester.runpytest("bench", "--agent", "oracle", "-rs")
    res.assert_outcomes(skipped=1)
    res.stdout.fnmatch_lines(["*task.toml: [[]environment[]] os = \"windows\" is not supported*"])
