"""Running studies in the test's own process: what most pipeline tests do."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from analyses.pipeline.driver import run_pipeline
from analyses.pipeline.executors import make_executor
from analyses.pipeline.progress import Progress
from analyses.pipeline.store import ResultStore
from analyses.pipeline.study import AnyStudy
from analyses.pipeline.tasks import RunContext
from analyses.pipeline.timings import PipelineReport


def run_local(
    out: Path,
    studies: Sequence[AnyStudy],
    *,
    available: Sequence[AnyStudy] | None = None,
    executor: str = "local",
    workers: int | None = None,
    progress: Progress | None = None,
) -> PipelineReport:
    """``studies`` run on the ``local`` executor (one run at a time, in this process) into
    the results folder ``out``, quietly."""
    with make_executor(executor, workers=workers) as ex:
        return run_pipeline(
            studies,
            store=ResultStore(out),
            executor=ex,
            ctx=RunContext(str(out), quiet=True),
            available=available,
            progress=progress,
        )
