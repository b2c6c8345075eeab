"""The TaskFormat contract: how a format finds its folders, loads tasks at collection (no network),
then prepares, runs the oracle and judges where the task runs.

A format owns its layout: collection asks each registered format whether a folder is one of its
lone tasks (``detect``) and reads ``benchmark.toml`` for the rest; nothing outside the format knows
its file names. Register a format with the ``pytest_cloudeval_task_formats`` hook (one line).
"""

from __future__ import annotations

import functools
import math
import re
import sys
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import BenchmarkError
from ..model import AgentOutput, Judgement, Task
from ..sandbox.base import Capability

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

if TYPE_CHECKING:
    from ..sandbox.base import Sandbox
    from ..settings import Settings


@dataclass(frozen=True)
class BrokenTask:
    """A task that could not be loaded: becomes an item that errors, naming the file and the fault."""

    benchmark: str
    task_id: str
    source: Path
    message: str
    skip: bool = False
    """True when the task is valid but asks for something this plugin cannot honour (skipped, not errored)."""


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; errors name the file and the fault."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise BenchmarkError(path, f"cannot read: {e.strerror or e}") from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BenchmarkError(path, f"not UTF-8 text ({e.reason} at byte {e.start})") from e
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise BenchmarkError(path, f"invalid TOML: {e}") from e
    except (ValueError, RecursionError) as e:  # e.g. an integer over Python's 4300-digit limit
        raise BenchmarkError(path, f"invalid TOML: {str(e)[:200]}") from e


class HugeInt(str):
    """A JSON integer too long to convert (Python refuses over 4300 digits): kept as text so only
    the field holding it is refused, not the whole file. Use ``parse_int=parse_json_int``."""

    def __repr__(self) -> str:
        return f"a number of {len(self)} digits"


def parse_json_int(text: str) -> int | HugeInt:
    return int(text) if len(text) <= 400 else HugeInt(text)


def check_number(value: Any, field: str, *, integer: bool = False, minimum: float = 0.0,
                 maximum: float = math.inf, exclusive_min: bool = True) -> float | int:
    """``value`` as a finite number in range, else ValueError naming ``field`` and the value.

    Every number a format reads from a task file goes through here (NaN, infinities, 5000-digit
    integers, booleans and strings are refused where they are read, not deep in a sandbox).
    """
    if isinstance(value, HugeInt):
        raise ValueError(f"{field} must be at most {maximum:g}, got a number of {len(value)} digits")
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok:
        kind = "a whole number" if integer else "a number"
        raise ValueError(f"{field} must be {kind}, got {_show(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{field} must be a finite number, got {_show(value)}")
    if value <= minimum if exclusive_min else value < minimum:
        low = ("positive" if minimum == 0 else f"greater than {minimum:g}") if exclusive_min else f"at least {minimum:g}"
        raise ValueError(f"{field} must be {low}, got {_show(value)}")
    if value > maximum:
        raise ValueError(f"{field} must be at most {maximum:g}, got {_show(value)}")
    return value


def _show(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10 ** 30:
        return f"a number of about {int(value.bit_length() * 0.30103) + 1} digits"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


_TEMPLATE = re.compile(r"\$\{([^}:]+)(?::-(.*))?\}")


def resolve_env(env: Mapping[str, str], passed: Mapping[str, str], source: Path, table: str) -> dict[str, str]:
    """Task variables with ``${VAR}`` / ``${VAR:-default}`` values resolved (a whole value, as Harbor).

    ``VAR`` comes from what the user passed (``--secrets-env``/``--pass-env``), never from the host's
    whole environment: a task file must not be able to read the controller's credentials. A variable
    that was not passed and has no default is the task's error, naming the file and field.
    """
    out: dict[str, str] = {}
    for key, value in env.items():
        match = _TEMPLATE.fullmatch(value)
        if match is None:
            out[key] = value
            continue
        name, default = match.group(1), match.group(2)
        if name in passed:
            out[key] = passed[name]
        elif default is not None:
            out[key] = default
        else:
            raise BenchmarkError(source, f"[{table}] env {key} = {value!r}: variable {name} was not passed "
                                         "(pass it with --secrets-env or --pass-env, or give a ${VAR:-default})")
    return out


@functools.lru_cache(maxsize=4096)
def marker_name(text: str) -> str:
    """A ``-m``-usable marker name made of a metadata value (``Hard Problems`` -> ``hard_problems``)."""
    name = re.sub(r"[^0-9a-zA-Z_]+", "_", str(text).strip().lower()).strip("_")
    if not name:
        return ""
    return name if not name[0].isdigit() else f"m_{name}"


class TaskFormat(ABC):
    """One benchmark format. Methods other than ``load_benchmark`` run where the task runs."""

    name: ClassVar[str]
    requires: ClassVar[Capability] = Capability.NONE
    """Sandbox capabilities the format needs (e.g. ``Capability.CONTAINER``); missing ones skip the task."""
    markers: ClassVar[Mapping[str, str]] = {}
    """Markers this format adds to its tasks, with their help text (registered at configure)."""

    def detect(self, directory: Path) -> Path | None:
        """The file that makes ``directory`` one lone task of this format (no ``benchmark.toml``), else None.

        Called for folders pytest visits, before collection and while loading conftests: keep it to a
        stat or two, never read below ``directory``. A detected folder is data: pytest never walks,
        collects or imports anything inside it.
        """
        return None

    def load_task(self, source: Path, benchmark: str) -> Task | BrokenTask:
        """The lone task whose defining file ``detect`` returned."""
        raise NotImplementedError(f"format {self.name!r} detects no lone task folders")

    @abstractmethod
    def load_benchmark(self, root: Path, spec: Mapping[str, Any], benchmark: str) -> list[Task | BrokenTask]:
        """Tasks of the benchmark in ``root`` (``spec`` is benchmark.toml), in a deterministic order.

        Raises BenchmarkError when the benchmark as a whole is unreadable; a single bad task is
        returned as a BrokenTask so the others still run.
        """

    def prepare(self, task: Task, sandbox: Sandbox, settings: Settings) -> None:
        """Put what the agent needs into the sandbox before it starts."""

    @abstractmethod
    def oracle(self, task: Task, sandbox: Sandbox, settings: Settings, timeout_s: float) -> AgentOutput:
        """Produce the reference answer (the ``oracle`` agent)."""

    @abstractmethod
    def judge(self, task: Task, output: AgentOutput, sandbox: Sandbox, settings: Settings,
              task_dir: Path) -> Judgement:
        """Grade ``output``. Raise VerifierError when the grader itself is broken."""

    def collect(self, task: Task, sandbox: Sandbox, settings: Settings, task_dir: Path) -> None:
        """Copy the task's logs and artifacts from the sandbox into ``task_dir`` (also after errors)."""
