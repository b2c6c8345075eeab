"""Which folders are data, not tests: benchmark roots, lone task folders and results folders.

Everything below such a root belongs to its format (or to the results writer): pytest must never
walk it, collect it or import a ``conftest.py`` or ``test_*.py`` from it, on any machine. Task
folders ship their own test files (Terminal-Bench 2.0's ``tests/test_outputs.py`` and
``tests/conftest.py`` run *inside* the container), and results folders hold files an agent wrote.

Three mechanisms, all here:

* ``pytest_collect_directory`` returns a :class:`DataRoot` for such a folder. It is not a
  ``pytest.Directory``, so pytest loads no conftest for it, and it yields only the format's own
  collector (``benchmark.toml`` or the lone task file), never walking the folder.
* ``pytest_ignore_collect`` skips results folders (those holding :data:`RESULTS_MARKER`).
* :func:`guard_conftests`: pytest also loads conftests *before* collection, for each command-line
  folder and its ``test*`` subfolders (``_set_initial_conftests``), and for each ``Directory`` it
  collects. No public hook can veto that, so the plugin wraps the plugin manager's
  ``_loadconftestmodules`` (checked against pytest 8.0 to 9.0): a folder at or below a data root
  gets the conftests of the root's parent instead of its own. ``tests/test_layout.py`` fails loudly
  if a pytest upgrade changes that internal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

BENCHMARK_FILE = "benchmark.toml"
RESULTS_MARKER = "CLOUDEVAL_RESULTS"
"""Written in every run folder: the folder holds results (agent-written files among them), not tests."""
RESULTS_MARKER_TEXT = ("This folder holds pytest-cloudeval results, including files written by agents.\n"
                       "pytest never collects or imports anything below it while the plugin is installed.\n")


def is_results_dir(directory: Path) -> bool:
    return (directory / RESULTS_MARKER).is_file()


def mark_results_dir(directory: Path) -> None:
    """Mark ``directory`` (a run folder) as results; idempotent and cheap."""
    marker = directory / RESULTS_MARKER
    if marker.is_file():
        return
    directory.mkdir(parents=True, exist_ok=True)
    try:
        marker.write_text(RESULTS_MARKER_TEXT)
    except OSError:
        pass  # the results writer reports an unwritable folder itself


class Roots:
    """Classifies folders, with a cache (pytest asks about the same folders many times)."""

    def __init__(self, formats: Callable[[], Iterable[Any]]) -> None:
        self._formats = formats
        self._kind: dict[Path, tuple[str, Path | None, Any]] = {}
        self._above: dict[Path, Path | None] = {}

    def classify(self, directory: Path) -> tuple[str, Path | None, Any]:
        """``("benchmark", file, None)``, ``("task", file, format)``, ``("results", None, None)`` or
        ``("", None, None)`` for an ordinary folder."""
        found = self._kind.get(directory)
        if found is not None:
            return found
        found = ("", None, None)
        if (directory / BENCHMARK_FILE).is_file():
            found = ("benchmark", directory / BENCHMARK_FILE, None)
        elif is_results_dir(directory):
            found = ("results", None, None)
        else:
            for fmt in self._formats():
                source = fmt.detect(directory)
                if source is not None:
                    found = ("task", source, fmt)
                    break
        self._kind[directory] = found
        return found

    def root_of(self, directory: Path) -> Path | None:
        """The outermost data root at or above ``directory``, or None."""
        if directory in self._above:
            return self._above[directory]
        parent = directory.parent
        above = self.root_of(parent) if parent != directory else None
        result = above if above is not None else (directory if self.classify(directory)[0] else None)
        self._above[directory] = result
        return result


def guard_conftests(pluginmanager: pytest.PytestPluginManager, roots: Roots) -> None:
    """Make pytest load, for any folder at or below a data root, the conftests of the root's parent."""
    load = getattr(pluginmanager, "_loadconftestmodules", None)
    get_dir = getattr(pluginmanager, "_get_directory", None)
    cache = getattr(pluginmanager, "_dirpath2confmods", None)
    if load is None or get_dir is None or not isinstance(cache, dict):
        raise RuntimeError("pytest-cloudeval: this pytest has no PytestPluginManager._loadconftestmodules; "
                           "conftests inside benchmark folders could be imported. Pin pytest < 10 or update "
                           "pytest_cloudeval/layout.py")
    if getattr(load, "cloudeval_guard", False):
        return

    def guarded(path: Path, importmode: Any, rootpath: Path, **kwargs: Any) -> None:
        directory = get_dir(Path(path))
        root = roots.root_of(directory)
        if root is None:
            load(path, importmode, rootpath, **kwargs)
            return
        outside = root.parent
        load(outside, importmode, rootpath, **kwargs)
        if directory not in cache:
            cache[directory] = list(cache.get(get_dir(outside), ()))

    guarded.cloudeval_guard = True  # type: ignore[attr-defined]
    pluginmanager._loadconftestmodules = guarded  # type: ignore[method-assign]


class DataRoot(pytest.Collector):
    """A benchmark root, lone task folder or results folder: yields its format's collector, walks nothing.

    Deliberately not a ``pytest.Directory``: pytest loads conftests for those.
    """

    def __init__(self, *, source: Path | None, make: Callable[[DataRoot, Path], pytest.Collector] | None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.make = make

    @classmethod
    def from_parent(cls, parent: pytest.Collector, **kwargs: Any) -> DataRoot:  # type: ignore[override]
        return super().from_parent(parent, **kwargs)  # type: ignore[no-any-return]

    def collect(self) -> list[pytest.Item | pytest.Collector]:
        if self.source is None or self.make is None:
            return []
        return [self.make(self, self.source)]


def make_data_root(parent: pytest.Collector, path: Path, source: Path | None,
                   make: Callable[[DataRoot, Path], pytest.Collector] | None) -> DataRoot:
    session = parent.session
    rel = path.relative_to(session.config.rootpath) if path.is_relative_to(session.config.rootpath) else path
    nodeid = rel.as_posix() if str(rel) != "." else ""
    return DataRoot.from_parent(parent, name=path.name, path=path, nodeid=nodeid, source=source, make=make)
