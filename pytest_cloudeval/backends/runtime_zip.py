"""The worker runtime's third-party packages as one zip archive with their bytecode.

Unpacking the runtime was the largest CPU cost of a host's start after the worker's own pytest
start: ~550-750 files written per host, ~0.15 CPU-s on a quiet machine and 0.3-0.5 CPU-s under
load (nearly all of it the kernel creating files: the emulated VMs and pods sit on overlayfs).
Pure-Python packages that never read their own files by path (``ZIPPED``) travel instead as a
single ``runtime.zip`` that workers import from (``zipimport``), each module with its ``.pyc``
beside it (hash-based and unchecked: the archive is content-hashed and never edited).

Two things ``zipimport`` does not do as a folder import does are done by ``INSTALL_IMPORTER``,
which the controller runs in every worker interpreter before xdist's worker code imports pytest:
code objects get the module's real path as their file name (pytest cuts its own frames from
tracebacks by path), and a module's file name is found without unmarshalling its code (stock
``zipimport`` loads every module's code twice). Where it is not installed (a subprocess of a
worker), the stock importer reads the same archive correctly, only with those two differences.

A host whose Python reads other bytecode (another minor version than the controller's) gets the
archive's sources written out into the bundle's folder once, when the bundle is unpacked, which is
where a folder import finds them first (see ``bundle._REMOTE_SHIP``).
"""

from __future__ import annotations

import io
import json
import py_compile
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ZIP_NAME = "runtime.zip"
INFO_NAME = "runtime.json"
"""``{"cache_tag": ...}``: the bytecode in the archive is for that interpreter."""

ZIPPED = frozenset({
    "pytest", "_pytest", "py", "pluggy", "iniconfig", "packaging", "execnet", "xdist", "pygments",
    "exceptiongroup", "tomli", "docker", "requests", "urllib3", "idna", "charset_normalizer", "six",
})
"""Top-level modules that go in the archive. Not ``pytest_cloudeval`` (it runs and sends its own
files by path: the HAL child script, the judge), nor ``certifi`` (its CA file must be a file),
nor what an extra root (``kubernetes``) brings: those stay files in the bundle's folder."""

_EPOCH = (1980, 1, 1, 0, 0, 0)
ZIP_COMPRESSION = zipfile.ZIP_DEFLATED


def zipped(arc: str) -> bool:
    """Whether the bundle file named ``arc`` belongs in the archive (by its top-level module)."""
    top = arc.split("/", 1)[0]
    return (top[:-3] if top.endswith(".py") and "/" not in arc else top) in ZIPPED


def build(files: Sequence[tuple[Path | bytes, str]]) -> bytes:
    """A deterministic zip of ``files`` (``(source path or bytes, name)``) with a ``.pyc`` beside
    every ``.py`` for this interpreter (unchecked hash-based, so equal sources give equal bytes)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=ZIP_COMPRESSION) as archive, \
            tempfile.TemporaryDirectory(prefix="cloudeval-zip-") as tmp:
        target = Path(tmp) / "module.pyc"
        for src, arc in sorted(files, key=lambda f: f[1]):
            data = src if isinstance(src, bytes) else src.read_bytes()
            _add(archive, arc, data)
            if not arc.endswith(".py") or isinstance(src, bytes):
                continue
            try:
                py_compile.compile(str(src), cfile=str(target), dfile=arc, doraise=True,
                                   invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
            except py_compile.PyCompileError:
                continue  # the worker compiles it from the source, as it would a broken file
            _add(archive, arc + "c", target.read_bytes())
    return buf.getvalue()


def _add(archive: zipfile.ZipFile, arc: str, data: bytes) -> None:
    info = zipfile.ZipInfo(arc, date_time=_EPOCH)
    info.compress_type = ZIP_COMPRESSION
    info.external_attr = 0o644 << 16
    archive.writestr(info, data)


def info() -> bytes:
    return json.dumps({"cache_tag": sys.implementation.cache_tag}).encode()


INSTALL_IMPORTER = r'''
import _imp, sys, zipimport

roots = tuple(p for p in sys.path if p.endswith("/runtime.zip"))


class RuntimeZip(zipimport.zipimporter):
    def get_filename(self, fullname):
        base = "%s/%s%s" % (self.archive, self.prefix, fullname.rpartition(".")[2])
        return base + "/__init__.py" if self.is_package(fullname) else base + ".py"

    def get_code(self, fullname):
        code = super().get_code(fullname)
        _imp._fix_co_filename(code, self.get_filename(fullname))
        return code


def _ours(path):
    return any(path == root or path.startswith(root + "/") for root in roots)


def _hook(path):
    if _ours(path):
        return RuntimeZip(path)
    raise ImportError(path)


if roots and getattr(sys, "_cloudeval_runtime_zip", None) is None:
    sys.path_hooks.insert(0, _hook)
    for path in [p for p in sys.path_importer_cache if _ours(p)]:
        del sys.path_importer_cache[path]
    sys._cloudeval_runtime_zip = _hook
channel.send(bool(roots))
'''
"""Runs in a worker interpreter (execnet ``remote_exec``; standard library only): import the runtime
archive (the ``PYTHONPATH`` entry ending in ``/runtime.zip``) with real file names and without
loading code twice. Sends whether there is one. Idempotent."""


def install_importer(gateway: Any, timeout: float = 60.0) -> None:
    """Run ``INSTALL_IMPORTER`` in ``gateway`` before anything there imports the runtime. Does not
    raise for a broken gateway (it fails again, visibly, in xdist's hands); without the importer
    the stock ``zipimport`` reads the same archive (slower, with archive-relative file names in
    code objects)."""
    import execnet

    try:
        channel = gateway.remote_exec(INSTALL_IMPORTER)
        channel.receive(timeout=timeout)
        channel.waitclose(timeout)
    except (OSError, EOFError, execnet.TimeoutError, execnet.RemoteError):
        pass
