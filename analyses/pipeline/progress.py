"""Where a running pipeline stands: runs done out of runs known, per study, the time
so far and an estimate of the rest.

On a terminal this is one progress bar (tqdm) whose line ends with each study's count;
the driver's messages are written above it. When the output is not a terminal (a log
file, CI), every message is a plain line, and the line of each finished run starts with
the same counts and estimate. The estimate comes from the runs measured so far: each
study's runs still to do times the mean wall time of its runs computed in this
invocation (of all studies' runs while it has none), over the number of workers.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import IO, Final

import attrs

from analyses.pipeline.plan import PlanProgress

__all__ = ["Progress", "Standing", "duration"]

BAR_FORMAT: Final = "{desc}{percentage:3.0f}%|{bar}| {n}/{total} runs [{elapsed}{postfix}]"


def duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


@attrs.frozen
class Standing:
    """The pipeline at one moment: each study's progress (in the order the studies
    started), the wall seconds of the runs computed so far per study, the workers, and
    the time since the start."""

    studies: Mapping[str, PlanProgress]
    measured: Mapping[str, tuple[int, float]]
    """Per study: runs computed in this invocation and the sum of their wall seconds."""
    workers: int
    elapsed: float

    @property
    def known(self) -> int:
        return sum(p.known for p in self.studies.values())

    @property
    def back(self) -> int:
        return sum(p.back for p in self.studies.values())

    def rest(self) -> float | None:
        """Seconds still to go, from the runs measured so far (None before any)."""
        runs = sum(n for n, _ in self.measured.values())
        if runs == 0:
            return None
        overall = sum(w for _, w in self.measured.values()) / runs
        total = 0.0
        for name, p in self.studies.items():
            n, wall = self.measured.get(name, (0, 0.0))
            total += (p.known - p.back) * (wall / n if n else overall)
        return total / max(1, self.workers)

    def counts(self) -> str:
        """``init 3/3, search 40/64``."""
        return ", ".join(f"{name} {p.back}/{p.known}" for name, p in self.studies.items())

    def status(self) -> str:
        """``41/120 runs, 2m10s, about 5m20s left``."""
        rest = self.rest()
        left = "" if rest is None else f", about {duration(rest)} left"
        return f"{self.back}/{self.known} runs, {duration(self.elapsed)}{left}"


class Progress:
    """The driver's messages and its standing, on ``stream``: a bar on a terminal
    (unless ``bar`` says otherwise), plain lines elsewhere."""

    def __init__(self, stream: IO[str], *, bar: bool | None = None) -> None:
        self.stream = stream
        self.start = time.perf_counter()
        use_bar = stream.isatty() if bar is None else bar
        self._bar = None
        if use_bar:
            from tqdm import tqdm

            self._bar = tqdm(
                total=0, file=stream, bar_format=BAR_FORMAT, dynamic_ncols=True, leave=True
            )
        self._standing: Standing | None = None

    def say(self, message: str) -> None:
        """A message of the driver (a study started, finished or failed)."""
        if self._bar is not None:
            self._bar.write(message, file=self.stream)
        else:
            print(message, file=self.stream, flush=True)

    def finished(self, line: str, standing: Standing) -> None:
        """A run came back: its line, and where the pipeline stands now."""
        self.update(standing)
        if self._bar is not None:
            self._bar.write(line, file=self.stream)
        else:
            print(f"[{standing.status()}] {line.strip()}", file=self.stream, flush=True)

    def update(self, standing: Standing) -> None:
        self._standing = standing
        if self._bar is None:
            return
        rest = standing.rest()
        self._bar.total = standing.known
        self._bar.n = standing.back
        left = "" if rest is None else f"about {duration(rest)} left; "
        self._bar.set_postfix_str(left + standing.counts(), refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
