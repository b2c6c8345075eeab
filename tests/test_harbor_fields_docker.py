"""Harbor fields honoured in a real container, each read back from inside it: legacy ``memory`` sizes
and ``network_mode = "no-network"`` (cgroup and interfaces), ``[agent] user`` and ``[solution] env``
templates with the oracle's ``DEBIAN_FRONTEND`` (what the solution saw), ``[verifier] env`` templates,
and ``[environment.healthcheck]`` (passing after a first failure; never passing)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.docker_support import (
    docker_api,  # noqa: F401 - a fixture
    new_run_id,
    task_results,
    wait_no_containers,
    write_harbor_task,
)
from tests.test_harbor_docker import run_pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]

READ_BACK = r'''
mkdir -p /logs/verifier
python3 - <<'PY'
import json, os
def read(path):
    try:
        return open(path).read().strip()
    except OSError:
        return ""
mem = read("/sys/fs/cgroup/memory.max") or read("/sys/fs/cgroup/memory/memory.limit_in_bytes")
seen = {}
for line in read("/tmp/oracle.txt").splitlines():
    key, _, value = line.partition("=")
    seen[key] = value
nets = [n for n in os.listdir("/sys/class/net") if n != "lo"]
facts = {"memory_limit_bytes": int(mem) if mem.isdigit() else -1, "other_interfaces": len(nets),
         "oracle_user_nobody": int(seen.get("user") == "nobody"),
         "greeting_default": int(seen.get("GREETING") == "hi"),
         "debian_noninteractive": int(seen.get("DEBIAN_FRONTEND") == "noninteractive"),
         "verifier_token": int(os.environ.get("TOKEN") == "passed-value-1234"),
         "verifier_mode_default": int(os.environ.get("MODE") == "fast"),
         "healthchecked": int(os.path.exists("/tmp/hc"))}
print(json.dumps(facts))
expected = {"memory_limit_bytes": 300 * 1024 * 1024, "other_interfaces": 0}
ok = all(facts[k] == v for k, v in expected.items()) and all(
    facts[k] == 1 for k in facts if k not in expected)
facts["reward"] = 1.0 if ok else 0.0
json.dump(facts, open("/logs/verifier/reward.json", "w"))
PY
'''

SOLVE = ('{ echo "user=$(id -un)"; echo "GREETING=$GREETING"; echo "DEBIAN_FRONTEND=$DEBIAN_FRONTEND"; } '
         '> /tmp/oracle.txt\n')

FIELDS_TOML = '''[agent]
timeout_sec = 60
user = "nobody"

[verifier]
timeout_sec = 30
env = { TOKEN = "${CE_TEST_TOKEN}", MODE = "${CE_UNSET_MODE:-fast}" }

[solution]
env = { GREETING = "${CE_UNSET_GREETING:-hi}" }

[environment]
memory = "300M"
cpus = 0.5
network_mode = "no-network"
%s
[environment.healthcheck]
command = "test -f /tmp/hc || { touch /tmp/hc; exit 1; }"
interval_sec = 0.2
start_interval_sec = 0.2
retries = 2
'''

UNHEALTHY_TOML = '''[agent]
timeout_sec = 60
[verifier]
timeout_sec = 30
[environment]
memory_mb = 256
[environment.healthcheck]
command = "echo not yet; false"
interval_sec = 0.1
retries = 2
'''


def test_harbor_fields_in_a_container(tmp_path: Path, docker_api: Any) -> None:  # noqa: F811
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "benchmark.toml").write_text('format = "harbor"\nname = "fields"\n')
    for name, toml in (("fields", FIELDS_TOML % ""), ("unhealthy", UNHEALTHY_TOML)):
        task = write_harbor_task(bench, name, solve=SOLVE, test=READ_BACK)
        (task / "task.toml").write_text(toml)
    run_id = new_run_id("fields")
    res = run_pytest(tmp_path, "bench", "--sandbox=docker", "--agent", "oracle", "--run-id", run_id,
                     "--pass-env", "CE_TEST_TOKEN", env={"CE_TEST_TOKEN": "passed-value-1234"})
    results = task_results(tmp_path / "results" / run_id)
    assert set(results) == {"fields", "unhealthy"}, res.stdout + res.stderr
    fields = results["fields"]
    facts = json.loads((tmp_path / "results" / run_id / "fields" / "fields" / "logs" / "verifier"
                        / "reward.json").read_text())
    assert fields["outcome"] == "passed", (facts, fields["message"], res.stdout[-3000:])
    assert facts["memory_limit_bytes"] == 300 * 1024 * 1024 and facts["other_interfaces"] == 0
    unhealthy = results["unhealthy"]
    assert unhealthy["outcome"] == "error" and "[environment.healthcheck]" in unhealthy["message"], unhealthy
    assert not (tmp_path / "results" / run_id / "fields" / "unhealthy" / "logs" / "agent" / "oracle.log").exists()
    assert wait_no_containers(docker_api, run_id, within=5) == []
