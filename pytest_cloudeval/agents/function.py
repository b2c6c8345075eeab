"""Agents given as functions: HAL-style ``run(input, **kwargs)`` (run in a child process inside the
sandbox, so a hang or crash is contained) and ``@sandbox_agent`` functions (run in-process, acting
through a :class:`~pytest_cloudeval.sandbox.base.SandboxHandle`)."""

from __future__ import annotations

import io
import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..model import AgentOutput
from ..sandbox.base import SandboxHandle
from . import hal_child
from .base import Agent, AgentContext, AgentFailure, split_answer
from .payload import install_requirements

CHILD_DIR = ".cloudeval"


class HalFunctionAgent(Agent):
    """A HAL-compatible function, run as ``{task_id: fields} -> {task_id: answer}`` in a child process."""

    def __init__(self, spec: str, target: str, code_dir: Path | None, sys_path: list[str], *,
                 files: list[Path] | None = None, requirements: Path | None = None) -> None:
        self.name = spec
        self.target = target  # absolute file path or module, plus ":function"
        self.code_dir = code_dir  # the agent file's folder, or the package shipped whole
        self.sys_path = sys_path
        self.files = list(files or [])  # what the agent file declares in cloudeval_files
        self.requirements = requirements
        self._deps: Path | None = None

    def _dependencies(self) -> Path | None:
        """requirements.txt installed on this host (once, cached by content), or None."""
        if self.requirements is None:
            return None
        if self._deps is None:
            self._deps = install_requirements(self.requirements)
        return self._deps

    def solve(self, ctx: AgentContext) -> AgentOutput:
        sandbox, task = ctx.sandbox, ctx.task
        task_input = {task.task_id: dict(task.agent_input)}
        deps = self._dependencies()
        if sandbox.host_root is not None:
            base = str(sandbox.host_root / CHILD_DIR)
            python = sys.executable
            target, sys_path = self.target, list(self.sys_path) + ([str(deps)] if deps else [])
            child = hal_child.__file__
        else:
            base = f"/tmp/{CHILD_DIR}"
            python = "python3"
            child = f"{base}/hal_child.py"
            sandbox.write_file(child, Path(hal_child.__file__).read_bytes())
            target, sys_path = self.target, []
            if self.code_dir is not None:
                module_part, _, func = self.target.rpartition(":")
                if module_part.endswith(".py"):
                    # The agent's file and what it declares: never its whole folder.
                    agent_file = Path(module_part)
                    sandbox.copy_in(agent_file, f"{base}/agent/{agent_file.name}")
                    for extra in self.files:
                        sandbox.copy_in(extra, f"{base}/agent/{extra.relative_to(agent_file.parent.resolve())}")
                    target = f"{base}/agent/{agent_file.name}:{func}"
                else:  # a package or module: ship it under its own name
                    sandbox.copy_in(self.code_dir, f"{base}/agent/{self.code_dir.name}")
                sys_path = [f"{base}/agent"]
            if deps is not None:
                sandbox.copy_in(deps, f"{base}/deps")
                sys_path.append(f"{base}/deps")
        spec = {"target": target, "sys_path": sys_path, "input_path": f"{base}/input.json",
                "output_path": f"{base}/output.json", "kwargs": dict(ctx.kwargs)}
        sandbox.write_file(f"{base}/input.json", json.dumps(task_input, default=str))
        sandbox.write_file(f"{base}/spec.json", json.dumps(spec))
        env = dict(ctx.env)
        env["CLOUDEVAL_TASK_ID"] = task.task_id
        env["PYTHONUNBUFFERED"] = "1"
        result = sandbox.exec([python, child, f"{base}/spec.json"], timeout=ctx.timeout_s, env=env,
                              cwd=sandbox.workdir)
        ctx.log.write(result.stdout.encode())
        if result.stderr:
            ctx.log.write(b"\n--- agent stderr ---\n" + result.stderr.encode())
        if result.timed_out:
            raise AgentFailure("AGENT_TIMEOUT", f"the agent did not finish within {ctx.timeout_s:g} s")
        try:
            reply = json.loads(sandbox.read_file(f"{base}/output.json"))
        except FileNotFoundError:
            tail = (result.stderr or result.stdout)[-1500:]
            raise AgentFailure("AGENT_ERROR", f"the agent process died (exit {result.exit_code}) "
                                              f"without an answer: {tail}") from None
        except ValueError as e:
            raise AgentFailure("AGENT_ERROR", f"unreadable agent output: {e}") from e
        if not reply.get("ok"):
            raise AgentFailure(reply.get("kind", "AGENT_ERROR"), str(reply.get("error", ""))[-4000:])
        return hal_output(reply.get("value"), task.task_id)


def hal_output(value: Any, task_id: str) -> AgentOutput:
    """Check and unpack ``{task_id: answer}`` / ``{task_id: {"answer": ..., "metrics": ...}}``."""
    if not isinstance(value, dict):
        raise AgentFailure("BAD_ANSWER", f"the agent must return {{task_id: answer}}, got {type(value).__name__}")
    if task_id not in value:
        keys = ", ".join(repr(k) for k in list(value)[:5])
        raise AgentFailure("BAD_ANSWER", f"the agent's reply has no entry for {task_id!r} (keys: {keys})")
    answer, metrics = split_answer(value[task_id])
    return AgentOutput(answer=answer, metrics=metrics)


class _ThreadRoutedStream(io.TextIOBase):
    """Stands in for sys.stdout/sys.stderr: writes of agent threads go to their agent's log."""

    def __init__(self, original: Any) -> None:
        self.original = original

    def write(self, text: str) -> int:
        sink = _routes.get(threading.get_ident())
        if sink is None and threading.current_thread() is not threading.main_thread():
            # A thread the agent started: the latest agent's log (pytest itself prints from the
            # main thread), so nothing an agent prints reaches the terminal unredacted.
            sink = _routes.get(0)
        if sink is None:
            return int(self.original.write(text) or 0)
        sink.write(text.encode("utf-8", errors="replace"))
        return len(text)

    def flush(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self.original.flush()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return int(self.original.fileno())


_routes: dict[int, Any] = {}
_routes_lock = threading.Lock()


def route_output(log: Any) -> None:
    """Send this thread's prints to ``log`` (installs the routing streams once per process)."""
    with _routes_lock:
        for name in ("stdout", "stderr"):
            current = getattr(sys, name)
            if not isinstance(current, _ThreadRoutedStream):
                setattr(sys, name, _ThreadRoutedStream(current))
        _routes[threading.get_ident()] = log
        _routes[0] = log


class SandboxFunctionAgent(Agent):
    """An ``@sandbox_agent`` function: runs in this process, acts through the sandbox handle."""

    def __init__(self, spec: str, fn: Callable[..., Any]) -> None:
        self.name = spec
        self.fn = fn

    def solve(self, ctx: AgentContext) -> AgentOutput:
        deadline = time.monotonic() + ctx.timeout_s
        handle = SandboxHandle(ctx.sandbox, deadline)
        box: dict[str, Any] = {}

        def target() -> None:
            # What the agent prints goes to its log (redacted with the task's files), never
            # straight to the terminal, even with -s.
            route_output(ctx.log)
            try:
                box["value"] = self.fn(dict(ctx.task.agent_input), handle, **dict(ctx.kwargs))
            except BaseException as e:  # noqa: BLE001 - any agent exception is the agent's failure
                box["error"] = e

        thread = threading.Thread(target=target, name=f"agent-{ctx.task.task_id}", daemon=True)
        thread.start()
        thread.join(ctx.timeout_s)
        # The agent's phase is over: a thread it left behind cannot run commands while it is judged.
        handle.revoke()
        if thread.is_alive():
            # The thread cannot be killed; closing the sandbox (by the caller) ends its commands.
            raise AgentFailure("AGENT_TIMEOUT", f"the agent did not finish within {ctx.timeout_s:g} s")
        if "error" in box:
            e = box["error"]
            if isinstance(e, TimeoutError):
                raise AgentFailure("AGENT_TIMEOUT", str(e))
            import traceback

            text = "".join(traceback.format_exception(type(e), e, e.__traceback__))
            raise AgentFailure("AGENT_ERROR", text[-4000:])
        answer, metrics = split_answer(box.get("value"))
        return AgentOutput(answer=answer, metrics=metrics)
