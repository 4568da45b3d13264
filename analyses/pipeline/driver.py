"""The driver: every run of every study on one executor, each as soon as its inputs exist.

A study declares the artifacts it needs and the ones it provides (typed keys, see
:class:`ArtifactKey`). Given them, it makes a :class:`Plan`: a small state machine that
hands out tasks as they become runnable (all at once for most studies; rung by rung for
a successive-halving search), takes their results back, and, once every run is in,
writes its figures and returns its typed summary. The driver

- checks that every artifact a study needs is provided by a study of this pipeline or
  can be read from an earlier run's summary on disk, and otherwise stops before
  computing anything, with a message that names the artifact;
- starts each study as soon as its artifacts exist, so studies run in the order their
  artifacts require and independent ones side by side;
- answers a task from the results folder when it was stored by an earlier run, and
  otherwise keeps exactly one task per worker in flight, choosing the waiting task of
  lowest ``priority()`` (so the runs on the pipeline's critical path go first);
- stores each result atomically as it arrives (a failed run with its error), so an
  interrupted pipeline resumes without redoing finished runs;
- measures each study's wall time and the CPU seconds of its runs, and the core
  utilization: CPU seconds of all runs over wall seconds times workers.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import heapq
import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Generic, Protocol, TypeVar, cast

import attrs

from analyses.pipeline.executors import PipelineExecutor
from analyses.pipeline.records import JsonRecord, RecordError, to_json
from analyses.pipeline.signals import StopSignals
from analyses.pipeline.store import ResultStore, StoredRun, read_json, write_json
from analyses.pipeline.tasks import Outcome, RunContext, Task, execute

T = TypeVar("T")
S = TypeVar("S", bound=JsonRecord)
S_co = TypeVar("S_co", bound=JsonRecord, covariant=True)

__all__ = [
    "ArtifactKey",
    "Artifacts",
    "MissingArtifact",
    "PipelineError",
    "PipelineReport",
    "Plan",
    "Study",
    "StudyError",
    "StudyTiming",
    "check_order",
    "run_pipeline",
]


@attrs.frozen
class ArtifactKey(Generic[T]):
    """The name and type of something one study hands to another (a chosen model, say)."""

    name: str
    type: type[T]


class Artifacts:
    """The artifacts available so far, read by typed key."""

    def __init__(self, values: Mapping[str, object] | None = None) -> None:
        self._values: dict[str, object] = dict(values or {})

    def __contains__(self, key: ArtifactKey[Any]) -> bool:
        return key.name in self._values

    def __getitem__(self, key: ArtifactKey[T]) -> T:
        value = self._values[key.name]
        if not isinstance(value, key.type):
            raise TypeError(
                f"artifact {key.name} is a {type(value).__name__}, not a {key.type.__name__}"
            )
        return value

    def add(self, values: Mapping[ArtifactKey[Any], object]) -> None:
        for key, value in values.items():
            if not isinstance(value, key.type):
                raise TypeError(
                    f"artifact {key.name} must be a {key.type.__name__}, got {type(value).__name__}"
                )
            self._values[key.name] = value

    def names(self) -> list[str]:
        return sorted(self._values)


class Plan(Protocol[S_co]):
    """One study's runs in progress."""

    def ready(self) -> Sequence[Task[Any]]:
        """The tasks that became runnable since the last call (each handed out once)."""
        ...

    def record(self, task: Task[Any], run: StoredRun) -> None:
        """Take a finished run (stored now or earlier) of a task this plan handed out."""
        ...

    def done(self) -> bool:
        """True once every run the study needs is in."""
        ...

    def finish(self, folder: Path) -> S_co:
        """Write the figures and tables into ``folder`` and return the summary."""
        ...


class Study(Protocol[S]):
    """A study: its name, the artifacts it needs and provides, and its summary's type."""

    @property
    def name(self) -> str: ...

    @property
    def needs(self) -> tuple[ArtifactKey[Any], ...]: ...

    @property
    def provides(self) -> tuple[ArtifactKey[Any], ...]: ...

    @property
    def summary_type(self) -> type[S]: ...

    def plan(self, artifacts: Artifacts, ctx: RunContext) -> Plan[S]:
        """Its runs, given the artifacts it needs."""
        ...

    def artifacts(self, summary: S) -> dict[ArtifactKey[Any], object]:
        """What it provides, read from its summary."""
        ...


class PipelineError(RuntimeError):
    """The pipeline cannot go on; the message says why and what to do."""


class MissingArtifact(PipelineError):
    """A study needs an artifact that nothing provides."""


class StudyError(RuntimeError):
    """A study cannot produce its summary (for example a run it needs failed)."""


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


def _load_artifacts(study: Study[Any], store: ResultStore) -> dict[ArtifactKey[Any], object]:
    summary = store.read_summary(study.name, study.summary_type)
    return study.artifacts(summary)


def check_order(
    selected: Sequence[Study[Any]], available: Sequence[Study[Any]], store: ResultStore
) -> Artifacts:
    """The artifacts the selected studies need from studies outside the selection, read
    from their summaries on disk. MissingArtifact names an artifact that neither a
    selected study provides nor a stored summary holds, or a cycle."""
    provided = {key.name: study.name for study in selected for key in study.provides}
    artifacts = Artifacts()
    for study in selected:
        for key in study.needs:
            if key.name in provided or key in artifacts:
                continue
            owners = [s for s in available if key in s.provides]
            hint = ""
            for owner in owners:
                try:
                    artifacts.add(_load_artifacts(owner, store))
                except FileNotFoundError:
                    hint = (
                        f"; run the {owner.name} study too (drop --only, or add --only "
                        f"{owner.name})"
                    )
                except RecordError as exc:
                    hint = f"; the stored results of {owner.name} cannot be read ({exc})"
            if key not in artifacts:
                raise MissingArtifact(
                    f"the {study.name} study needs the artifact {key.name!r}, which no study of "
                    f"this run provides and {store.out} holds no results for{hint}"
                )
    # a cycle among the selected studies would wait forever: refuse it up front
    pending = {s.name: {k.name for k in s.needs if k.name in provided} for s in selected}
    done: set[str] = set()
    while pending:
        ready = [n for n, needs in pending.items() if all(provided[k] in done for k in needs)]
        if not ready:
            raise MissingArtifact(
                f"the studies {sorted(pending)} need each other's artifacts: a cycle"
            )
        for n in ready:
            done.add(n)
            del pending[n]
    return artifacts


@attrs.define
class _Active:
    study: Study[Any]
    plan: Plan[Any]
    started: float
    computed: int = 0
    reused: int = 0
    failed: int = 0
    cpu: float = 0.0
    outstanding: int = 0


Log = Callable[[str], None]


def run_pipeline(
    studies: Sequence[Study[Any]],
    *,
    store: ResultStore,
    executor: PipelineExecutor,
    ctx: RunContext,
    available: Sequence[Study[Any]] | None = None,
    log: Log | None = None,
    guard: StopSignals | None = None,
) -> PipelineReport:
    """Run ``studies`` (resuming from ``store``) on ``executor`` and return what happened.

    ``available``: every study the pipeline knows, to read artifacts of studies left
    out of ``studies`` from their stored summaries. A study whose plan raises
    StudyError is reported in ``errors``; the studies that need its artifacts are then
    reported there too, and the others go on.

    ``guard``: the driver's signal handlers; a stop that arrives while a finished run
    or a summary is being stored waits until it is stored.
    """
    critical = guard.critical if guard is not None else contextlib.nullcontext
    say = log or (lambda m: None)
    start = time.perf_counter()
    artifacts = check_order(studies, available or studies, store)
    waiting = list(studies)
    active: dict[str, _Active] = {}
    summaries: dict[str, JsonRecord] = {}
    errors: dict[str, str] = {}
    timings: dict[str, StudyTiming] = {}
    queue: list[tuple[int, int, str, Task[Any]]] = []
    order = itertools.count()
    in_flight: dict[cf.Future[Outcome], tuple[str, Task[Any]]] = {}
    slots = max(1, executor.workers)

    def fail(name: str, message: str, *, stale: bool = True) -> None:
        """Record why ``name`` failed, in the report and on disk; ``stale``: its summary
        from an earlier invocation no longer holds and is removed."""
        errors[name] = message
        if stale:
            store.drop_summary(name)
        store.write_error(name, message)
        say(f"{name}: failed: {message}")

    def finish(name: str) -> None:
        a = active.pop(name)
        try:
            summary = a.plan.finish(store.folder(name))
        except StudyError as exc:
            fail(name, str(exc))
        else:
            store.write_summary(name, summary)
            try:
                artifacts.add(a.study.artifacts(summary))
            except StudyError as exc:  # its results stand, but it could not answer
                fail(name, str(exc), stale=False)
            else:
                store.clear_error(name)
                summaries[name] = summary
        wall = time.perf_counter() - a.started
        timings[name] = StudyTiming(a.computed, a.reused, a.cpu, wall, a.failed)
        if name in summaries:
            say(
                f"{name}: done in {wall:.1f} s ({a.computed} runs computed, {a.reused} reused"
                + (f", {a.failed} failed" if a.failed else "")
                + ")"
            )

    def record(name: str, task: Task[Any], run: StoredRun) -> None:
        a = active[name]
        if run.failure is not None:
            a.failed += 1
        a.plan.record(task, run)

    def start_ready_studies() -> bool:
        started = False
        lost = {key.name for s in studies if s.name in errors for key in s.provides}
        for study in list(waiting):
            missing = [key.name for key in study.needs if key not in artifacts]
            if not missing:
                waiting.remove(study)
                try:
                    plan = study.plan(artifacts, ctx)
                except StudyError as exc:
                    fail(study.name, str(exc))
                    timings[study.name] = StudyTiming(0, 0, 0.0, 0.0)
                    started = True
                    continue
                active[study.name] = _Active(study, plan, time.perf_counter())
                say(f"{study.name}: started")
                started = True
            elif any(name in lost for name in missing):
                waiting.remove(study)
                fail(
                    study.name,
                    f"not run: it needs {', '.join(missing)}, which a failed study should "
                    "have provided",
                )
        return started

    def collect() -> bool:
        """Hand out every ready task: answer it from the store or queue it. True if
        anything changed."""
        changed = False
        again = True
        while again:
            again = False
            for name in list(active):
                a = active[name]
                for task in a.plan.ready():
                    changed = again = True
                    stored = store.get(task)
                    if stored is not None:
                        a.reused += 1
                        record(name, task, stored)
                    else:
                        a.outstanding += 1
                        heapq.heappush(queue, (task.priority(), next(order), name, task))
                if a.outstanding == 0 and a.plan.done():
                    finish(name)
                    changed = again = True
            if start_ready_studies():
                changed = again = True
        return changed

    def submit() -> None:
        while queue and len(in_flight) < slots:
            _, _, name, task = heapq.heappop(queue)
            try:
                future = executor.executor.submit(execute, task, ctx)
            except Exception as exc:  # a broken pool refuses new work
                raise PipelineError(
                    f"the executor refused a run ({type(exc).__name__}: {exc}); finished runs "
                    "are stored: rerun to resume"
                ) from exc
            in_flight[future] = (name, task)

    try:
        collect()
        submit()
        while in_flight or queue:
            done, _ = cf.wait(list(in_flight), return_when=cf.FIRST_COMPLETED)
            for future in sorted(done, key=lambda f: in_flight[f][1].label()):
                name, task = in_flight.pop(future)
                try:
                    outcome = future.result()
                except Exception as exc:
                    raise PipelineError(
                        f"the executor lost the run {task.label()} ({type(exc).__name__}: {exc}); "
                        "finished runs are stored: rerun to resume"
                    ) from exc
                with critical():
                    run = store.put(task, outcome)
                    a = active[name]
                    a.outstanding -= 1
                    a.computed += 1
                    a.cpu += outcome.cpu_seconds
                    say(_progress_line(task, outcome))
                    record(name, task, run)
            with critical():
                collect()
            submit()
        collect()
    finally:
        for future in in_flight:
            future.cancel()
    if active:
        stuck = ", ".join(sorted(active))
        raise PipelineError(f"the studies {stuck} have no runs left to do but are not complete")
    for study in waiting:
        errors.setdefault(study.name, "not run: its artifacts never became available")
    return PipelineReport(
        summaries=summaries,
        errors=errors,
        timings=timings,
        wall_seconds=time.perf_counter() - start,
        workers=executor.workers,
        executor=executor.name,
    )


def _progress_line(task: Task[Any], outcome: Outcome) -> str:
    status = "failed: " + outcome.failure.error if outcome.failure is not None else "done"
    return f"  {task.label()}: {status} ({outcome.wall_seconds:.1f} s)"


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


def log_invocation(store: ResultStore, report: PipelineReport) -> list[Invocation]:
    """Append this invocation to ``<out>/pipeline/timings.json`` when it computed runs,
    and return the log (every invocation since the results folder was new)."""
    from analyses.pipeline.records import from_json

    path = store.out / TIMINGS_FILE
    log: list[Invocation] = []
    try:
        raw = read_json(path)
        log = [from_json(Invocation, entry) for entry in cast(list[Any], raw)]
    except (OSError, ValueError, TypeError):
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
