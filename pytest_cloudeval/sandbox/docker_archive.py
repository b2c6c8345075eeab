"""Tar archives between the host and a container (the engine's archive API takes and gives tars):
batched writes with owners and modes, and capped, safe extraction of what comes back.
"""

from __future__ import annotations

import io
import os
import posixpath
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from .base import CopyReport


@dataclass
class Owner:
    uid: int = 0
    gid: int = 0


class PendingArchive:
    """Files and folders on their way into a container, gathered in one tar (relative to ``/``).

    Each upload costs the engine ~45 ms whatever its size, so writes are batched until the next
    command (which unpacks them itself, see ``DockerSandbox.exec``) or read (one upload). Host
    files are read when added, not when sent.
    """

    def __init__(self) -> None:
        self._spool = tempfile.TemporaryFile()
        self._tar = tarfile.open(fileobj=self._spool, mode="w", format=tarfile.PAX_FORMAT)
        self.parents: set[str] = set()
        self.count = 0

    def _info(self, path: str, owner: Owner) -> tarfile.TarInfo:
        info = tarfile.TarInfo(path.strip("/"))
        info.uid, info.gid, info.mtime = owner.uid, owner.gid, int(time.time())
        return info

    def add_file(self, path: str, data: bytes, mode: int, owner: Owner) -> None:
        info = self._info(path, owner)
        info.size, info.mode = len(data), mode
        self._tar.addfile(info, io.BytesIO(data))
        self.parents.add(posixpath.dirname(path))
        self.count += 1

    def add_dir(self, path: str, mode: int, owner: Owner) -> None:
        info = self._info(path, owner)
        info.type, info.mode = tarfile.DIRTYPE, mode
        self._tar.addfile(info)
        self.count += 1

    def add_host_path(self, src: Path, path: str, owner: Owner) -> None:
        def chown(info: tarfile.TarInfo) -> tarfile.TarInfo:
            info.uid, info.gid, info.uname, info.gname = owner.uid, owner.gid, "", ""
            return info

        self._tar.add(str(src), arcname=path.strip("/"), recursive=True, filter=chown)
        self.parents.add(posixpath.dirname(path))
        self.count += 1

    def size(self) -> int:
        return self._spool.tell()

    def finish(self) -> Any:
        self._tar.close()
        self._spool.seek(0)
        return self._spool

    def discard(self) -> None:
        try:
            self._tar.close()
        finally:
            self._spool.close()


class _ChunkReader(io.RawIOBase):
    """A readable file over an iterator of byte chunks, counting what it delivers."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = b""
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(target), len(self._pending))
        target[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        self.consumed += n
        return n


STOP_AFTER_SKIPPED = 1_000_000
"""Entries left out before a copy stops reading (below that, the report's count is exact)."""


def extract_archive(chunks: Iterator[bytes], root_name: str, dest: Path, max_bytes: int, max_files: int,
                    *, only: Callable[[str], bool] | None = None, redactor: Any = None) -> CopyReport:
    """Write the regular files and folders of a Docker archive stream under ``dest``.

    ``root_name`` is the archive's top entry (the copied path's base name): it maps to ``dest``.
    Links, devices and names escaping ``dest`` are skipped; so are files past ``max_bytes`` in all
    and files past ``max_files`` (named in the report). The transfer itself stops at twice the byte
    cap, or after twice the file cap's number of entries. With a ``redactor`` (``redact.Redactor``),
    names are redacted and each file streams through it into a temporary that gets its name only when
    complete: a killed copy leaves no unredacted byte on disk.
    """
    report = CopyReport()
    reader = _ChunkReader(chunks)
    with tarfile.open(fileobj=io.BufferedReader(reader, 1 << 16), mode="r|") as tar:
        for member in tar:
            parts = PurePosixPath(member.name).parts
            if not parts or parts[0] != root_name:
                continue
            rel = PurePosixPath(*parts[1:]) if len(parts) > 1 else PurePosixPath(".")
            if ".." in rel.parts or rel.is_absolute():
                continue
            if only is not None and not only(str(rel)):
                continue
            if redactor:
                rel = PurePosixPath(*(redactor.text(part) for part in rel.parts))
            target = dest if str(rel) == "." else dest / rel  # no "..": stays under dest
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            if not member.isfile():
                report.skip(f"{rel} (not a regular file)")
                continue
            if report.files >= max_files or report.bytes + member.size > max_bytes:
                if report.files >= max_files:
                    report.skip(f"{rel} (over the {max_files}-file cap)")
                else:
                    report.skip(f"{rel} ({member.size} bytes, over the {max_bytes}-byte cap)")
                if reader.consumed > 2 * max_bytes + (1 << 20) or report.skipped_count > STOP_AFTER_SKIPPED:
                    report.stopped_early = True
                    break
                continue
            fileobj = tar.extractfile(member)
            if fileobj is None:
                continue
            if redactor is not None:
                from ..results import write_redacted  # the results folder's writer (temporary names)

                write_redacted(fileobj, target, redactor, member.mode & 0o755 | 0o600)
                report.files += 1
                report.bytes += member.size
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as out:
                while True:
                    block = fileobj.read(1 << 20)
                    if not block:
                        break
                    out.write(block)
            os.chmod(target, member.mode & 0o755 | 0o600)
            report.files += 1
            report.bytes += member.size
    return report


def read_single(chunks: Iterator[bytes], max_bytes: int) -> tuple[tarfile.TarInfo, bytes]:
    """The first member of an archive stream (a copied file): its header and up to ``max_bytes``."""
    reader = _ChunkReader(chunks)
    with tarfile.open(fileobj=io.BufferedReader(reader, 1 << 16), mode="r|") as tar:
        for member in tar:
            if member.isfile():
                fileobj = tar.extractfile(member)
                data = fileobj.read(max_bytes) if fileobj is not None else b""
                return member, data
            return member, b""
    raise FileNotFoundError("empty archive")
