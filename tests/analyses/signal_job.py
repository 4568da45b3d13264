"""A small driver for the signal and lock tests: one study of slow squares on a process
pool, run inside the same driver session as ``analyses.main`` (the results folder's
lock, the stop handlers, an executor whose workers die with the driver).

    python -m tests.analyses.signal_job OUT [--runs N] [--seconds S] [--workers W]

Prints ``computed C reused R total T`` when it finishes (exit 0); a stop by SIGTERM or
SIGINT prints the resume message and exits 128 + the signal; a folder in use, exit 2.
Module-level, so a spawned worker can import its task.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import attrs

from analyses.pipeline.driver import run_pipeline
from analyses.pipeline.executors import make_executor
from analyses.pipeline.lock import FolderError
from analyses.pipeline.plan import StudyPlan
from analyses.pipeline.records import Json, JsonRecord, record_json
from analyses.pipeline.session import driver_session, stopped_message
from analyses.pipeline.signals import Stopped
from analyses.pipeline.store import ResultStore
from analyses.pipeline.study import AnyKey, Artifacts, ArtifactValues
from analyses.pipeline.tasks import RunContext


@attrs.frozen
class Slow:
    value: int


@attrs.frozen
class SlowSquare:
    study: ClassVar[str] = "slow"
    torch: ClassVar[bool] = False
    result_type: ClassVar[type[Slow]] = Slow

    n: int
    seconds: float

    def key(self) -> dict[str, Json]:
        return {"kind": "slow-square", **record_json(self)}

    def label(self) -> str:
        return f"slow {self.n}"

    def priority(self) -> int:
        return self.n

    def run(self, ctx: RunContext) -> Slow:
        marker = Path(ctx.out) / "started" / f"{self.n}-{os.getpid()}"
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        time.sleep(self.seconds)
        return Slow(self.n * self.n)


@attrs.frozen
class SlowSummary(JsonRecord):
    SCHEMA: ClassVar[int] = 1
    squares: tuple[int, ...]


class _Plan(StudyPlan[SlowSquare, Slow, SlowSummary]):
    def __init__(self, runs: int, seconds: float) -> None:
        self.tasks = [SlowSquare(n, seconds) for n in range(runs)]
        super().__init__(self.tasks)

    def finish(self, folder: Path) -> SlowSummary:
        return SlowSummary(tuple(self.results[t].value for t in self.tasks))


@attrs.frozen
class SlowStudy:
    runs: int
    seconds: float

    name: ClassVar[str] = "slow"
    priority: ClassVar[int] = 0
    needs: ClassVar[tuple[AnyKey, ...]] = ()
    provides: ClassVar[tuple[AnyKey, ...]] = ()
    summary_type: ClassVar[type[SlowSummary]] = SlowSummary

    def plan(self, artifacts: Artifacts, ctx: RunContext) -> _Plan:
        return _Plan(self.runs, self.seconds)

    def artifacts(self, summary: SlowSummary) -> ArtifactValues:
        return {}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("out", type=Path)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--seconds", type=float, default=0.5)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    command = [sys.executable, "-m", "tests.analyses.signal_job", *(argv or sys.argv[1:])]

    def warn(message: str) -> None:
        print(f"job: {message}", file=sys.stderr, flush=True)

    try:
        with (
            driver_session(args.out, say=warn) as session,
            make_executor("process", workers=args.workers) as ex,
        ):
            report = run_pipeline(
                [SlowStudy(args.runs, args.seconds)],
                store=ResultStore(args.out),
                executor=ex,
                ctx=RunContext(str(args.out)),
                guard=session.guard,
            )
    except FolderError as exc:
        print(f"job: {exc}", file=sys.stderr)
        return 2
    except Stopped as stop:
        print(f"job: {stopped_message(stop, args.out, command)}", file=sys.stderr)
        return stop.exit_code
    t = report.timings["slow"]
    print(f"computed {t.computed} reused {t.reused} total {t.computed + t.reused}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
