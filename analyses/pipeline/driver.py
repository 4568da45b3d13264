"""The driver: every run of every study on one executor, each as soon as its inputs exist.

A study (:mod:`analyses.pipeline.study`) declares the artifacts it needs and the ones
it provides. Given them, it makes a plan (:class:`analyses.pipeline.plan.StudyPlan`)
that hands out tasks as they become runnable (all at once for most studies; rung by
rung for a successive-halving search), takes their results back, and, once every run
is in, writes its figures and returns its typed summary. The driver

- checks that every artifact a study needs is provided by a study of this pipeline or
  can be read from an earlier run's summary on disk, and otherwise stops before
  computing anything, with a message that names the artifact;
- starts each study as soon as its artifacts exist, so studies run in the order their
  artifacts require and independent ones side by side;
- answers a task from the results folder when it was stored by an earlier run, and
  otherwise keeps exactly one task per worker in flight, choosing the waiting task of
  the study of lowest priority, and within it the task of lowest ``priority()`` (so
  the runs on the pipeline's critical path go first);
- stores each result atomically as it arrives (a failed run with its error), so an
  interrupted pipeline resumes without redoing finished runs;
- shows where it stands (:mod:`analyses.pipeline.progress`), and measures each
  study's wall time and the CPU seconds of its runs, and the core utilization: CPU
  seconds of all runs over wall seconds times workers.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import heapq
import itertools
import time
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

import attrs

from analyses.pipeline.executors import PipelineExecutor
from analyses.pipeline.plan import StudyError, StudyPlan
from analyses.pipeline.progress import Progress, Standing
from analyses.pipeline.records import JsonRecord, RecordError
from analyses.pipeline.signals import StopSignals
from analyses.pipeline.store import ResultStore, StoredRun
from analyses.pipeline.study import (
    AnyStudy,
    Artifacts,
    MissingArtifact,
    PipelineError,
    Study,
    check_order,
)
from analyses.pipeline.tasks import Failure, Outcome, RunContext, Task, execute
from analyses.pipeline.timings import PipelineReport, StudyTiming

T = TypeVar("T", bound=Task[object])
R = TypeVar("R")
S = TypeVar("S", bound=JsonRecord)

__all__ = ["MissingArtifact", "PipelineError", "StudyError", "run_pipeline"]


@attrs.define
class _Active(Generic[T, R, S]):
    """A study under way: its plan and what this invocation did for it."""

    study: Study[S]
    plan: StudyPlan[T, R, S]
    started: float
    computed: int = 0
    reused: int = 0
    failed: int = 0
    cpu: float = 0.0
    wall: float = 0.0
    outstanding: int = 0

    def record(self, task: T, run: StoredRun[R]) -> None:
        if run.failure is not None:
            self.failed += 1
        self.plan.record(task, run)

    def timing(self) -> StudyTiming:
        return StudyTiming(
            self.computed, self.reused, self.cpu, time.perf_counter() - self.started, self.failed
        )


@attrs.frozen
class _Queued(Generic[T, R, S]):
    """A task waiting for a worker, with the study it belongs to."""

    active: _Active[T, R, S]
    task: T


AnyActive = _Active[Any, Any, Any]
AnyQueued = _Queued[Any, Any, Any]


class _Pipeline:
    """One invocation of :func:`run_pipeline` (see there)."""

    def __init__(
        self,
        studies: Sequence[AnyStudy],
        store: ResultStore,
        executor: PipelineExecutor,
        ctx: RunContext,
        artifacts: Artifacts,
        progress: Progress | None,
        guard: StopSignals | None,
    ) -> None:
        self.studies = studies
        self.store = store
        self.executor = executor
        self.ctx = ctx
        self.artifacts = artifacts
        self.progress = progress
        self.critical = guard.critical if guard is not None else contextlib.nullcontext
        self.start = time.perf_counter()
        self.waiting = list(studies)
        self.active: dict[str, AnyActive] = {}
        self.started: dict[str, AnyActive] = {}
        self.summaries: dict[str, JsonRecord] = {}
        self.errors: dict[str, str] = {}
        self.timings: dict[str, StudyTiming] = {}
        self.queue: list[tuple[int, int, int, AnyQueued]] = []
        self.order = itertools.count()
        self.in_flight: dict[cf.Future[Outcome[object]], AnyQueued] = {}
        self.slots = max(1, executor.workers)

    # ------------------------------------------------------------ messages

    def say(self, message: str) -> None:
        if self.progress is not None:
            self.progress.say(message)

    def standing(self) -> Standing:
        return Standing(
            studies={name: a.plan.progress() for name, a in self.started.items()},
            measured={name: (a.computed, a.wall) for name, a in self.started.items()},
            workers=self.slots,
            elapsed=time.perf_counter() - self.start,
        )

    # ------------------------------------------------------------ studies

    def fail(self, name: str, message: str, *, stale: bool = True) -> None:
        """Record why ``name`` failed, in the report and on disk; ``stale``: its summary
        from an earlier invocation no longer holds and is removed."""
        self.errors[name] = message
        if stale:
            self.store.drop_summary(name)
        self.store.write_error(name, message)
        self.say(f"{name}: failed: {message}")

    def finish(self, name: str) -> None:
        a = self.active.pop(name)
        try:
            summary = a.plan.finish(self.store.folder(name))
        except StudyError as exc:
            self.fail(name, str(exc))
        else:
            self.store.write_summary(name, summary)
            try:
                self.artifacts.add(a.study.artifacts(summary))
            except StudyError as exc:  # its results stand, but it could not answer
                self.fail(name, str(exc), stale=False)
            else:
                self.store.clear_error(name)
                self.summaries[name] = summary
        timing = a.timing()
        self.timings[name] = timing
        if name in self.summaries:
            self.say(
                f"{name}: done in {timing.wall_seconds:.1f} s ({a.computed} runs computed, "
                f"{a.reused} reused" + (f", {a.failed} failed" if a.failed else "") + ")"
            )

    def start_ready_studies(self) -> bool:
        started = False
        lost = {key.name for s in self.studies if s.name in self.errors for key in s.provides}
        for study in list(self.waiting):
            missing = [key.name for key in study.needs if key not in self.artifacts]
            if not missing:
                self.waiting.remove(study)
                try:
                    plan = study.plan(self.artifacts, self.ctx)
                except StudyError as exc:
                    self.fail(study.name, str(exc))
                    self.timings[study.name] = StudyTiming(0, 0, 0.0, 0.0)
                    started = True
                    continue
                active: AnyActive = _Active(study, plan, time.perf_counter())
                self.active[study.name] = self.started[study.name] = active
                self.say(f"{study.name}: started")
                started = True
            elif any(name in lost for name in missing):
                self.waiting.remove(study)
                self.fail(
                    study.name,
                    f"not run: it needs {', '.join(missing)}, which a failed study should "
                    "have provided",
                )
        return started

    # ------------------------------------------------------------ runs

    def collect(self) -> None:
        """Hand out every ready task: answer it from the store or queue it."""
        again = True
        while again:
            again = False
            for name in list(self.active):
                a = self.active[name]
                for task in a.plan.ready():
                    again = True
                    stored = self.store.get(task)
                    if stored is not None:
                        a.reused += 1
                        a.record(task, stored)
                    else:
                        a.outstanding += 1
                        item = (a.study.priority, task.priority(), next(self.order))
                        heapq.heappush(self.queue, (*item, _Queued(a, task)))
                if a.outstanding == 0 and a.plan.done():
                    self.finish(name)
                    again = True
            if self.start_ready_studies():
                again = True
        if self.progress is not None:
            self.progress.update(self.standing())

    def submit(self) -> None:
        while self.queue and len(self.in_flight) < self.slots:
            queued = heapq.heappop(self.queue)[-1]
            try:
                future = self.executor.executor.submit(execute, queued.task, self.ctx)
            except Exception as exc:  # a broken pool refuses new work
                raise PipelineError(
                    f"the executor refused a run ({type(exc).__name__}: {exc}); finished runs "
                    "are stored: rerun to resume"
                ) from exc
            self.in_flight[future] = queued

    def come_back(self, future: cf.Future[Outcome[object]]) -> None:
        queued = self.in_flight.pop(future)
        task, a = queued.task, queued.active
        try:
            outcome = future.result()
        except Exception as exc:
            raise PipelineError(
                f"the executor lost the run {task.label()} ({type(exc).__name__}: {exc}); "
                "finished runs are stored: rerun to resume"
            ) from exc
        with self.critical():
            try:
                run = self.store.put(task, outcome)
            except RecordError as exc:  # the run returned another record than it declares
                outcome = attrs.evolve(
                    outcome,
                    result=None,
                    failure=Failure(
                        f"its result is not the {task.result_type.__name__} it declares: {exc}"
                    ),
                )
                run = self.store.put(task, outcome)
            a.outstanding -= 1
            a.computed += 1
            a.cpu += outcome.cpu_seconds
            a.wall += outcome.wall_seconds
            a.record(task, run)
            if self.progress is not None:
                self.progress.finished(_progress_line(task, outcome), self.standing())

    def run(self) -> PipelineReport:
        try:
            self.collect()
            self.submit()
            while self.in_flight or self.queue:
                done, _ = cf.wait(list(self.in_flight), return_when=cf.FIRST_COMPLETED)
                for future in sorted(done, key=lambda f: self.in_flight[f].task.label()):
                    self.come_back(future)
                with self.critical():
                    self.collect()
                self.submit()
            self.collect()
        finally:
            for future in self.in_flight:
                future.cancel()
        if self.active:
            stuck = ", ".join(sorted(self.active))
            raise PipelineError(f"the studies {stuck} have no runs left to do but are not complete")
        for study in self.waiting:
            self.errors.setdefault(study.name, "not run: its artifacts never became available")
        return PipelineReport(
            summaries=self.summaries,
            errors=self.errors,
            timings=self.timings,
            wall_seconds=time.perf_counter() - self.start,
            workers=self.executor.workers,
            executor=self.executor.name,
        )


def run_pipeline(
    studies: Sequence[AnyStudy],
    *,
    store: ResultStore,
    executor: PipelineExecutor,
    ctx: RunContext,
    available: Sequence[AnyStudy] | None = None,
    progress: Progress | None = None,
    guard: StopSignals | None = None,
) -> PipelineReport:
    """Run ``studies`` (resuming from ``store``) on ``executor`` and return what happened.

    ``available``: every study the pipeline knows, to read artifacts of studies left
    out of ``studies`` from their stored summaries. A study whose plan raises
    StudyError is reported in ``errors``; the studies that need its artifacts are then
    reported there too, and the others go on.

    ``progress``: where the driver shows its messages and where it stands (None:
    silent).

    ``guard``: the driver's signal handlers; a stop that arrives while a finished run
    or a summary is being stored waits until it is stored.
    """
    artifacts = check_order(studies, available or studies, store)
    try:
        return _Pipeline(studies, store, executor, ctx, artifacts, progress, guard).run()
    finally:
        if progress is not None:
            progress.close()


def _progress_line(task: Task[object], outcome: Outcome[object]) -> str:
    status = "failed: " + outcome.failure.error if outcome.failure is not None else "done"
    return f"  {task.label()}: {status} ({outcome.wall_seconds:.1f} s)"
