"""Content-hashed bundles of what a VM needs, and shipping them once per VM over execnet.

Two bundles, so a rerun with a changed agent does not resend 15 MB of runtime:

- ``rt-<hash>``: the worker runtime, copied from the controller's own installation: pytest, pluggy,
  iniconfig, packaging, execnet, xdist, pytest_cloudeval and their dependencies, and the docker SDK
  when the run's sandbox may need it (pure Python only; compiled extensions are left out and their
  pure fallbacks used), each with a minimal ``.dist-info`` so entry points (pytest11 plugins) load
  on the VM. The controller-only dependencies (jinja2 for the HTML report, junit-xml) stay home.
  The third-party packages travel as one ``runtime.zip`` with their bytecode (``runtime_zip``):
  the bundle is a tar.gz of ~200 files instead of ~750.
- ``src-<hash>``: the rootdir's ini file and conftests, the benchmark folders named on the command
  line, and the agent's folder, laid out as under the rootdir so node ids match.

A VM keeps bundles under ``/var/tmp/cloudeval`` and skips any whose hash it already has (warm pools).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import importlib.metadata as metadata
import importlib.util
import io
import json
import os
import py_compile
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BackendError
from . import runtime_zip

RUNTIME_ROOTS = ("pytest", "pytest-xdist", "execnet", "pluggy", "iniconfig", "packaging", "pytest-cloudeval")
DOCKER_ROOTS = ("docker",)
"""Shipped unless the run's sandbox is ``local`` (the Docker and Kubernetes sandboxes use it)."""
CONTROLLER_ONLY = frozenset({"jinja2", "junit-xml"})
"""Dependencies of pytest-cloudeval that only the controller uses (its report files)."""
# Needed by pytest on Python < 3.11 VMs; shipped when the controller has them.
RUNTIME_OPTIONAL = ("exceptiongroup", "tomli")
SKIP_DIRS = frozenset({"__pycache__", ".git", ".hg", ".svn", ".tox", ".nox", ".venv", "venv", "node_modules",
                       ".mypy_cache", ".ruff_cache", ".pytest_cache", ".eggs"})
NATIVE_SUFFIXES = (".so", ".pyd", ".dylib", ".dll")
MAX_PROJECT_BYTES = 512 * 1024 * 1024
# Folders of the runtime that are mostly dead weight on a worker, with the files that are kept:
# pytest imports two pygments lexers at import time; the other 3.9 MB are for highlighting other
# languages, which only the controller's terminal would ever do.
RUNTIME_PRUNE = {"pygments/lexers/": frozenset({"__init__.py", "_mapping.py", "python.py", "diff.py"})}

Source = Path | bytes
"""A file to bundle: a path to read, or generated content."""


@dataclass(frozen=True)
class Bundle:
    kind: str
    """``rt`` (runtime) or ``src`` (project)."""
    digest: str
    data: bytes
    """The tar (gzip-compressed unless its content is compressed already)."""
    files: int
    size: int
    """Uncompressed bytes."""

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.digest}"


# -- building ------------------------------------------------------------------------------------
def make_bundle(kind: str, files: Iterable[tuple[Source, str]], compress: bool = True) -> Bundle:
    """A deterministic tar.gz (a plain tar without ``compress``) of ``(source path or bytes, name in
    the bundle)``; the digest covers names, contents and the executable bit, so equal trees give
    equal names on every controller."""
    entries = sorted({arc: src for src, arc in files}.items())
    digest = hashlib.sha256()
    buf = io.BytesIO()
    total = 0
    with (gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=6) if compress
          else contextlib.nullcontext(buf)) as out, \
            tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for arc, src in entries:
            if isinstance(src, bytes):
                data, executable = src, False
            else:
                data, executable = src.read_bytes(), os.access(src, os.X_OK)
            digest.update(arc.encode() + b"\0" + (b"x" if executable else b"-") + hashlib.sha256(data).digest())
            info = tarfile.TarInfo(arc)
            info.size = len(data)
            info.mode = 0o755 if executable else 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
            total += len(data)
    return Bundle(kind=kind, digest=digest.hexdigest()[:20], data=buf.getvalue(), files=len(entries), size=total)


def _walk(root: Path, skip: frozenset[Path] = frozenset(), native: bool = True,
          prune: Callable[[Path], bool] | None = None) -> Iterable[Path]:
    """Files under ``root`` (resolved), minus caches, ``skip`` (files and folders) and the folders
    below ``root`` that ``prune`` refuses."""
    if root.is_file():
        if root not in skip:
            yield root
        return
    for folder, dirs, names in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and (here / d) not in skip
                         and not d.endswith(".egg-info") and not (prune is not None and prune(here / d)))
        for name in sorted(names):
            if name.endswith((".pyc", ".pyo")) or (not native and name.endswith(NATIVE_SUFFIXES)):
                continue
            path = here / name
            if path.is_file() and path not in skip:
                yield path


def not_agent_code(folder: Path) -> bool:
    """Folders an agent's folder may hold that must never travel with it: benchmarks (a
    ``benchmark.toml`` or a Harbor task), whose hidden answers the VM would otherwise carry and
    whose tasks a worker could collect twice, and results of earlier runs."""
    return ((folder / "benchmark.toml").is_file()
            or ((folder / "task.toml").is_file() and (folder / "instruction.md").is_file())
            or (folder / "run.json").is_file() or (folder / "result.json").is_file())


def _requirement_names(dist: metadata.Distribution) -> list[str]:
    from packaging.requirements import InvalidRequirement, Requirement

    names = []
    for text in dist.requires or []:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        names.append(req.name)
    return names


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_distributions(roots: Sequence[str] = RUNTIME_ROOTS) -> list[metadata.Distribution]:
    """The installed distributions the worker needs: ``roots`` and their dependencies, without
    pytest-cloudeval's controller-only ones (``CONTROLLER_ONLY``)."""
    seen: dict[str, metadata.Distribution] = {}
    todo = list(roots) + [n for n in RUNTIME_OPTIONAL]
    while todo:
        name = todo.pop()
        key = _canonical(name)
        if key in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            if name in RUNTIME_OPTIONAL or name in DOCKER_ROOTS:
                continue
            raise BackendError(f"the worker runtime needs {name!r}, which is not installed here") from None
        seen[key] = dist
        needs = _requirement_names(dist)
        if key == "pytest-cloudeval":
            needs = [n for n in needs if _canonical(n) not in CONTROLLER_ONLY]
        todo.extend(needs)
    return [seen[k] for k in sorted(seen)]


def top_level_modules(dist: metadata.Distribution) -> list[str]:
    """Importable top-level names of a distribution: its top_level.txt when it has one, else the
    top folders and modules of its file list. Not both: a development checkout's
    ``<name>.egg-info`` (found first when pytest runs from the project's root) lists every file of
    the source tree in SOURCES.txt, ``tests/`` included, which no worker may be sent as a module."""
    names = set((dist.read_text("top_level.txt") or "").split())
    if names:
        return sorted(n for n in names if n.isidentifier())
    for file in dist.files or []:
        first = file.parts[0]
        if first.endswith((".dist-info", ".data", ".pth")) or first in ("..", "__pycache__", "bin"):
            continue
        if first.startswith("__editable__") or first.startswith("_virtualenv"):
            continue
        name = first[:-3] if first.endswith(".py") else first
        if len(file.parts) > 1 or first.endswith(".py"):
            names.add(name)
    return sorted(n for n in names if n.isidentifier())


def runtime_files(extra_modules: Sequence[str] = (), extra_roots: Sequence[str] = (),
                  docker: bool = True) -> list[tuple[Source, str]]:
    """Files of the runtime bundle: every runtime distribution's pure-Python modules + dist-info
    (``extra_roots``: more distributions with their dependencies, e.g. ``kubernetes`` for workers
    that make ``--sandbox=k8s`` pods; ``docker``: with the Docker SDK and its dependencies)."""
    files: list[tuple[Source, str]] = []
    roots = (*RUNTIME_ROOTS, *(DOCKER_ROOTS if docker else ()))
    base = {dist.metadata["Name"] for dist in runtime_distributions(roots)} if extra_roots else set()
    for dist in runtime_distributions((*roots, *extra_roots)):
        # The extra roots' own dependencies may be compiled only (pydantic-core, under the Kubernetes
        # client): their native modules travel too, and load where the worker's Python matches ours.
        native = bool(extra_roots) and dist.metadata["Name"] not in base
        for module in top_level_modules(dist):
            files.extend(_module_files(module, native))
        files.extend(_dist_info_files(dist))
    for module in extra_modules:
        files.extend(_module_files(module))
    return [(src, arc) for src, arc in files if not _pruned(arc)]


def _pruned(arc: str) -> bool:
    for folder, keep in RUNTIME_PRUNE.items():
        if arc.startswith(folder):
            return arc[len(folder):] not in keep
    return False


def _dist_info_files(dist: metadata.Distribution) -> list[tuple[Source, str]]:
    """A minimal ``NAME-VERSION.dist-info`` (METADATA, entry_points.txt): what pytest reads."""
    name = dist.metadata["Name"]
    folder = f"{re.sub(r'[-.]+', '_', name)}-{dist.version}.dist-info"
    files: list[tuple[Source, str]] = [
        (f"Metadata-Version: 2.1\nName: {name}\nVersion: {dist.version}\n".encode(), f"{folder}/METADATA")]
    entry_points = dist.read_text("entry_points.txt")
    if entry_points:
        files.append((entry_points.encode(), f"{folder}/entry_points.txt"))
    return files


def _module_files(module: str, native: bool = False) -> list[tuple[Source, str]]:
    spec = importlib.util.find_spec(module)
    if spec is None:
        return []
    if spec.submodule_search_locations:
        root = Path(list(spec.submodule_search_locations)[0])
        return [(p, f"{module}/{p.relative_to(root).as_posix()}") for p in _walk(root, native=native)]
    if spec.origin and spec.origin.endswith(".py"):
        return [(Path(spec.origin), f"{module}.py")]
    if native and spec.origin and spec.origin.endswith(NATIVE_SUFFIXES):
        return [(Path(spec.origin), Path(spec.origin).name)]
    return []  # a compiled module: left out (its package has a pure-Python fallback)


def runtime_bundle(extra_modules: Sequence[str] = (), cache_dir: Path | None = None,
                   extra_roots: Sequence[str] = (), docker: bool = True) -> Bundle:
    """The runtime bundle (a tar.gz: the archive inside is compressed already, the plugin's own files
    are not, and the controller holds two transient copies of every bundle it is sending), with
    bytecode for this Python (a VM with the same version compiles nothing; others compile from
    the sources, see ``runtime_zip``). Built once per installed set of files when ``cache_dir`` is
    given (compiling takes a few seconds), then read back."""
    files = runtime_files(extra_modules, extra_roots, docker)
    key = _stat_key(files)
    cached = cache_dir / f"rt-{key}" if cache_dir is not None else None
    if cached is not None:
        try:
            meta = json.loads((cached / "meta.json").read_text(encoding="utf-8"))
            return Bundle(kind="rt", digest=meta["digest"], data=(cached / "bundle.tar.gz").read_bytes(),
                          files=meta["files"], size=meta["size"])
        except (OSError, ValueError, KeyError):
            pass
    in_zip = [(src, arc) for src, arc in files if runtime_zip.zipped(arc)]
    loose = [(src, arc) for src, arc in files if not runtime_zip.zipped(arc)]
    built = make_bundle("rt", [*loose, *compiled_files(loose, worker_imports()),
                               (runtime_zip.build(in_zip), runtime_zip.ZIP_NAME),
                               (runtime_zip.info(), runtime_zip.INFO_NAME)])
    if cached is not None:
        try:
            tmp = Path(tempfile.mkdtemp(prefix=".rt-", dir=cached.parent if cached.parent.is_dir() else None))
            (tmp / "bundle.tar.gz").write_bytes(built.data)
            (tmp / "meta.json").write_text(json.dumps({"digest": built.digest, "files": built.files,
                                                       "size": built.size}), encoding="utf-8")
            cached.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, cached)
            # Keep the few newest: every upgrade (or edit of an editable install) makes a new one.
            old = sorted(cached.parent.glob("rt-*"), key=lambda p: p.stat().st_mtime, reverse=True)[4:]
            for path in old:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass  # a cache is a cache
    return built


# What an xdist worker of ours imports: pytest's built-in plugins, xdist's worker side, our plugin.
_WORKER_IMPORTS = r'''
import importlib, sys
from _pytest.config import get_config
get_config()
for name in ("xdist.plugin", "xdist.remote", "xdist.looponfail", "xdist.newhooks", "execnet",
             "pytest_cloudeval.plugin", "pytest_cloudeval.builtins", "pytest_cloudeval.agents.args",
             "pytest_cloudeval.artifacts.plugin", "pytest_cloudeval.artifacts.uploader",
             "pytest_cloudeval.backends.watchdog", "pytest_cloudeval.backends.wiring",
             "pytest_cloudeval.backends.plugin", "pytest_cloudeval.runner", "pytest_cloudeval.collect",
             "pytest_cloudeval.sandbox.local", "pytest_cloudeval.tasks.usaco", "pytest_cloudeval.tasks.harbor",
             "pytest_cloudeval.judge.usaco", "pytest_cloudeval.agents.loader", "pytest_cloudeval.agents.function"):
    try:
        importlib.import_module(name)
    except Exception:
        pass
for module in list(sys.modules.values()):
    path = getattr(module, "__file__", None)
    if path:
        print(path)
'''


def worker_imports() -> list[str]:
    """Source files a worker imports, found by importing them in a fresh interpreter (so the set,
    and the bundle's hash, do not depend on what this process happened to import)."""
    proc = subprocess.run([sys.executable, "-c", _WORKER_IMPORTS], capture_output=True, text=True, timeout=120)
    return proc.stdout.split() if proc.returncode == 0 else []


RUNTIME_FORMAT = "4"
"""Part of the runtime cache's key: bumped when the bundle's layout changes (2: ``runtime.zip`` in a plain tar; 4: in a tar.gz)."""


def _stat_key(files: Sequence[tuple[Source, str]]) -> str:
    """A cheap key of the runtime's files (names, sizes, mtimes), the bundle's layout and this
    Python's bytecode tag."""
    digest = hashlib.sha256(f"{sys.implementation.cache_tag}\0{RUNTIME_FORMAT}".encode())
    for src, arc in sorted(files, key=lambda f: f[1]):
        if isinstance(src, bytes):
            digest.update(arc.encode() + hashlib.sha256(src).digest())
        else:
            st = src.stat()
            digest.update(f"{arc}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return digest.hexdigest()[:20]


def compiled_files(files: Sequence[tuple[Source, str]], wanted: Collection[str]) -> list[tuple[Source, str]]:
    """``__pycache__`` entries for the wanted ``.py`` files. Hash-based (PEP 552), so they stay
    valid although the bundle's files carry no meaningful mtime; other Python versions ignore them."""
    tag = sys.implementation.cache_tag
    wanted = set(wanted)
    if tag is None or not wanted:
        return []
    out: list[tuple[Source, str]] = []
    with tempfile.TemporaryDirectory(prefix="cloudeval-pyc-") as tmp:
        target = Path(tmp) / "module.pyc"
        for src, arc in files:
            if isinstance(src, bytes) or not arc.endswith(".py") or str(src) not in wanted:
                continue
            folder, _, name = arc.rpartition("/")
            pyc = f"{folder}/__pycache__/{name[:-3]}.{tag}.pyc" if folder else f"__pycache__/{name[:-3]}.{tag}.pyc"
            try:
                py_compile.compile(str(src), cfile=str(target), dfile=arc, doraise=True,
                                   invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
            except py_compile.PyCompileError:
                continue
            out.append((target.read_bytes(), pyc))
    return out


def project_files(rootdir: Path, paths: Sequence[Path], exclude: Sequence[Path] = (),
                  inifile: Path | None = None, extra: Sequence[tuple[Path, str]] = (),
                  agent_paths: Sequence[Path] = ()) -> list[tuple[Source, str]]:
    """Files of the project bundle, named relative to ``rootdir``.

    ``paths`` (files or folders inside the rootdir) are shipped whole, minus VCS/cache folders and
    ``exclude`` (the results folder, the secrets file: files or folders); so are the ini file and
    every ``conftest.py`` between the rootdir and each path. ``agent_paths`` (inside the rootdir)
    and ``extra`` (``(folder, name)`` pairs from outside it, shipped under ``name``) are an agent's
    code: shipped without the folders ``not_agent_code`` names. Raises: BackendError when it grows
    beyond 512 MB.
    """
    rootdir = rootdir.resolve()
    skip = frozenset(p.resolve() for p in exclude)
    files: dict[str, Path] = {}
    if inifile is not None and inifile.resolve().is_relative_to(rootdir):
        files[inifile.resolve().relative_to(rootdir).as_posix()] = inifile.resolve()
    for path in paths:
        path = path.resolve()
        if not path.is_relative_to(rootdir):
            raise BackendError(f"{path} is outside the rootdir {rootdir}: only files under the rootdir reach "
                               f"the VMs (run pytest from a folder that contains it, or set --rootdir)")
        folder = path.parent if path.is_file() else path
        while True:
            conftest = folder / "conftest.py"
            if conftest.is_file():
                files[conftest.relative_to(rootdir).as_posix()] = conftest
            if folder == rootdir or not folder.is_relative_to(rootdir):
                break
            folder = folder.parent
        for file in _walk(path, skip):
            files[file.relative_to(rootdir).as_posix()] = file
    for path in agent_paths:
        path = path.resolve()
        if not path.is_relative_to(rootdir):
            raise BackendError(f"{path} is outside the rootdir {rootdir}")
        for file in _walk(path, skip, prune=not_agent_code):
            files.setdefault(file.relative_to(rootdir).as_posix(), file)
    for folder, name in extra:
        for file in _walk(folder.resolve(), skip, prune=not_agent_code):
            files[f"{name}/{file.relative_to(folder.resolve()).as_posix()}"] = file
    total = sum(p.stat().st_size for p in files.values())
    if total > MAX_PROJECT_BYTES:
        raise BackendError(f"the files to ship to the VMs add up to {total / 2**20:.0f} MB (more than "
                           f"{MAX_PROJECT_BYTES // 2**20} MB): name the benchmark folders on the command line")
    return [(p, arc) for arc, p in files.items()]


# -- shipping --------------------------------------------------------------------------------------
# Runs on the VM (stdlib only): receive the bundles it lacks, unpack each atomically, link the run's
# folder to them, check that the runtime imports, and report the interpreter.
_REMOTE_SHIP = r'''
import io, json, os, shutil, subprocess, sys, time
base, names = channel.receive()
os.makedirs(base, exist_ok=True)
missing = [n for n in names if not os.path.exists(os.path.join(base, n, ".complete"))]
channel.send(missing)
for _ in missing:
    name, data = channel.receive()
    target = os.path.join(base, name)
    tmp = "%s.tmp-%d" % (target, os.getpid())
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    # GNU tar unpacks in C, about twice as fast as tarfile (and refuses absolute and ".." names).
    tar_bin = shutil.which("tar")
    done = tar_bin is not None and subprocess.run(
        [tar_bin, "-xzf" if data[:2] == b"\x1f\x8b" else "-xf", "-", "-C", tmp, "--no-same-owner"], input=data,
        capture_output=True).returncode == 0
    if not done:
        import tarfile
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            members = [m for m in tar.getmembers()
                       if m.isfile() and not m.name.startswith("/") and ".." not in m.name.split("/")]
            tar.extractall(tmp, members=members)
    # A runtime whose archived bytecode is for another Python: its sources go beside it, where
    # imports look first (and this Python writes its own bytecode once).
    try:
        with open(os.path.join(tmp, "runtime.json")) as f:
            tag = json.load(f).get("cache_tag")
    except (OSError, ValueError):
        tag = sys.implementation.cache_tag
    if tag != sys.implementation.cache_tag:
        import zipfile
        with zipfile.ZipFile(os.path.join(tmp, "runtime.zip")) as archive:
            archive.extractall(tmp, [n for n in archive.namelist() if not n.endswith(".pyc")
                                     and not n.startswith("/") and ".." not in n.split("/")])
    open(os.path.join(tmp, ".complete"), "w").close()
    if os.path.exists(os.path.join(target, ".complete")):
        shutil.rmtree(tmp, ignore_errors=True)  # another run shipped the same bundle meanwhile
    else:
        shutil.rmtree(target, ignore_errors=True)
        try:
            os.rename(tmp, target)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    channel.send(name)
run_dir, links, wait_docker_s = channel.receive()
# Warm pools live long: forget runs older than two days and bundles no remaining run uses.
runs = os.path.join(base, "runs")
old = time.time() - 2 * 86400
try:
    for name in os.listdir(runs):
        path = os.path.join(runs, name)
        if os.lstat(path).st_mtime < old:
            shutil.rmtree(path, ignore_errors=True)
    used = {os.path.basename(os.path.realpath(os.path.join(runs, r, l)))
            for r in os.listdir(runs) for l in ("site", "src")}
    for name in os.listdir(base):
        path = os.path.join(base, name)
        if name[:3] in ("rt-", "src") and name not in used and name not in names \
                and os.lstat(path).st_mtime < old:
            shutil.rmtree(path, ignore_errors=True)
except OSError:
    pass
os.makedirs(os.path.join(run_dir, "results"), exist_ok=True)
for link, name in links.items():
    path = os.path.join(run_dir, link)
    if os.path.lexists(path):
        os.remove(path)
    os.symlink(os.path.join(base, name), path)
try:
    os.utime(os.path.join(base, "heartbeat"))
except OSError:
    pass
docker_ok = None
if wait_docker_s:
    deadline = time.time() + wait_docker_s
    docker_ok = False
    while time.time() < deadline:
        sock = "/var/run/docker.sock"
        if os.path.exists(sock) and os.access(sock, os.R_OK | os.W_OK):
            docker_ok = True
            break
        time.sleep(1)
# This interpreter may become an xdist worker (controller.handed_over) whose PYTHONPATH names the
# folders linked just now: forget that they were missing when the imports above looked.
import importlib
for path in [p for p, finder in sys.path_importer_cache.items() if finder is None]:
    del sys.path_importer_cache[path]
importlib.invalidate_caches()
channel.send({"python": list(sys.version_info[:3]), "executable": sys.executable, "docker_ok": docker_ok})
'''

# Runs on the VM: import the shipped runtime in a fresh interpreter, as an xdist worker will.
_REMOTE_CHECK = r'''
import os, subprocess, sys
site, check = channel.receive()
proc = subprocess.run([sys.executable, "-c", check],
                      env=dict(os.environ, PYTHONPATH=site + os.pathsep + os.path.join(site, "runtime.zip")),
                      capture_output=True, text=True)
channel.send((proc.returncode == 0, (proc.stderr or proc.stdout)[-2000:]))
'''

IMPORT_CHECK = "import pytest, xdist, execnet, xdist.remote, pytest_cloudeval.plugin"

# Runs on the VM in the interpreter that becomes its first worker: the same imports, kept.
_IN_PLACE_CHECK = r'''
import traceback
try:
    exec(channel.receive())
except BaseException:
    channel.send((False, traceback.format_exc()[-2000:]))
else:
    channel.send((True, ""))
'''


def check_runtime(gateway: Any, site: str, timeout: float = 120.0) -> None:
    """Import the runtime on the VM in a fresh interpreter. Raises: BackendError with the traceback."""
    channel = gateway.remote_exec(_REMOTE_CHECK)
    channel.send((site, IMPORT_CHECK))
    ok, error = channel.receive(timeout=timeout)
    channel.waitclose(timeout)
    if not ok:
        raise BackendError(f"the worker runtime does not import on the VM: {error.strip()}")


def check_runtime_in_place(gateway: Any, timeout: float = 120.0) -> None:
    """``check_runtime`` in ``gateway``'s own interpreter, for one that becomes a worker (a handed-over
    gateway, its runtime importer installed): the worker imports the same modules anyway, so the
    check costs no second interpreter and each host checks its own. Raises: BackendError."""
    channel = gateway.remote_exec(_IN_PLACE_CHECK)
    channel.send(IMPORT_CHECK)
    ok, error = channel.receive(timeout=timeout)
    channel.waitclose(timeout)
    if not ok:
        raise BackendError(f"the worker runtime does not import on the VM: {error.strip()}")


@dataclass(frozen=True)
class ShipReport:
    sent: tuple[str, ...]
    """Bundles the VM did not have yet."""
    python: tuple[int, ...]
    bytes_sent: int
    docker_ok: bool | None


def ship(gateway: Any, base: str, bundles: Sequence[Bundle], run_dir: str, links: dict[str, str],
         want_docker: bool = False, wait_docker_s: float = 0.0, timeout: float = 600.0,
         sending: threading.Semaphore | None = None) -> ShipReport:
    """Send the bundles the VM lacks, link ``run_dir/<link>`` to them, and check the runtime imports.

    ``sending`` bounds how many ships send at once: execnet copies a bundle twice while it sends it
    (serialized, then framed), so 32 VMs at once held ~200 MB of copies on the controller. The
    unpacking on the VM is not bounded.

    Raises: BackendError when the VM's Python is too old (or Docker is missing but wanted).
    """
    by_name = {b.name: b for b in bundles}
    channel = gateway.remote_exec(_REMOTE_SHIP)
    channel.send((base, list(by_name)))
    missing = channel.receive(timeout=timeout)
    sent = 0
    for name in missing:
        with sending if sending is not None else contextlib.nullcontext():
            channel.send((name, by_name[name].data))
        sent += len(by_name[name].data)
    for _ in missing:
        channel.receive(timeout=timeout)
    channel.send((run_dir, links, wait_docker_s if want_docker else 0))
    info = channel.receive(timeout=timeout + wait_docker_s)
    channel.waitclose(timeout)  # free the interpreter's main thread for what runs next
    python = tuple(info["python"])
    if python < (3, 10):
        raise BackendError(f"the VM's python3 is {'.'.join(map(str, python))}; the workers need 3.10 or newer "
                           f"(choose another --gce-image)")
    if want_docker and not info["docker_ok"]:
        raise BackendError("--sandbox docker: the VM has no usable Docker engine (/var/run/docker.sock)")
    return ShipReport(sent=tuple(missing), python=python, bytes_sent=sent, docker_ok=info["docker_ok"])
