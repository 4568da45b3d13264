"""What an invocation of the pipeline did, per study: runs computed and reused, CPU
seconds, wall time; and the log of every invocation that computed something, in
``<out>/pipeline/timings.json`` (the report's title page reads it)."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import attrs

from analyses.pipeline.records import Json, JsonRecord, RecordError, from_json, to_json
from analyses.pipeline.store import ResultStore, read_json, write_json

__all__ = [
    "TIMINGS_FILE",
    "Invocation",
    "PipelineReport",
    "StudyTiming",
    "log_invocation",
    "read_log",
]


@attrs.frozen
class StudyTiming:
    """One study in one invocation: runs computed and reused, the CPU seconds of the runs
    computed, and the wall time from its first run to its summary."""

    computed: int
    reused: int
    cpu_seconds: float
    wall_seconds: float
    failed: int = 0


@attrs.frozen
class PipelineReport:
    """What one invocation did."""

    summaries: dict[str, JsonRecord]
    errors: dict[str, str]
    timings: dict[str, StudyTiming]
    wall_seconds: float
    workers: int
    executor: str

    @property
    def cpu_seconds(self) -> float:
        return sum(t.cpu_seconds for t in self.timings.values())

    @property
    def computed(self) -> int:
        return sum(t.computed for t in self.timings.values())

    @property
    def utilization(self) -> float:
        """CPU seconds of all runs over wall seconds times workers."""
        denom = self.wall_seconds * self.workers
        return self.cpu_seconds / denom if denom > 0 else 0.0


TIMINGS_FILE: Final = Path("pipeline") / "timings.json"


@attrs.frozen
class Invocation:
    """One logged invocation that computed runs."""

    executor: str
    workers: int
    wall_seconds: float
    cpu_seconds: float
    utilization: float
    studies: dict[str, StudyTiming]


def read_log(raw: Json) -> list[Invocation]:
    """The invocations of a parsed ``timings.json``; RecordError (a ValueError) when it
    is not a list of them."""
    if not isinstance(raw, list):
        raise RecordError(f"{TIMINGS_FILE}: expected a list of invocations")
    return [from_json(Invocation, entry) for entry in raw]


def log_invocation(store: ResultStore, report: PipelineReport) -> list[Invocation]:
    """Append this invocation to ``<out>/pipeline/timings.json`` when it computed runs,
    and return the log (every invocation since the results folder was new)."""
    path = store.out / TIMINGS_FILE
    log: list[Invocation] = []
    try:
        raw = read_json(path)
        log = read_log(raw)
    except (OSError, ValueError):
        log = []
    if report.computed:
        log.append(
            Invocation(
                executor=report.executor,
                workers=report.workers,
                wall_seconds=report.wall_seconds,
                cpu_seconds=report.cpu_seconds,
                utilization=report.utilization,
                studies=dict(report.timings),
            )
        )
        write_json(path, [to_json(entry) for entry in log])
    return log
