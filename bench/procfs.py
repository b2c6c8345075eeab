"""One pass over /proc for the scale benches: every process's pid, parent, name and stat fields."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    name: str
    fields: list[str]
    """``/proc/PID/stat`` after the name: fields[0] is the state, fields[1] the parent."""

    @property
    def rss_kb(self) -> int:
        return int(self.fields[21]) * PAGE_KB

    @property
    def own_cpu_s(self) -> float:
        """utime + stime."""
        return (int(self.fields[11]) + int(self.fields[12])) / TICK

    @property
    def cpu_s(self) -> float:
        """utime + stime + cutime + cstime (with reaped children)."""
        return sum(int(x) for x in self.fields[11:15]) / TICK


def processes() -> Iterator[Proc]:
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = raw.rsplit(")", 1)[1].split()
        yield Proc(int(entry), int(fields[1]), raw[raw.find("(") + 1:raw.rfind(")")], fields)


def tree(root_pid: int, procs: list[Proc]) -> list[Proc]:
    """``root_pid`` and all its descendants among ``procs``."""
    children: dict[int, list[Proc]] = {}
    by_pid = {p.pid: p for p in procs}
    for p in procs:
        children.setdefault(p.ppid, []).append(p)
    out, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        if pid in by_pid:
            out.append(by_pid[pid])
        todo.extend(c.pid for c in children.get(pid, []))
    return out
