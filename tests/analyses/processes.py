"""Processes the tests start: each in a session of its own, found by process group, and
ended whatever the test's outcome."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

from analyses.pipeline.memwatch import processes


def alive_in_group(pgid: int) -> list[int]:
    """The processes of group ``pgid`` that are not zombies (a zombie has ended; it only
    waits for its parent to read its status)."""
    return [p.pid for p in processes() if p.pgrp == pgid and p.state != "Z"]


def left_after(pgid: int, seconds: float) -> list[int]:
    """The processes of group ``pgid`` still alive after waiting up to ``seconds``."""
    deadline = time.monotonic() + seconds
    while (alive := alive_in_group(pgid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive


def kill_group(pgid: int) -> None:
    """SIGKILL every process of group ``pgid``."""
    for pid in alive_in_group(pgid):
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Sessions:
    """Start commands each in a new session; :meth:`end` kills every one of them."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[str]] = []

    def start(self, command: Sequence[str], **kwargs: Any) -> subprocess.Popen[str]:
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        proc = subprocess.Popen(list(command), start_new_session=True, text=True, **kwargs)
        self.started.append(proc)
        return proc

    def end(self) -> None:
        for proc in self.started:
            kill_group(proc.pid)
            proc.kill()
            proc.communicate()


@contextmanager
def sessions() -> Iterator[Sessions]:
    s = Sessions()
    try:
        yield s
    finally:
        s.end()
