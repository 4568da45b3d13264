"""Atomic, durable file writes: the one way fmlp writes a file that someone may read later.

A writer fills a temporary file in the target's own folder, flushes and fsyncs it, and
renames it over the target; then the folder itself is fsynced so the rename survives a
crash. A reader therefore sees the old file or the new one, never a partial one, and an
interruption (an exception, a signal, a killed process) leaves the old file in place and
no temporary file behind, except after SIGKILL, which leaves a ``.<name>.*.tmp`` that no
reader ever opens. Checkpoints, the data cache and the studies' results all use this.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_open", "atomic_write_bytes", "atomic_write_text"]


def _fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """A binary file handle whose contents replace ``path`` when the block ends normally.

    The folder is created when missing. The new file gets the usual permissions (0666
    less the umask), unlike ``tempfile.mkstemp``'s 0600. On an exception inside the block
    the temporary file is removed and ``path`` is left as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and durably; returns the path."""
    with atomic_open(path) as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically and durably; returns the path."""
    return atomic_write_bytes(path, text.encode("utf-8"))
