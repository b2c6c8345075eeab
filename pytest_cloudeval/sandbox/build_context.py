"""The content hash of a task's build context (Harbor ``environment/``), without the Docker SDK.

Built images are tagged by it (``docker_images``), and a ``--cloud=gke`` worker pod, which has no
engine, finds by it the image the controller built and pushed for the same context (``k8s``).
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path


def content_hash(folder: Path) -> str:
    """SHA-256 of a build context: relative paths, executable bits, link targets and contents."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            digest.update(f"L {rel} -> {os.readlink(path)}\n".encode())
        elif stat.S_ISDIR(info.st_mode):
            digest.update(f"D {rel}\n".encode())
        elif stat.S_ISREG(info.st_mode):
            digest.update(f"F {rel} {info.st_mode & 0o111 and 1} {info.st_size}\n".encode())
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()
