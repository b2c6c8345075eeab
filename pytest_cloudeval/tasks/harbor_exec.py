"""Running Harbor tasks in a container sandbox: the task's image, the oracle, the verifier, the logs.

Called by :class:`~pytest_cloudeval.tasks.harbor.HarborFormat`. The task's image (prebuilt, pulled
or built from ``environment/``) is the sandbox's business (``Task.environment``). The verifier's
reward decides: pass means ``reward >= --pass-threshold``; a verifier that leaves no readable reward
is an *error*. Nothing the agent started runs during verification (the runner stops its processes)
and the verifier's output folder is made fresh, as root, after the agent phase.
"""

from __future__ import annotations

import json
import math
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..agents.base import AgentFailure
from ..errors import BenchmarkError, SandboxError, VerifierError
from ..model import AgentOutput, Judgement, Task
from ..redact import redactor_for
from ..results import COPY_BACK_CAP_BYTES, TEMP_PREFIX, atomic_write_bytes, atomic_write_json, move_redacted
from ..sandbox.base import CopyReport, ExecResult, Sandbox
from ..settings import Settings
from .base import resolve_env
from .harbor import data

LOG_DIRS = ("/logs/agent", "/logs/verifier", "/logs/artifacts")
AGENT_DIRS = ("/logs/agent", "/logs/artifacts")
"""Writable by the agent; /logs/verifier is made only after the agent phase, for the verifier alone."""
VERIFIER_DIR = "/logs/verifier"
LOGS_CAP_BYTES = COPY_BACK_CAP_BYTES  # one limit: all that is copied back is redacted on the way
"""At most this much of /logs comes back into the results folder (the rest is listed as left out)."""

_collected: weakref.WeakSet[Sandbox] = weakref.WeakSet()
"""Sandboxes whose logs were brought back already."""


# -- running --------------------------------------------------------------------------------------


def _workdir(task: Task, sandbox: Sandbox) -> str:
    return task.environment.workdir or sandbox.workdir


def prepare(task: Task, sandbox: Sandbox, settings: Settings) -> None:
    """Create the agent's log folders (writable by any user: agent and oracle may differ).

    The workdir is created by the engine when the container starts (its working directory), and
    the task's ``[environment] env`` reaches every command through the sandbox's environment.
    """
    sandbox.make_dirs(list(AGENT_DIRS), mode=0o777)
    healthcheck(task, sandbox)


def healthcheck(task: Task, sandbox: Sandbox) -> None:
    """``[environment.healthcheck]`` as Docker runs HEALTHCHECK: failures during the start period do
    not count; then ``retries`` consecutive failures mean the environment never became ready."""
    check = data(task).healthcheck
    if check is None:
        return
    started = time.monotonic()
    failures = 0
    while True:
        result = sandbox.exec(["sh", "-c", check.command], timeout=check.timeout_s, cwd=_workdir(task, sandbox))
        if result.ok:
            return
        last = "timed out" if result.timed_out else f"exit {result.exit_code}: {(result.stderr or result.stdout)[-300:]}"
        in_start = time.monotonic() - started < check.start_period_s
        if not in_start:
            failures += 1
            if failures >= check.retries:
                raise SandboxError(f"task {task.task_id}: [environment.healthcheck] command {check.command!r} "
                                   f"failed {failures} time(s) in a row ({last}); the agent was not started")
        time.sleep(check.start_interval_s if in_start else check.interval_s)


FRESH_DIR_FAILED = "\036cloudeval-fresh-verifier-dir-failed\036"
FRESH_THEN_VERIFY = ('{ { ! [ -e /logs/verifier ] || mv /logs/verifier "/logs/.verifier-old-$$"; } && '
                     'rm -rf "/logs/.verifier-old-$$" && mkdir -p /logs/verifier && chown 0:0 /logs/verifier '
                     f'&& chmod 755 /logs/verifier; }} || {{ printf "{FRESH_DIR_FAILED}" >&2; exit 125; }}; '
                     'exec bash /tests/test.sh')
"""A root verifier's one command: ``_fresh_verifier_dir`` (as root, owned by root), then test.sh."""


def _runs_as_root(sandbox: Sandbox, user: str | None) -> bool:
    return user in ("0", "root", "0:0") or (user is None and bool(getattr(sandbox, "default_user_is_root", False)))


def _fresh_verifier_dir(sandbox: Sandbox, user: str | None) -> None:
    """/logs/verifier made anew, as root, owned by the verifier's user and writable by it alone.

    Called after the agent's processes are stopped: whatever the agent put there (a reward file, a
    link elsewhere, a folder it owns) is gone, and nothing of the agent can write there any more.
    """
    owner = user or ""
    # Moved aside first (atomic), so a writer racing the removal cannot make it fail.
    script = ('{ ! [ -e /logs/verifier ] || mv /logs/verifier "/logs/.verifier-old-$$"; } && '
              'rm -rf "/logs/.verifier-old-$$" && mkdir -p /logs/verifier && '
              'if [ -n "$1" ]; then chown "$1" /logs/verifier; else chown "$(id -u):$(id -g)" /logs/verifier; fi '
              '&& chmod 755 /logs/verifier')
    if not owner and not getattr(sandbox, "default_user_is_root", False):
        # The verifier runs as the sandbox's default user: make the folder as that user.
        script = ('{ ! [ -e /logs/verifier ] || mv /logs/verifier "/logs/.verifier-old-$$"; } && '
                  'rm -rf "/logs/.verifier-old-$$"')
        result = sandbox.exec(["sh", "-c", script], timeout=60, user="0")
        if result.ok:
            result = sandbox.exec(["sh", "-c", "mkdir -p /logs/verifier && chmod 755 /logs/verifier"], timeout=60)
    else:
        result = sandbox.exec(["sh", "-c", script, "sh", owner], timeout=60, user="0")
    if not result.ok:
        raise SandboxError(f"cannot make a fresh {VERIFIER_DIR}: {(result.stderr or result.stdout)[-300:]}")


def _output_log(title: str, result: ExecResult) -> str:
    status = "timed out" if result.timed_out else f"exit {result.exit_code}"
    parts = [f"=== {title}: {status} after {result.duration_s:.2f} s ===\n", result.stdout]
    if result.stderr:
        parts.append("\n=== stderr ===\n" + result.stderr)
    return "".join(parts)


def run_oracle(task: Task, sandbox: Sandbox, settings: Settings, timeout_s: float) -> AgentOutput:
    """The ``oracle`` agent: copy ``solution/`` to /solution and run ``solve.sh`` in the workdir."""
    solution = data(task).task_dir / "solution"
    if not (solution / "solve.sh").is_file():
        raise BenchmarkError(solution, f"task {task.task_id} has no solution/solve.sh for the oracle agent")
    sandbox.copy_in(solution, "/solution")
    # As Harbor's oracle: [solution] env (templates resolved) and a non-interactive apt.
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    env.update(resolve_env(data(task).solution_env, settings.secrets, task.source, "solution"))
    result = sandbox.exec(["bash", "/solution/solve.sh"], timeout=timeout_s, cwd=_workdir(task, sandbox),
                          env=env, user=task.environment.agent_user)
    sandbox.write_file("/logs/agent/oracle.log", _output_log("solution/solve.sh", result))
    if result.timed_out:
        raise AgentFailure("AGENT_TIMEOUT", f"solution/solve.sh did not finish within {timeout_s:g} s")
    metrics: dict[str, Any] = {"exit_code": result.exit_code}
    if result.output_truncated:
        metrics["output_truncated"] = True
    return AgentOutput(answer=None, metrics=metrics)


def verify(task: Task, sandbox: Sandbox, settings: Settings, task_dir: Path) -> Judgement:
    """Copy ``tests/`` to /tests, run ``test.sh`` within ``[verifier] timeout_sec``, read the reward."""
    info = data(task)
    sandbox.copy_in(info.task_dir / "tests", "/tests")
    timeout = task.limits.verifier_timeout_s or 600.0
    env = resolve_env(info.verifier_env, settings.secrets, task.source, "verifier")
    # The sandbox's default user is [agent] user; the verifier is not the agent (root then).
    user = info.verifier_user or ("0" if task.environment.agent_user else None)
    if _runs_as_root(sandbox, user):
        # The fresh folder and the verifier in one command (one engine round trip less per task);
        # where the sandbox can, /logs comes back with it too (another one less: see _collect).
        snapshot = getattr(sandbox, "exec_then_snapshot", None)
        if snapshot is not None:
            result = snapshot(["sh", "-c", FRESH_THEN_VERIFY], src="/logs", timeout=timeout, env=env,
                              cwd=_workdir(task, sandbox), user=user)
        else:
            result = sandbox.exec(["sh", "-c", FRESH_THEN_VERIFY], timeout=timeout, env=env,
                                  cwd=_workdir(task, sandbox), user=user)
        said = result.stderr + result.stdout
        if result.exit_code == 125 and FRESH_DIR_FAILED in said:
            raise SandboxError(f"cannot make a fresh {VERIFIER_DIR}: "
                               f"{said.replace(FRESH_DIR_FAILED, '').strip()[-300:]}")
    else:
        _fresh_verifier_dir(sandbox, user)
        result = sandbox.exec(["bash", "/tests/test.sh"], timeout=timeout, env=env, cwd=_workdir(task, sandbox),
                              user=user)
    atomic_write_bytes(task_dir / "logs" / "verifier" / "test-output.txt",
                       redactor_for(settings).text(_output_log("tests/test.sh", result)).encode())
    if result.timed_out:
        return Judgement(False, 0.0, "VERIFIER_TIMEOUT",
                         f"tests/test.sh did not finish within {timeout:g} s ([verifier] timeout_sec)")
    # Nothing runs in the container after the verifier: bring the logs back now and read the
    # reward from that copy (one engine call instead of two or three).
    copied_logs = _collect(task, sandbox, settings, task_dir)
    complete = copied_logs is not None and copied_logs.skipped_count == 0 and not copied_logs.stopped_early
    copied = task_dir / "logs" / "verifier"

    def read(name: str) -> bytes:
        try:
            return (copied / name).read_bytes()
        except FileNotFoundError:
            if complete:
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
    if copied_logs is not None and copied_logs.skipped_count:
        message += f"; {copied_logs.skipped_count} file(s) of /logs left out (logs/LEFT_OUT.txt)"
        metrics = dict(metrics) | {"logs_left_out": copied_logs.skipped_count}
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


def _collect(task: Task, sandbox: Sandbox, settings: Settings, task_dir: Path) -> CopyReport | None:
    """``collect_logs``, returning its report (None: collected already, or no /logs)."""
    if sandbox in _collected:
        return None  # verify() collected already
    _collected.add(sandbox)
    dest = task_dir / "logs"
    wanted = {d.rsplit("/", 1)[1] for d in LOG_DIRS}
    red = redactor_for(settings)
    # The file cap is the sandbox's (--copy-max-files); bytes are capped lower for logs.
    if getattr(sandbox, "redacts_copies", False):
        # Names and contents are redacted as they stream in, before any file gets its name.
        report = sandbox.copy_out_report("/logs", dest, LOGS_CAP_BYTES,  # type: ignore[call-arg]
                                         only=lambda rel: rel.split("/")[0] in wanted, redactor=red)
    else:
        # Copied under a temporary name (never uploaded, removed on resume), redacted on the way
        # to the final names.
        staging = task_dir / f"{TEMP_PREFIX}logs"
        report = sandbox.copy_out_report("/logs", staging, LOGS_CAP_BYTES,
                                         only=lambda rel: rel.split("/")[0] in wanted)
        move_redacted(staging, dest, red)
    left_out = [red.text(line) for line in ([] if report is None else report.left_out())]
    if report is not None:
        atomic_write_json(task_dir / "copy.json", red.obj(report.to_dict() | {"max_bytes": LOGS_CAP_BYTES}))
    if left_out:
        atomic_write_bytes(dest / "LEFT_OUT.txt",
                           ("Files of /logs not copied back (size or file-count cap, or not regular files):\n"
                            + "\n".join(left_out) + "\n").encode())
    return report
