"""Resolves ``--agent SPEC``: a built-in name, ``path/to/file.py:function`` or ``package.module:function``.

HAL-style functions run in a child process inside the sandbox, so their code is never executed on
the controller or a worker: the spec is resolved and checked by *reading* the source (``ast``: the
function exists and takes the task input first). Only agents that must run in this process
(``@sandbox_agent`` functions, :class:`Agent` subclasses) are imported, with anything they print
at import time kept off the terminal.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import importlib.util
import inspect
import io
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import AgentSpecError
from .base import Agent
from .builtin import BUILTINS
from .function import HalFunctionAgent, SandboxFunctionAgent
from .payload import declared_files, requirements_file


def _load_file(path: Path) -> ModuleType:
    name = f"cloudeval_agent_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise AgentSpecError(f"--agent: cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up by name
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        with _quiet():
            spec.loader.exec_module(module)
    except BaseException as e:
        sys.modules.pop(name, None)
        raise AgentSpecError(f"--agent: importing {path} failed: {type(e).__name__}: {e}") from e
    return module


@contextlib.contextmanager
def _quiet() -> Any:
    """Import-time output of agent code never reaches the terminal (it may hold secrets)."""
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        yield


def _wrap(spec: str, obj: Any, target: str, code_dir: Path | None, sys_path: list[str]) -> Agent:
    if isinstance(obj, Agent):
        return obj
    if inspect.isclass(obj) and issubclass(obj, Agent):
        return obj()
    if not callable(obj):
        raise AgentSpecError(f"--agent {spec}: {target.rpartition(':')[2]!r} is not callable")
    if getattr(obj, "__cloudeval_sandbox_agent__", False):
        return SandboxFunctionAgent(spec, obj)
    try:
        params = list(inspect.signature(obj).parameters.values())
    except (TypeError, ValueError):
        params = []
    if params and not any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) for p in params):
        raise AgentSpecError(f"--agent {spec}: a HAL agent takes the task input as its first argument: "
                             f"run(input: dict, **kwargs)")
    return HalFunctionAgent(spec, target, code_dir, sys_path)


def _decorated_in_process(node: ast.AST) -> bool:
    """``@sandbox_agent`` functions and classes (Agent subclasses) run in this process."""
    if isinstance(node, ast.ClassDef):
        return True
    decorators = getattr(node, "decorator_list", [])
    for deco in decorators:
        name = deco.attr if isinstance(deco, ast.Attribute) else getattr(deco, "id", "")
        if name == "sandbox_agent":
            return True
    return False


def _find_definition(tree: ast.Module, func: str) -> ast.AST | None:
    found: ast.AST | None = None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == func:
            found = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == func for t in targets):
                found = node
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            if any((alias.asname or alias.name.split(".")[0]) == func for alias in node.names):
                found = node
    return found


def _check_signature(spec: str, node: ast.AST) -> None:
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return  # defined another way (assignment, import): checked when it runs
    args = node.args
    if not (args.posonlyargs or args.args or args.vararg):
        raise AgentSpecError(f"--agent {spec}: a HAL agent takes the task input as its first argument: "
                             f"run(input: dict, **kwargs)")


def _parse(spec: str, path: Path) -> ast.Module:
    try:
        return ast.parse(path.read_bytes(), filename=str(path))
    except SyntaxError as e:
        raise AgentSpecError(f"--agent {spec}: {path}:{e.lineno}: syntax error: {e.msg}") from e
    except (OSError, ValueError) as e:
        raise AgentSpecError(f"--agent {spec}: cannot read {path}: {e}") from e


def _module_source(module_part: str, base_dir: Path) -> tuple[Path, Path] | None:
    """(source file, folder to ship) of a dotted module, found without importing anything."""
    parts = module_part.split(".")
    for entry in [str(base_dir), *sys.path]:
        root = Path(entry or ".")
        for candidate in (root.joinpath(*parts).with_suffix(".py"), root.joinpath(*parts, "__init__.py")):
            if candidate.is_file():
                top = root / parts[0]
                return candidate, (top if top.is_dir() else top.with_suffix(".py"))
    return None


def load_agent(spec: str, base_dir: Path) -> Agent:
    """The Agent for ``spec``; raises AgentSpecError with what is wrong and where."""
    spec = spec.strip()
    if spec in BUILTINS:
        return BUILTINS[spec]()
    if ":" not in spec:
        known = ", ".join(sorted(BUILTINS))
        raise AgentSpecError(f"--agent {spec!r}: unknown agent; use a built-in ({known}), "
                             f"path/to/file.py:function or package.module:function")
    module_part, _, func = spec.rpartition(":")
    if not func.isidentifier():
        raise AgentSpecError(f"--agent {spec!r}: {func!r} is not a function name")
    if module_part.endswith(".py") or "/" in module_part:
        path = Path(module_part)
        if not path.is_absolute():
            path = base_dir / path
        path = path.resolve()
        if not path.is_file():
            raise AgentSpecError(f"--agent {spec!r}: file {path} does not exist")
        node = _find_definition(_parse(spec, path), func)
        if node is None:
            raise AgentSpecError(f"--agent {spec!r}: {path} defines no {func!r}")
        if _decorated_in_process(node):
            module = _load_file(path)
            return _wrap(spec, getattr(module, func), f"{path}:{func}", path.parent, [str(path.parent)])
        _check_signature(spec, node)
        return HalFunctionAgent(spec, f"{path}:{func}", path.parent, [str(path.parent)],
                                files=declared_files(spec, path), requirements=requirements_file(path.parent))
    found = _module_source(module_part, base_dir)
    if found is not None:
        source, code_dir = found
        node = _find_definition(_parse(spec, source), func)
        if node is None:
            raise AgentSpecError(f"--agent {spec!r}: module {module_part!r} ({source}) defines no {func!r}")
        if not _decorated_in_process(node):
            _check_signature(spec, node)
            return HalFunctionAgent(spec, spec, code_dir, [str(code_dir.parent)],
                                    requirements=requirements_file(code_dir.parent))
    try:
        if str(base_dir) not in sys.path:
            sys.path.insert(0, str(base_dir))
        with _quiet():
            module = importlib.import_module(module_part)
    except ImportError as e:
        raise AgentSpecError(f"--agent {spec!r}: cannot import {module_part!r}: {e}") from e
    except BaseException as e:
        raise AgentSpecError(f"--agent {spec!r}: importing {module_part!r} failed: "
                             f"{type(e).__name__}: {e}") from e
    if not hasattr(module, func):
        raise AgentSpecError(f"--agent {spec!r}: module {module_part!r} defines no {func!r}")
    top = module_part.split(".")[0]
    top_mod = sys.modules.get(top)
    package_dir: Path | None = None
    top_file = getattr(top_mod, "__file__", None)
    if top_file:
        top_path = Path(top_file)
        package_dir = top_path.parent if top_path.name == "__init__.py" else top_path
    return _wrap(spec, getattr(module, func), spec, package_dir, [str(base_dir)])
