"""Stopping on SIGTERM and SIGINT, and workers that die with their driver.

The driver: :func:`stop_on_signals` turns SIGTERM and SIGINT into a :class:`Stopped`
exception in the main thread, so the pipeline stops handing out runs, the executor's
context ends its workers (see ``executors``), the results folder keeps every finished
run, and the job exits with ``128 + signal`` (143 for SIGTERM, 130 for SIGINT), as a
shell reports a process killed by that signal. A signal that arrives while a finished
run is being stored waits until it is stored (:meth:`StopSignals.critical`).

A worker: :func:`die_with_parent`, run first in every pool worker, makes the worker end
when its driver ends in any way, SIGKILL included: Linux's parent-death signal
(``prctl(PR_SET_PDEATHSIG, SIGKILL)``) ends it at once, and a watchdog thread that
compares ``os.getppid()`` with the driver's process id every second is the fallback
everywhere else. It also ignores SIGINT, so that Ctrl-C in a terminal (sent to the
whole process group) reaches the driver alone, which then ends the workers itself.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType
from typing import Final

__all__ = [
    "EXIT_SIGNALS",
    "StopSignals",
    "Stopped",
    "die_with_parent",
    "stop_on_signals",
]

EXIT_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT)
PR_SET_PDEATHSIG: Final = 1
WATCHDOG_SECONDS: Final = 1.0


class Stopped(BaseException):
    """The driver was asked to stop by ``signum``. A BaseException, like
    KeyboardInterrupt, so that no ``except Exception`` on the way swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, as a shell reports a process ended by it."""
        return 128 + self.signum


class StopSignals:
    """The installed handlers; :meth:`critical` defers a stop to the end of a block."""

    def __init__(self) -> None:
        self._depth = 0
        self._pending: int | None = None

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self._depth:
            self._pending = signum
            return
        raise Stopped(signum)

    @contextlib.contextmanager
    def critical(self) -> Iterator[None]:
        """A block that a stop does not interrupt (storing a finished run, say); a signal
        that arrived meanwhile stops the driver right after it."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if not self._depth and self._pending is not None:
                signum, self._pending = self._pending, None
                raise Stopped(signum)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopSignals]:
    """SIGTERM and SIGINT raise :class:`Stopped` in the main thread inside the block;
    the previous handlers are restored on exit. Outside the main thread (where Python
    cannot install handlers) nothing is installed."""
    state = StopSignals()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return
    previous = {s: signal.getsignal(s) for s in EXIT_SIGNALS}
    for s in EXIT_SIGNALS:
        signal.signal(s, state.handle)
    try:
        yield state
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _set_parent_death_signal(signum: int) -> bool:
    """Linux: ask the kernel to send ``signum`` to this process when its parent ends.
    False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return int(libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent: int, every: float) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(1)  # the driver is gone: nothing of this worker is worth keeping
        time.sleep(every)


def die_with_parent(parent: int, *, every: float = WATCHDOG_SECONDS) -> None:
    """Make this process (a pool worker) end when process ``parent`` (its driver) ends:
    the parent-death signal on Linux, and a watchdog thread everywhere. Ignores SIGINT
    (the driver handles Ctrl-C and ends its workers). Ends at once when the parent is
    already gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != parent:  # it died before the parent-death signal was set
        os._exit(1)
    threading.Thread(
        target=_watch_parent, args=(parent, every), name="fmlp-parent-watchdog", daemon=True
    ).start()
