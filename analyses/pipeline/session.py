"""What a driver holds while it runs: the results folder's lock and its signal handlers.

The executor is entered inside this session, so a stop (SIGTERM, SIGINT) raised in it
ends the executor's workers first (the executor's context does that), then restores
the signal handlers, then releases the lock: a driver that starts after this one has
exited never meets workers of this one.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import attrs

from analyses.pipeline.lock import Holder, hold_results_folder
from analyses.pipeline.signals import Stopped, StopSignals, stop_on_signals

__all__ = ["DriverSession", "driver_session", "stopped_message"]


@attrs.frozen
class DriverSession:
    """The signal guard to hand to ``run_pipeline``, and the stale lock holder this
    driver took over (None when the folder was free)."""

    guard: StopSignals
    took_over: Holder | None


@contextmanager
def driver_session(
    out: Path,
    *,
    say: Callable[[str], None] | None = None,
) -> Iterator[DriverSession]:
    """Lock ``out`` and install the stop handlers: FolderLocked at once when another
    driver holds ``out``; ``say`` reports a stale lock taken over."""
    with hold_results_folder(out, say=say) as stale, stop_on_signals() as guard:
        yield DriverSession(guard, stale)


def stopped_message(stop: Stopped, out: Path, command: Sequence[str]) -> str:
    """What to tell the user after a stop: why, what is kept, and how to resume."""
    kept = sum(1 for _ in out.glob("*/runs/*.json"))
    return (
        f"stopped by {stop.name}: the workers are ended; {kept} finished runs are kept in "
        f"{out}. Resume with the same command: {shlex.join(command)}"
    )
