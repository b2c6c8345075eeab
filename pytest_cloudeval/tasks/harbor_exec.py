"""Running Harbor tasks in a container sandbox: the task's image, the oracle, the verifier, the logs.

Called by :class:`~pytest_cloudeval.tasks.harbor.HarborFormat`. Images are built from
``environment/`` once per content hash (``cloudeval-task/<task>:<hash12>``) and reused across
tasks, workers and runs; nothing is pulled. The verifier's reward decides: pass means
``reward >= --pass-threshold``; a verifier that leaves no readable reward is an *error*.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import re
import stat
import tempfile
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..agents.base import AgentFailure
from ..errors import BenchmarkError, SandboxError, VerifierError
from ..model import AgentOutput, Judgement, Task
from ..redact import redactor_for
from ..results import COPY_BACK_CAP_BYTES, TEMP_PREFIX, atomic_write_bytes, atomic_write_json, redact_tree
from ..sandbox.base import ExecResult, Sandbox
from ..settings import Settings

LOG_DIRS = ("/logs/agent", "/logs/verifier", "/logs/artifacts")
LOGS_CAP_BYTES = COPY_BACK_CAP_BYTES  # one limit: all that is copied back is redacted on the way
"""At most this much of /logs comes back into the results folder (the rest is listed as left out)."""
BUILD_LOG_TAIL = 40
IMAGE_REPO = "cloudeval-task"
HASH_LABEL = "cloudeval.env-hash"

_images: dict[str, str] = {}
"""Task folder -> image, per process: a task's image is checked once per worker."""
_collected: weakref.WeakSet[Sandbox] = weakref.WeakSet()
"""Sandboxes whose logs were brought back already."""


# -- images ---------------------------------------------------------------------------------------


def content_hash(folder: Path) -> str:
    """SHA-256 of a build context: relative paths, executable bits, link targets and contents."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            digest.update(f"L {rel} -> {os.readlink(path)}\n".encode())
        elif stat.S_ISDIR(info.st_mode):
            digest.update(f"D {rel}\n".encode())
        elif stat.S_ISREG(info.st_mode):
            digest.update(f"F {rel} {info.st_mode & 0o111 and 1} {info.st_size}\n".encode())
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


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


def ensure_image(task: Task, settings: Settings) -> str:
    """The image ``task`` runs in: its ``docker_image`` (must exist locally) or its built environment."""
    from ..sandbox import docker_engine as engine

    folder = Path(str(task.private["dir"]))
    cached = _images.get(str(folder))
    if cached is not None:
        return cached
    given = task.private.get("image")
    if isinstance(given, str) and given:
        engine.inspect_image(given, hint=f"task {task.task_id} names [environment] docker_image = {given!r}, "
                                         "and images are never pulled here: build or load it first")
        _images[str(folder)] = given
        return given
    env_dir = folder / "environment"
    digest = content_hash(env_dir)
    tag = f"{IMAGE_REPO}/{repo_name(task.task_id)}:{digest[:12]}"
    if not _image_exists(tag):
        with build_lock(digest):
            if not _image_exists(tag) and not _tag_same_environment(digest, tag):
                _build(task, env_dir, tag, digest)
    _images[str(folder)] = tag
    return tag


def _image_exists(tag: str) -> bool:
    import docker.errors

    from ..sandbox import docker_engine as engine

    api = engine.client()
    try:
        engine.with_retries(f"inspect image {tag}", lambda: api.inspect_image(tag),
                            passthrough=(docker.errors.NotFound,))
    except docker.errors.NotFound:
        return False
    return True


def _tag_same_environment(digest: str, tag: str) -> bool:
    """Reuse an image built from an identical environment of another task (a cheap tag)."""
    from ..sandbox import docker_engine as engine

    api = engine.client()
    found = engine.with_retries("list images", lambda: api.images(filters={"label": f"{HASH_LABEL}={digest}"},
                                                                  quiet=True))
    if not found:
        return False
    repo, _, version = tag.rpartition(":")
    engine.with_retries(f"tag image {tag}", lambda: api.tag(found[0], repo, version))
    return True


def _build(task: Task, env_dir: Path, tag: str, digest: str) -> None:
    from ..sandbox import docker_engine as engine

    api = engine.client(engine.BUILD_TIMEOUT_S)
    lines: list[str] = []
    try:
        stream = api.build(path=str(env_dir), tag=tag, rm=True, forcerm=True, pull=False, decode=True,
                           # Containers inherit image labels: none that the sweeps select on.
                           labels={HASH_LABEL: digest, "cloudeval.built-for": task.task_id[:60]})
        error = None
        for chunk in stream:
            text = chunk.get("stream") or chunk.get("status") or ""
            if text:
                lines.extend(text.rstrip("\n").splitlines())
                del lines[:-BUILD_LOG_TAIL]
            if chunk.get("error"):
                error = str(chunk["error"]).strip()
                lines.append(error)
    except Exception as e:  # noqa: BLE001 - engine or context trouble: an infrastructure error
        raise SandboxError(f"task {task.task_id}: building {env_dir} failed: {engine.describe(e)}") from e
    if error is not None:
        tail = "\n".join(lines[-BUILD_LOG_TAIL:])
        raise SandboxError(f"task {task.task_id}: docker build of {env_dir} failed: {error}\n"
                           f"--- build log (tail) ---\n{tail}")


# -- running --------------------------------------------------------------------------------------


def _workdir(task: Task, sandbox: Sandbox) -> str:
    workdir = task.private.get("workdir")
    return workdir if isinstance(workdir, str) and workdir else sandbox.workdir


def prepare(task: Task, sandbox: Sandbox, settings: Settings) -> None:
    """Create the log folders (writable by any user: agent and verifier may differ).

    The workdir is created by the engine when the container starts (its working directory), and
    the task's ``[environment] env`` reaches every command through the sandbox's environment.
    """
    make_dirs = getattr(sandbox, "make_dirs", None)
    if make_dirs is not None:
        make_dirs(list(LOG_DIRS), mode=0o777)
        return
    quoted = " ".join(LOG_DIRS)
    result = sandbox.exec(f"mkdir -p {quoted} && chmod 777 {quoted}", timeout=60, user="0")
    if not result.ok:
        raise SandboxError(f"cannot create the log folders: {result.stderr[-500:]}")


def _output_log(title: str, result: ExecResult) -> str:
    status = "timed out" if result.timed_out else f"exit {result.exit_code}"
    parts = [f"=== {title}: {status} after {result.duration_s:.2f} s ===\n", result.stdout]
    if result.stderr:
        parts.append("\n=== stderr ===\n" + result.stderr)
    return "".join(parts)


def run_oracle(task: Task, sandbox: Sandbox, settings: Settings, timeout_s: float) -> AgentOutput:
    """The ``oracle`` agent: copy ``solution/`` to /solution and run ``solve.sh`` in the workdir."""
    solution = Path(str(task.private["dir"])) / "solution"
    if not (solution / "solve.sh").is_file():
        raise BenchmarkError(solution, f"task {task.task_id} has no solution/solve.sh for the oracle agent")
    sandbox.copy_in(solution, "/solution")
    result = sandbox.exec(["bash", "/solution/solve.sh"], timeout=timeout_s, cwd=_workdir(task, sandbox))
    sandbox.write_file("/logs/agent/oracle.log", _output_log("solution/solve.sh", result))
    if result.timed_out:
        raise AgentFailure("AGENT_TIMEOUT", f"solution/solve.sh did not finish within {timeout_s:g} s")
    metrics: dict[str, Any] = {"exit_code": result.exit_code}
    if result.output_truncated:
        metrics["output_truncated"] = True
    return AgentOutput(answer=None, metrics=metrics)


def verify(task: Task, sandbox: Sandbox, settings: Settings, task_dir: Path) -> Judgement:
    """Copy ``tests/`` to /tests, run ``test.sh`` within ``[verifier] timeout_sec``, read the reward."""
    tests = Path(str(task.private["dir"])) / "tests"
    sandbox.copy_in(tests, "/tests")
    timeout = task.limits.verifier_timeout_s or 600.0
    env = {str(k): str(v) for k, v in (task.private.get("verifier_env") or {}).items()}
    user = task.private.get("verifier_user") or None
    result = sandbox.exec(["bash", "/tests/test.sh"], timeout=timeout, env=env, cwd=_workdir(task, sandbox),
                          user=user if isinstance(user, str) else None)
    atomic_write_bytes(task_dir / "logs" / "verifier" / "test-output.txt",
                       redactor_for(settings).text(_output_log("tests/test.sh", result)).encode())
    if result.timed_out:
        return Judgement(False, 0.0, "VERIFIER_TIMEOUT",
                         f"tests/test.sh did not finish within {timeout:g} s ([verifier] timeout_sec)")
    # Nothing runs in the container after the verifier: bring the logs back now and read the
    # reward from that copy (one engine call instead of two or three).
    left_out = _collect(task, sandbox, settings, task_dir)
    copied = task_dir / "logs" / "verifier"

    def read(name: str) -> bytes:
        try:
            return (copied / name).read_bytes()
        except FileNotFoundError:
            if left_out == []:
                raise  # the copy is complete: the verifier did not write it
            return sandbox.read_file(f"/logs/verifier/{name}", max_bytes=1024 * 1024)  # maybe over the cap

    reward, metrics, source = read_reward(read, result)
    reward = float(reward)
    passed = reward >= settings.pass_threshold
    message = f"reward {reward:g} from {source} ({'>=' if passed else '<'} pass threshold {settings.pass_threshold:g})"
    others = {k: v for k, v in metrics.items() if k != "reward"}
    if others:
        message += "; " + ", ".join(f"{k}={_show(v)}" for k, v in list(others.items())[:12])
    if result.exit_code not in (0, None):
        message += f"; test.sh exited {result.exit_code}"
    return Judgement(passed, reward, f"REWARD {reward:g}", message,
                     report={"reward": reward, "metrics": metrics, "source": source,
                             "verifier_exit_code": result.exit_code},
                     metrics=metrics)


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if math.isfinite(value) else None


def _show(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def read_reward(read: Callable[[str], bytes], result: ExecResult) -> tuple[float, dict[str, int | float], str]:
    """(reward, numeric metrics, file) from reward.json or reward.txt, as ``read(name)`` returns them
    (FileNotFoundError if absent); VerifierError if neither is usable."""
    tail = (result.stderr or result.stdout)[-1500:]
    try:
        raw = read("reward.json")
    except FileNotFoundError:
        pass
    else:
        try:
            data = json.loads(raw)
        except ValueError as e:
            raise VerifierError(f"/logs/verifier/reward.json is not JSON ({e})") from e
        if not isinstance(data, dict):
            raise VerifierError(f"/logs/verifier/reward.json must be an object of numbers, got {type(data).__name__}")
        metrics = {str(k): n for k, v in data.items() if (n := _number(v)) is not None}
        if "reward" in data:
            reward = _number(data["reward"])
            if reward is None:
                raise VerifierError(f"/logs/verifier/reward.json: reward must be a finite number, got {data['reward']!r}")
        elif len(metrics) == 1:
            reward = next(iter(metrics.values()))
        else:
            raise VerifierError(f"/logs/verifier/reward.json has no 'reward' key (keys: {sorted(data)[:10]})")
        metrics["reward"] = reward
        return reward, metrics, "reward.json"
    try:
        raw = read("reward.txt")[:4096]
    except FileNotFoundError:
        raise VerifierError(f"the verifier wrote no /logs/verifier/reward.txt or reward.json "
                            f"(test.sh exit {result.exit_code}): {tail}") from None
    text = raw.decode("utf-8", errors="replace").strip()
    try:
        reward = float(text)
    except ValueError:
        raise VerifierError(f"/logs/verifier/reward.txt holds {text[:80]!r}, not a number") from None
    if not math.isfinite(reward):
        raise VerifierError(f"/logs/verifier/reward.txt holds {text[:80]!r}, not a finite number")
    return reward, {"reward": reward}, "reward.txt"


def collect_logs(task: Task, sandbox: Sandbox, settings: Settings, task_dir: Path) -> None:
    """Bring /logs/{agent,verifier,artifacts} back under ``task_dir/logs`` (capped), and the sandbox's record."""
    _collect(task, sandbox, settings, task_dir)


def _collect(task: Task, sandbox: Sandbox, settings: Settings, task_dir: Path) -> list[str] | None:
    """``collect_logs``, returning what was left out (None: not known, e.g. another sandbox kind)."""
    describe = getattr(sandbox, "describe", None)
    if describe is not None:
        atomic_write_json(task_dir / "sandbox.json", redactor_for(settings).obj(describe()))
    if getattr(sandbox, "container_id", "") is None or sandbox in _collected:
        return None  # the container never came up, or verify() collected already
    _collected.add(sandbox)
    dest = task_dir / "logs"
    left_out: list[str] | None = None
    report_copy = getattr(sandbox, "copy_out_report", None)
    if report_copy is not None:
        wanted = {d.rsplit("/", 1)[1] for d in LOG_DIRS}
        # Redacted (contents and names) as the archive streams in, before any file gets its name.
        report = report_copy("/logs", dest, LOGS_CAP_BYTES, only=lambda rel: rel.split("/")[0] in wanted,
                             redactor=redactor_for(settings))
        left_out = [] if report is None else list(report.skipped)
        if report is not None and report.stopped_early:
            left_out.append(f"(stopped reading after the {LOGS_CAP_BYTES}-byte cap: later files not listed)")
    else:
        # A sandbox that cannot redact while copying: copy under a temporary name (never uploaded,
        # removed on resume), redact there, then give the folder its name.
        for folder in LOG_DIRS:
            name = folder.rsplit("/", 1)[1]
            staging = dest / f"{TEMP_PREFIX}{name}"
            if sandbox.copy_out(folder, staging, LOGS_CAP_BYTES):
                redact_tree(staging, redactor_for(settings))
                os.replace(staging, dest / name)
    if left_out:
        atomic_write_bytes(dest / "LEFT_OUT.txt", redactor_for(settings).text(
            "Files of /logs not copied back (size cap or not regular files):\n" + "\n".join(left_out) + "\n"
        ).encode())
    return left_out
