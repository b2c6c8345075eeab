"""What of an agent's folder reaches a sandbox, and its ``requirements.txt`` installed once per host.

An agent file ships alone, plus the files it declares in a module-level literal
``cloudeval_files = ["helpers.py", "prompts/"]`` (paths relative to its folder). Never its whole
folder: with ``my_agent.py`` at a repository's root that would carry the benchmark (reference
solutions, hidden tests), results and secrets files into every container. A declaration that
names a benchmark folder, a results folder or an env file is refused.

``requirements.txt`` beside the agent (HAL's convention) is installed with the host's pip into
``<cache>/agent-deps/<hash>`` (``pip install --target``), once per host and requirements content
under a file lock, and put on the agent's ``sys.path`` (copied into containers, which reach no
package index): pure-Python packages then work in any sandbox.
"""

from __future__ import annotations

import ast
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ..errors import AgentSpecError, SandboxError

DECLARATION = "cloudeval_files"
REQUIREMENTS = "requirements.txt"
PIP_TIMEOUT_S = 900.0


def declared_files(spec: str, agent_file: Path) -> list[Path]:
    """The extra files and folders ``agent_file`` declares, checked; raises AgentSpecError."""
    try:
        tree = ast.parse(agent_file.read_bytes(), filename=str(agent_file))
    except (OSError, SyntaxError, ValueError):
        return []
    value = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == DECLARATION
                                                for t in node.targets):
            value = node.value
    if value is None:
        return []
    try:
        names = ast.literal_eval(value)
    except ValueError as e:
        raise AgentSpecError(f"--agent {spec}: {agent_file}: {DECLARATION} must be a literal list of "
                             f"relative paths") from e
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise AgentSpecError(f"--agent {spec}: {agent_file}: {DECLARATION} must be a list of strings")
    folder = agent_file.parent.resolve()
    files = []
    for name in names:
        target = (folder / name).resolve()
        if not target.is_relative_to(folder) or target == folder:
            raise AgentSpecError(f"--agent {spec}: {DECLARATION} entry {name!r} is not inside {folder}")
        if not target.exists():
            raise AgentSpecError(f"--agent {spec}: {DECLARATION} entry {name!r}: {target} does not exist")
        problem = _forbidden(target)
        if problem:
            raise AgentSpecError(f"--agent {spec}: {DECLARATION} entry {name!r}: {problem}; an agent "
                                 f"never ships benchmarks, results or secrets")
        files.append(target)
    return files


def _forbidden(target: Path) -> str | None:
    paths = [target] + (list(target.rglob("*")) if target.is_dir() else [])
    for path in paths:
        if path.name == "benchmark.toml":
            return f"{path} belongs to a benchmark folder"
        if path.name == ".env" or path.suffix == ".env":
            return f"{path} looks like a secrets file"
        if path.is_dir() and path.name == "results":
            return f"{path} is a results folder"
    return None


def requirements_file(folder: Path) -> Path | None:
    path = folder / REQUIREMENTS
    return path if path.is_file() else None


def cache_root() -> Path:
    base = os.environ.get("CLOUDEVAL_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "pytest-cloudeval")
    return Path(base) / "agent-deps"


def install_requirements(requirements: Path) -> Path:
    """The folder holding ``requirements``' packages, installed once per host (file lock).

    Raises SandboxError (an infrastructure error of the run, not the agent's failure) when pip fails.
    """
    content = requirements.read_bytes()
    key = hashlib.sha256(content + f"|py{sys.version_info[0]}.{sys.version_info[1]}".encode()).hexdigest()[:24]
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    target = root / key
    if (target / ".complete").exists():
        return target
    with open(root / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one install per host; others wait, then reuse it
        if (target / ".complete").exists():
            return target
        partial = root / f"{key}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        try:
            done = subprocess.run(
                [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
                 "--target", str(partial), "-r", str(requirements)],
                cwd=requirements.parent, capture_output=True, text=True, timeout=PIP_TIMEOUT_S,
                stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise SandboxError(f"{requirements}: cannot install the agent's requirements: {e}") from e
        if done.returncode != 0:
            raise SandboxError(f"{requirements}: pip install failed (exit {done.returncode}): "
                               f"{(done.stderr or done.stdout)[-1500:]}")
        (partial / ".complete").write_text(key)
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
    return target
