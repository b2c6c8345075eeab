"""Pure functions that wire xdist to remote workers: paths on the VM, execnet specs, worker argv,
worker settings, and where the agent's code goes. No I/O beyond ``Path.exists``; unit-tested.
"""

from __future__ import annotations

import importlib.util
import math
import sys
import sysconfig
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BackendError
from .options import BACKEND_OPTIONS
from .watchdog import REMOTE_BASE

# Folders inside the project bundle for code from outside the rootdir.
AGENT_DIR = "_cloudeval_agent"
AGENT_PATH_DIR = "_cloudeval_agent_path"

# Options stripped from the argv that xdist forwards to workers: they configure the controller
# (distribution, cloud, report files) or name controller paths that do not exist on the VM.
STRIP_WITH_VALUE = frozenset({
    "-n", "--numprocesses", "--maxprocesses", "--max-worker-restart", "--dist", "--tx", "--px",
    "--rsyncdir", "--rsyncignore", "--basetemp", "--junitxml", "--junit-xml", "--results-dir",
    "--secrets-env", "--rootdir", "--resultlog", "--result-log", "--debug-file",
    *(o.flag for o in BACKEND_OPTIONS if o.action != "store_true"),
})
STRIP_FLAGS = frozenset({
    "-d", "--distload", "-f", "--looponfail", "--cleanup",
    *(o.flag for o in BACKEND_OPTIONS if o.action == "store_true"),
})
# Options whose value is a path: mapped to the VM's copy.
MAP_PATH_VALUE = frozenset({"-c", "--config-file", "--confcutdir"})


@dataclass(frozen=True)
class RemoteLayout:
    """Where a run lives on a VM (the same on every VM)."""

    run_id: str
    local_rootdir: Path
    local_invocation_dir: Path
    base: str = REMOTE_BASE

    @property
    def run_dir(self) -> str:
        return f"{self.base}/runs/{self.run_id}"

    @property
    def site(self) -> str:
        return f"{self.run_dir}/site"

    @property
    def root(self) -> str:
        """The VM's copy of the rootdir."""
        return f"{self.run_dir}/src"

    @property
    def results_dir(self) -> str:
        return f"{self.run_dir}/results"

    @property
    def invocation_dir(self) -> str:
        try:
            rel = self.local_invocation_dir.resolve().relative_to(self.local_rootdir.resolve())
        except ValueError:
            return self.root
        return self.root if str(rel) == "." else f"{self.root}/{rel.as_posix()}"

    def remote_path(self, local: Path) -> str:
        """The VM path of a local path under the rootdir. Raises: BackendError when it is outside."""
        path = local if local.is_absolute() else self.local_invocation_dir / local
        try:
            rel = path.resolve().relative_to(self.local_rootdir.resolve())
        except ValueError:
            raise BackendError(f"{path} is outside the rootdir {self.local_rootdir}: it cannot reach the VMs "
                               f"(start pytest from a folder that contains it, or set --rootdir)") from None
        return self.root if str(rel) == "." else f"{self.root}/{rel.as_posix()}"

    @property
    def runtime_zip(self) -> str:
        """The runtime's archive of third-party packages (``runtime_zip``), imported after ``site``."""
        return f"{self.site}/runtime.zip"

    def python(self, extra_paths: Sequence[str] = ()) -> str:
        """The ``python=`` of the execnet spec: the VM's python3 with the shipped runtime first."""
        path = ":".join([self.site, self.runtime_zip, *extra_paths])
        return f"env PYTHONPATH={path} python3"


def vm_count(workers: int, per_vm: int) -> int:
    return max(1, math.ceil(workers / per_vm))


def slot_aliases(workers: int) -> list[str]:
    return [f"cloudeval-w{i}" for i in range(workers)]


def assign_slots(vm_names: Sequence[str], workers: int, per_vm: int) -> list[str]:
    """The VM of each worker slot: slot i on VM i // per_vm (VMs fill up in order)."""
    return [vm_names[min(i // per_vm, len(vm_names) - 1)] for i in range(workers)]


def least_loaded(live: Iterable[str], load: Mapping[str, int]) -> str | None:
    """The live VM with the fewest slots (ties: by name), where a lost VM's slots move."""
    candidates = sorted(live, key=lambda name: (load.get(name, 0), name))
    return candidates[0] if candidates else None


def _match(token: str, names: Iterable[str]) -> tuple[str, str | None] | None:
    """``(option, inline value)`` when ``token`` is one of ``names`` (``--opt=v``, ``-nV`` forms too)."""
    for name in names:
        if token == name:
            return name, None
        if name.startswith("--"):
            if token.startswith(name + "="):
                return name, token[len(name) + 1:]
        elif len(name) == 2 and token.startswith(name) and not token.startswith("--"):
            return name, token[2:].removeprefix("=")
    return None


def worker_args(args: Sequence[str], positionals: Sequence[str], layout: RemoteLayout,
                keep_plugin: Callable[[str], bool] | None = None,
                takes_value: Callable[[str], bool] | None = None) -> tuple[list[str], list[str]]:
    """The argv for the workers, and warnings about what was dropped.

    ``args`` is the controller's argv (``config.invocation_params.args``); ``positionals`` are the
    test paths pytest resolved (``config.args``), which are mapped to the VM's copy and appended.
    Controller-only options are stripped; ``-p NAME`` survives only if ``keep_plugin(NAME)`` says
    the VM can import it; ``takes_value(option)`` tells options with a separate value (``-k EXPR``)
    apart from flags, so a value is never mistaken for a path.
    """
    out: list[str] = []
    warnings: list[str] = []
    positional_set = set(positionals)
    tokens = list(args)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if token == "--" or token in STRIP_FLAGS:
            i += 1
            continue
        if token in positional_set:
            i += 1  # appended below, mapped to the VM
            continue
        match = _match(token, STRIP_WITH_VALUE)
        if match:
            i += 1 if match[1] is not None else 2
            continue
        match = _match(token, MAP_PATH_VALUE)
        if match:
            value = match[1] if match[1] is not None else nxt
            out += [match[0], layout.remote_path(Path(value))]
            i += 1 if match[1] is not None else 2
            continue
        match = _match(token, ("-p",))
        if match:
            name = match[1] if match[1] is not None else nxt
            if keep_plugin is None or name.startswith("no:") or keep_plugin(name):
                out += ["-p", name]
            else:
                warnings.append(f"-p {name} is not passed to the VM workers (it cannot be imported there)")
            i += 1 if match[1] is not None else 2
            continue
        if token.startswith("-") and "=" not in token and takes_value is not None and takes_value(token):
            out += [token, nxt]
            i += 2
            continue
        out.append(token)
        i += 1
    for arg in positionals:
        path_part, sep, rest = arg.partition("::")
        out.append(layout.remote_path(Path(path_part)) + (sep + rest if sep else ""))
    out.append(f"--rootdir={layout.root}")
    return out, warnings


def option_arity(config: Any) -> Callable[[str], bool]:
    """``takes_value(option)`` from pytest's own argument parser (private API: guarded, and
    without it every unknown option is taken for a flag)."""
    parser = getattr(config, "_parser", None)
    try:
        argparser = parser.optparser if hasattr(parser, "optparser") else parser._getparser()  # type: ignore[union-attr]
        actions = argparser._option_string_actions
    except AttributeError:
        return lambda option: False
    return lambda option: option in actions and actions[option].nargs != 0


def positional_paths(positionals: Sequence[str], invocation_dir: Path) -> list[Path]:
    """The files and folders the test arguments name (without ``::`` parts), absolute."""
    paths = []
    for arg in positionals:
        path = Path(arg.partition("::")[0])
        paths.append(path if path.is_absolute() else invocation_dir / path)
    return paths


@dataclass(frozen=True)
class AgentShipping:
    """How the agent's code reaches the VMs."""

    remote_spec: str | None
    in_root: tuple[Path, ...] = ()
    """Folders under the rootdir to ship with the project."""
    extra: tuple[tuple[Path, str], ...] = ()
    """``(folder, name in bundle)`` from outside the rootdir."""
    pythonpath: tuple[str, ...] = ()
    """VM folders to put on the workers' PYTHONPATH (for ``package.module:function`` agents)."""


def plan_agent(spec: str | None, layout: RemoteLayout) -> AgentShipping:
    """Where the agent named by ``--agent`` comes from and how the VM's workers name it."""
    if not spec or ":" not in spec:
        return AgentShipping(remote_spec=spec)  # a built-in (oracle, noop) or nothing
    module_part, _, func = spec.strip().rpartition(":")
    root = layout.local_rootdir.resolve()
    if module_part.endswith(".py") or "/" in module_part:
        path = Path(module_part)
        path = (path if path.is_absolute() else layout.local_invocation_dir / path).resolve()
        folder = path.parent
        if folder.is_relative_to(root):
            # A relative spec resolves the same on the VM (its invocation folder mirrors ours), and
            # keeps the agent's name in results identical to a local run's.
            same = not Path(module_part).is_absolute() and layout.local_invocation_dir.resolve().is_relative_to(root)
            remote = spec.strip() if same else f"{layout.remote_path(path)}:{func}"
            return AgentShipping(remote_spec=remote, in_root=(folder,))
        name = f"{AGENT_DIR}/{folder.name}"
        return AgentShipping(remote_spec=f"{layout.root}/{name}/{path.name}:{func}", extra=((folder, name),))
    top = module_part.split(".")[0]
    found = _find_top_level(top, layout.local_invocation_dir)
    if found is None:
        return AgentShipping(remote_spec=spec)  # the worker reports the import error itself
    parent = found.parent
    if found.is_relative_to(root):
        return AgentShipping(remote_spec=spec, in_root=(found,),
                             pythonpath=(layout.remote_path(parent),))
    name = f"{AGENT_PATH_DIR}/{found.name}"
    return AgentShipping(remote_spec=spec, extra=((found, name),),
                         pythonpath=(f"{layout.root}/{AGENT_PATH_DIR}",))


def _find_top_level(name: str, invocation_dir: Path) -> Path | None:
    """The folder (package) or file (module) that ``import name`` loads here, unless it is stdlib."""
    added = str(invocation_dir) not in sys.path
    if added:
        sys.path.insert(0, str(invocation_dir))
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    finally:
        if added:
            sys.path.remove(str(invocation_dir))
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None  # namespace package, built-in or compiled module
    origin = Path(spec.origin).resolve()
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    if origin.is_relative_to(stdlib) and "site-packages" not in origin.parts:
        return None
    return origin.parent if origin.name == "__init__.py" else origin


def worker_settings(settings: Mapping[str, Any], layout: RemoteLayout, agent_spec: str | None,
                    cloud: str) -> dict[str, Any]:
    """The controller's settings as a VM worker needs them: its own paths, results shipped back."""
    data = dict(settings)
    data.update(results_dir=layout.results_dir, rootdir=layout.root, invocation_dir=layout.invocation_dir,
                ship_results=True, cloud=cloud, work_root=None, rootdir_name=layout.local_rootdir.name)
    if agent_spec is not None:
        data["agent"] = agent_spec
    return data
