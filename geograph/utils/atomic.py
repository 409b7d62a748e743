"""Atomic file writes: write to a temporary file beside the target, fsync, rename.

A process killed mid-write leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_write(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path; on success it is renamed over ``path``.

    Args:
        path: Final destination.
        suffix: Suffix for the temporary file (some writers infer format from it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + ".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_write(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def remove_tree(path: str | Path) -> None:
    """Delete the folder ``path`` so that it vanishes at once: rename it to a hidden sibling,
    then delete that. A process killed meanwhile leaves ``path`` whole or gone, never a part of
    it (a hidden ``.<name>.deleting-*`` folder may be left behind)."""
    path = Path(path)
    trash = path.with_name(f".{path.name}.deleting-{uuid.uuid4().hex[:8]}")
    os.rename(path, trash)
    shutil.rmtree(trash)


def replace_tree(src: str | Path, dst: str | Path) -> None:
    """Put the folder ``src`` in place of ``dst``: ``dst`` is the old folder, gone, or the new one,
    never a mix (each step is one rename on one filesystem)."""
    src, dst = Path(src), Path(dst)
    trash = None
    if dst.exists():
        trash = dst.with_name(f".{dst.name}.deleting-{uuid.uuid4().hex[:8]}")
        os.rename(dst, trash)
    os.rename(src, dst)
    if trash is not None:
        shutil.rmtree(trash)


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
