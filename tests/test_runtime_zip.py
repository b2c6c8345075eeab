"""The workers' runtime bundle: only what the run's sandbox needs, its third-party packages in one
``runtime.zip`` with their bytecode, unpacked (over a real execnet gateway, by the real ship script)
into a folder that a fresh interpreter imports pytest and the plugin from, with real file names.
"""

from __future__ import annotations

import io
import json
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import execnet
import pytest

from pytest_cloudeval.backends import bundle, runtime_zip
from pytest_cloudeval.backends.bundle import Bundle
from pytest_cloudeval.backends.controller import runtime_needs
from pytest_cloudeval.errors import BackendError


@pytest.fixture(scope="module")
def local_runtime() -> Bundle:
    return bundle.runtime_bundle(docker=False)


@pytest.fixture
def host() -> Iterator[Any]:
    """A fresh local interpreter standing in for a host (the ship script is standard library only)."""
    gateway = execnet.makegateway(f"popen//python={sys.executable}")
    try:
        yield gateway
    finally:
        gateway.exit()


def worker(site: Path) -> Any:
    """An interpreter started as a worker's is: the runtime folder and its archive on PYTHONPATH."""
    return execnet.makegateway(f"popen//python=env PYTHONPATH={site}:{site}/{runtime_zip.ZIP_NAME} "
                               f"PYTHONDONTWRITEBYTECODE=1 {sys.executable}//chdir={site.parent}")


def ship_to(gateway: Any, base: Path, *bundles: Bundle) -> Path:
    report = bundle.ship(gateway, str(base), list(bundles), str(base / "runs" / "r"),
                         {"site": bundles[0].name})
    assert report.sent == tuple(b.name for b in bundles)
    return base / "runs" / "r" / "site"


def test_the_sandbox_decides_whether_the_docker_sdk_goes() -> None:
    assert runtime_needs("local") == ((), False)
    assert runtime_needs("docker") == ((), True)
    assert runtime_needs("k8s") == (("kubernetes",), True)
    assert runtime_needs("some-plugin-sandbox") == ((), True), "an unknown sandbox keeps the SDK"
    local = {arc.split("/")[0] for _, arc in bundle.runtime_files(docker=False)}
    docker = {arc.split("/")[0] for _, arc in bundle.runtime_files(docker=True)}
    for name in ("docker", "requests", "urllib3"):
        assert name not in local and name in docker, name
    for names in (local, docker):
        assert {"pytest", "_pytest", "xdist", "execnet", "pluggy", "pytest_cloudeval"} <= names
        assert not names & {"jinja2", "markupsafe", "junit_xml"}, "controller-only dependencies stay home"


def test_the_runtime_is_a_tar_of_few_files_around_one_archive(local_runtime: Bundle) -> None:
    assert len(local_runtime.data) < 3.5 * 2**20, "compressed: the controller holds copies while it sends"
    with tarfile.open(fileobj=io.BytesIO(local_runtime.data), mode="r:gz") as tar:
        names = tar.getnames()
        archive = zipfile.ZipFile(io.BytesIO(tar.extractfile(runtime_zip.ZIP_NAME).read()))  # type: ignore[union-attr]
        info = json.loads(tar.extractfile(runtime_zip.INFO_NAME).read())  # type: ignore[union-attr]
    assert len(names) < 300, len(names)
    assert info == {"cache_tag": sys.implementation.cache_tag}
    # The plugin stays files (it runs and sends its own files by path); pytest & co. are archived
    # with their bytecode beside each source.
    assert "pytest_cloudeval/plugin.py" in names and not any(n.startswith("_pytest/") for n in names)
    inside = set(archive.namelist())
    for module in ("_pytest/python.py", "pytest/__init__.py", "xdist/remote.py", "execnet/gateway_base.py",
                   "pluggy/_hooks.py", "py.py"):
        assert module in inside and module + "c" in inside, module
    assert not any(n.startswith(("pytest_cloudeval/", "docker/")) for n in inside)
    again = bundle.runtime_bundle(docker=False)
    assert again.name == local_runtime.name, "the same installation gives the same bundle"


def test_a_worker_imports_the_archive_with_real_file_names(local_runtime: Bundle, host: Any,
                                                           tmp_path: Path) -> None:
    site = ship_to(host, tmp_path, local_runtime)
    assert (site / runtime_zip.ZIP_NAME).is_file() and not (site / "_pytest").exists()
    probe = '''
import inspect, sys, traceback
from pathlib import Path
import _pytest.nodes, _pytest.python as p, pytest, pytest_cloudeval.plugin, xdist.remote
code = p.pytest_pycollect_makeitem.__code__
try:
    pytest.fail("boom")
except BaseException as e:
    frames = traceback.extract_tb(e.__traceback__)
channel.send({"file": p.__file__, "co_filename": code.co_filename, "plugin": pytest_cloudeval.plugin.__file__,
              "cut": str(_pytest.nodes.tracebackcutdir) in [str(x) for x in Path(code.co_filename).parents],
              "source": inspect.getsource(p.pytest_pycollect_makeitem).splitlines()[1],
              "line": frames[-1].line, "loader": type(p.__loader__).__name__})
'''
    gateway = worker(site)
    try:
        assert gateway.remote_exec(runtime_zip.INSTALL_IMPORTER).receive(timeout=30) is True
        got = gateway.remote_exec(probe).receive(timeout=60)
    finally:
        gateway.exit()
    archive = str(site / runtime_zip.ZIP_NAME)
    assert got["file"] == f"{archive}/_pytest/python.py", got
    assert got["co_filename"] == got["file"], "code objects carry the module's real path"
    assert got["cut"], "pytest's own frames are recognised (and cut from tracebacks) by path"
    assert got["plugin"] == str(site / "pytest_cloudeval" / "plugin.py")
    assert "def pytest_pycollect_makeitem" in got["source"] and got["line"], got
    assert got["loader"] == "RuntimeZip"

    # Without the importer (a worker's subprocess), the stock zipimport reads the same archive.
    gateway = worker(site)
    try:
        got = gateway.remote_exec(probe).receive(timeout=60)
    finally:
        gateway.exit()
    assert got["loader"] == "zipimporter" and got["file"].startswith(archive + "/_pytest/python.py")


def test_another_python_gets_the_archive_s_sources_written_out(host: Any, tmp_path: Path) -> None:
    source = tmp_path / "tiny.py"
    source.write_text("ANSWER = 42\n")
    archive = runtime_zip.build([(source, "tiny.py")])
    assert set(zipfile.ZipFile(io.BytesIO(archive)).namelist()) == {"tiny.py", "tiny.pyc"}
    other = bundle.make_bundle("rt", [(archive, runtime_zip.ZIP_NAME),
                                      (json.dumps({"cache_tag": "otherpython-99"}).encode(), runtime_zip.INFO_NAME)],
                               compress=False)
    site = ship_to(host, tmp_path / "other", other)
    assert (site / "tiny.py").read_text() == "ANSWER = 42\n" and not (site / "tiny.pyc").exists(), \
        "sources beside the archive, where imports look first; never bytecode of another Python"
    same = bundle.make_bundle("rt", [(archive, runtime_zip.ZIP_NAME), (runtime_zip.info(), runtime_zip.INFO_NAME)],
                              compress=False)
    site = ship_to(host, tmp_path / "same", same)
    assert not (site / "tiny.py").exists(), "this Python reads the archive's bytecode as it is"


def test_a_runtime_with_the_kubernetes_client_stays_compressed() -> None:
    pytest.importorskip("kubernetes", reason="the k8s extra is not installed")
    k8s = bundle.runtime_bundle(extra_roots=runtime_needs("k8s")[0], docker=True)
    assert k8s.data[:2] == b"\x1f\x8b", "its loose files (~100 MB of them) travel compressed"
    assert len(k8s.data) < 30 * 2**20, len(k8s.data)
    with tarfile.open(fileobj=io.BytesIO(k8s.data), mode="r:gz") as tar:
        names = set(tar.getnames())
    assert "kubernetes/__init__.py" in names and runtime_zip.ZIP_NAME in names


def test_a_development_checkout_s_tests_never_ship_as_a_module(tmp_path: Path) -> None:
    """An editable install run from its project's root finds ``<name>.egg-info`` there first, whose
    SOURCES.txt lists the whole source tree: only top_level.txt says what is importable."""
    info = tmp_path / "pkg.egg-info"
    info.mkdir()
    (info / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\n")
    (info / "top_level.txt").write_text("pkg\n")
    (info / "SOURCES.txt").write_text("README.md\npkg/__init__.py\ntests/test_x.py\ntests/conftest.py\n")
    assert bundle.top_level_modules(metadata.PathDistribution(info)) == ["pkg"]
    # Without top_level.txt (wheels built by flit or hatchling), the installed file list says it.
    (info / "top_level.txt").unlink()
    assert "pkg" in bundle.top_level_modules(metadata.PathDistribution(info))
    # And the runtime of this very checkout, from its root, carries no test module.
    names = {arc.split("/", 1)[0] for _, arc in bundle.runtime_files(docker=False)}
    assert "tests" not in names and "pytest_cloudeval" in names, sorted(names)


def test_the_in_place_check_leaves_the_runtime_imported_for_the_worker(local_runtime: Bundle, host: Any,
                                                                       tmp_path: Path) -> None:
    """A handed-over host checks its runtime in the interpreter that becomes its worker: after the
    importer, the check's imports stay (the worker does not import them again) with real file names."""
    site = ship_to(host, tmp_path, local_runtime)
    gateway = worker(site)
    try:
        runtime_zip.install_importer(gateway)
        bundle.check_runtime_in_place(gateway)
        got = gateway.remote_exec(
            "import sys; m = sys.modules; channel.send((sorted(n for n in ('pytest', 'xdist.remote', "
            "'pytest_cloudeval.plugin') if n in m), m['_pytest.python'].__loader__.__class__.__name__))"
        ).receive(timeout=30)
    finally:
        gateway.exit()
    assert got == (["pytest", "pytest_cloudeval.plugin", "xdist.remote"], "RuntimeZip")


def test_a_runtime_that_does_not_import_is_named_with_its_traceback(tmp_path: Path) -> None:
    gateway = execnet.makegateway(f"popen//python={sys.executable} -S -I")  # no site-packages: no pytest
    try:
        with pytest.raises(BackendError, match=r"(?s)the worker runtime does not import on the VM: .*"
                                               r"ModuleNotFoundError: No module named 'pytest'"):
            bundle.check_runtime_in_place(gateway)
    finally:
        gateway.exit()
