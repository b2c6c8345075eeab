"""Task output copied back from a Docker sandbox (issue 9, items 7-10): a 64 MiB artifact full of a
secret, a secret in artifact file and folder names, a secret spelled with a quote, a backslash and an
umlaut, and a ``kill -9`` while the logs are being copied back. Checked on disk, in the bucket (GCS
emulator) and on the terminal; each test fails if its attack works again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_cloudeval.redact import MASK
from pytest_cloudeval.results import TEMP_PREFIX
from tests.docker_support import docker_api, new_run_id, run_containers, write_harbor_benchmark  # noqa: F401
from tests.test_redaction import ESCAPED_SECRET, files_with, leaks

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parent.parent
NAME_SECRET = "N\u00e4me-Secret-7f3a"  # fits in a file name
BIG = 64 * 1024 * 1024

SOLVE_BIG_AND_NAMES = f'''
set -eu
mkdir -p /logs/artifacts "/logs/artifacts/dir-$NAME_SECRET"
echo "name leak" > "/logs/artifacts/dir-$NAME_SECRET/leak-$NAME_SECRET.txt"
yes "$ESC_SECRET" | head -c {BIG} > /logs/artifacts/big.log
# The JSON-escaped spelling (\\" and \\\\), as a JSON writer in the sandbox would give it.
printf '{{"note": "%s"}}\\n' "$(printf '%s' "$ESC_SECRET" | sed 's/\\\\/\\\\\\\\/g; s/"/\\\\"/g')" > /logs/artifacts/escaped.json
echo done > /app/out.txt
'''


def run_pytest(cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pytest", *args, "-p", "no:cacheprovider", "-q", "-W", "ignore"]
    full_env = dict(os.environ, **(env or {}))
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), full_env.get("PYTHONPATH")]))
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env)


def write_secrets(where: Path) -> None:
    (where / "secrets.env").write_text(f"NAME_SECRET={NAME_SECRET}\nESC_SECRET='{ESCAPED_SECRET}'\n",
                                       encoding="utf-8")


@pytest.mark.slow
@pytest.mark.cloud
def test_big_artifact_and_secret_names_are_redacted_on_disk_and_in_the_bucket(
        tmp_path: Path, docker_api: Any, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    from pytest_cloudeval.testing.gcs import GcsEmulator

    write_harbor_benchmark(tmp_path / "bench", ("leaky",), solve=SOLVE_BIG_AND_NAMES)
    write_secrets(tmp_path)
    run_id = new_run_id("copyback")
    with GcsEmulator(buckets=["results"], gate=True) as emu:
        res = run_pytest(tmp_path, "bench", "--sandbox=docker", "--agent", "oracle", "--run-id", run_id,
                         "--secrets-env", "secrets.env", "--artifacts-url", "gs://results/runs",
                         "--upload-max-bytes", "1m", env=emu.env())
        objects = {name: bytes(emu.read("results", name)) for name in emu.objects("results", f"runs/{run_id}/")}
    assert res.returncode == 0, res.stdout + res.stderr
    task = tmp_path / "results" / run_id / "gen" / "leaky"
    artifacts = task / "logs" / "artifacts"
    # Item 9: the names are redacted on disk and in the bucket.
    assert (artifacts / f"dir-{MASK}" / f"leak-{MASK}.txt").read_text() == "name leak\n"
    assert f"runs/{run_id}/gen/leaky/logs/artifacts/dir-{MASK}/leak-{MASK}.txt" in objects, sorted(objects)
    # Item 8: the 64 MiB artifact is redacted if it was copied back, else it is listed as left out.
    big = artifacts / "big.log"
    if big.exists():
        with big.open("rb") as f:
            assert MASK.encode() in f.read(1 << 16)
    else:
        assert "big.log" in (task / "logs" / "LEFT_OUT.txt").read_text()
    # Items 7 and 9: no spelling of either secret in any file or name, locally or in the bucket.
    for secret in (NAME_SECRET, ESCAPED_SECRET):
        assert files_with(tmp_path, secret) == {}, secret
        assert not leaks((res.stdout + res.stderr).encode(), secret)
        assert {n: leaks(n.encode() + b"\n" + d, secret) for n, d in objects.items()
                if leaks(n.encode() + b"\n" + d, secret)} == {}, secret
    assert not list(task.rglob(f"{TEMP_PREFIX}*"))


SOLVE_BIG = f'''
set -eu
mkdir -p /logs/artifacts
yes "$ESC_SECRET" | head -c {48 * 1024 * 1024} > /logs/artifacts/big.log
echo done > /app/out.txt
'''


@pytest.mark.slow
def test_kill_9_during_copy_back_leaves_no_unredacted_file(tmp_path: Path, docker_api: Any) -> None:  # noqa: F811
    """Item 10: the copy goes through the redactor into a temporary name; killing the run while it
    streams leaves no unredacted byte on disk under any name, and a resume removes the temporaries."""
    write_harbor_benchmark(tmp_path / "bench", ("big",), solve=SOLVE_BIG)
    write_secrets(tmp_path)
    run_id = new_run_id("kill9")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "pytest", "bench", "--sandbox=docker", "--agent", "oracle", "--run-id", run_id,
           "--secrets-env", "secrets.env", "-p", "no:cacheprovider", "-q", "-W", "ignore"]
    artifacts = tmp_path / "results" / run_id / "gen" / "big" / "logs" / "artifacts"
    try:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 240
        while not list(artifacts.glob(f"{TEMP_PREFIX}*")):
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else b""
            assert time.monotonic() < deadline, "the copy-back never started"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)  # the pytest process is the worker here (no xdist)
        proc.communicate(timeout=60)
        assert not (artifacts / "big.log").exists(), "the final name was given before the copy was complete"
        assert files_with(tmp_path, ESCAPED_SECRET) == {}, "an unredacted byte of the copy is on disk"

        res = run_pytest(tmp_path, "bench", "--sandbox=docker", "--agent", "oracle", "--resume", run_id,
                         "--secrets-env", "secrets.env")
        assert res.returncode == 0, res.stdout + res.stderr
        assert not list((tmp_path / "results" / run_id).rglob(f"{TEMP_PREFIX}*"))
        result = json.loads((artifacts.parent.parent / "result.json").read_text())
        assert result["outcome"] == "passed"
        assert files_with(tmp_path, ESCAPED_SECRET) == {}
    finally:
        run_pytest(tmp_path, "--cleanup", "--run-id", run_id, timeout=120)
        assert run_containers(docker_api, run_id) == []
