"""One driver per results folder: a lock file that names its holder.

``<out>/pipeline/driver.lock`` holds an exclusive ``fcntl.flock`` for as long as a
driver runs, and says who holds it (process id, host, start time) as one JSON line.
The kernel drops a flock when its process ends in any way, SIGKILL included, so a lock
is never left held by a dead driver; what a dead driver leaves is its line in the file,
which the next driver recognizes as stale, takes over and reports. A clean exit empties
the file (it is never deleted: a driver that opened it just before a deletion would
lock a file nobody else can find).

flock works on local file systems and on NFSv4 (where Linux maps it to a POSIX lock),
the kinds of folder a cluster's driver and workers share.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import attrs

LOCK_FILE: Final = Path("pipeline") / "driver.lock"

__all__ = ["LOCK_FILE", "FolderError", "FolderLocked", "Holder", "hold_results_folder"]


@attrs.frozen
class Holder:
    """The driver that holds (or held) a results folder."""

    pid: int
    host: str
    started: str

    def text(self) -> str:
        return f"process {self.pid} on host {self.host} (started {self.started})"


class FolderError(RuntimeError):
    """The results folder cannot be used; the message says why and what to do."""


class FolderLocked(FolderError):
    """Another driver is running on this results folder; the message names it."""

    def __init__(self, message: str, holder: Holder | None) -> None:
        super().__init__(message)
        self.holder = holder


def _parse(text: str) -> Holder | None:
    try:
        raw = json.loads(text)
        return Holder(pid=int(raw["pid"]), host=str(raw["host"]), started=str(raw["started"]))
    except (ValueError, KeyError, TypeError):
        return None


def _read_holder(fd: int) -> Holder | None:
    os.lseek(fd, 0, os.SEEK_SET)
    return _parse(os.read(fd, 4096).decode("utf-8", "replace").strip())


@contextmanager
def hold_results_folder(
    out: Path, *, say: Callable[[str], None] | None = None
) -> Iterator[Holder | None]:
    """Hold ``out``'s driver lock for the duration of the block.

    Raises :class:`FolderLocked` at once, naming the running driver, when another
    process holds it. Yields the stale holder a dead driver left behind (None when the
    folder was free), after reporting the take-over through ``say``.
    """
    path = out / LOCK_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise FolderError(
            f"cannot use {out} as the results folder ({type(exc).__name__}: {exc}); "
            "choose another with --out"
        ) from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = None
            for _ in range(20):  # the holder writes its line just after taking the lock
                holder = _read_holder(fd)
                if holder is not None:
                    break
                time.sleep(0.05)
            who = holder.text() if holder is not None else "another process"
            raise FolderLocked(
                f"{out} is in use by another driver: {who}. Wait for it to finish, stop "
                f"it (kill {holder.pid if holder else 'PID'}: it keeps its finished runs), or "
                "choose another folder with --out",
                holder,
            ) from None
        stale = _read_holder(fd)
        me = Holder(
            pid=os.getpid(),
            host=socket.gethostname(),
            started=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        )
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(attrs.asdict(me)) + "\n").encode(), 0)
        os.fsync(fd)
        if stale is not None and say is not None:
            say(
                f"{out}: took over the lock left by a driver that is no longer running "
                f"({stale.text()}); its finished runs are kept"
            )
        try:
            yield stale
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the flock
