"""A study's runs in progress: what is wanted, what is handed out, what came back, what
failed.

:class:`StudyPlan` is the base of every study's plan, generic in its task type ``T``,
the type ``R`` of their results and the study's summary ``S``. A plan says which tasks
it wants (:meth:`StudyPlan.want`, at once or as earlier results come in), the driver
hands them out (:meth:`StudyPlan.ready`) and brings each finished run back
(:meth:`StudyPlan.record`), and once every run is in, the plan writes its figures and
returns its summary (:meth:`StudyPlan.finish`). A study's plan states only what is
specific to it: the tasks it wants, what it does when one comes back
(:meth:`StudyPlan.received`), whether it waits for more (:meth:`StudyPlan.settled`),
and how it summarizes. The counts the driver shows as progress come from here too.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Generic, TypeVar, cast

import attrs

from analyses.pipeline.records import JsonRecord
from analyses.pipeline.store import StoredRun
from analyses.pipeline.tasks import Task

R = TypeVar("R")
X = TypeVar("X")
T = TypeVar("T", bound=Task[object])
S = TypeVar("S", bound=JsonRecord)

__all__ = ["PlanProgress", "StudyError", "StudyPlan"]


class StudyError(RuntimeError):
    """A study cannot produce its summary (for example a run it needs failed)."""


@attrs.frozen
class PlanProgress:
    """How far a plan is: tasks it wants so far (``known``; a search may want more
    later), and how many came back, computed in this invocation or stored earlier, and
    failed."""

    known: int
    back: int
    failed: int


class StudyPlan(abc.ABC, Generic[T, R, S]):
    """One study's runs in progress (see the module's docstring).

    ``results`` and ``failures`` hold, by task, what came back: the typed result of a
    run, or the error of one that failed.
    """

    def __init__(self, tasks: Iterable[T] = ()) -> None:
        self._wanted: list[T] = []
        self._handed_out: set[T] = set()
        self._known = 0
        self.results: dict[T, R] = {}
        self.failures: dict[T, str] = {}
        self.want(*tasks)

    # ------------------------------------------------------------ what is wanted

    def want(self, *tasks: T) -> None:
        """Ask for ``tasks`` to be run; each task is wanted once."""
        for task in tasks:
            if task in self._handed_out or task in self._wanted:
                raise ValueError(f"the task {task.label()} is wanted twice")
            self._wanted.append(task)
            self._known += 1

    def ready(self) -> Sequence[T]:
        """The tasks wanted since the last call, each handed out once."""
        self.more()
        tasks, self._wanted = self._wanted, []
        self._handed_out.update(tasks)
        return tasks

    def more(self) -> None:
        """Called before tasks are handed out: a plan whose next tasks depend on the
        results so far wants them here. Nothing by default."""

    # ------------------------------------------------------------ what came back

    def record(self, task: T, run: StoredRun[R]) -> None:
        """Take a finished run (computed now or stored earlier) of a task handed out."""
        if task not in self._handed_out:
            raise ValueError(f"the run {task.label()} was not handed out by this plan")
        if task in self.results or task in self.failures:
            raise ValueError(f"the run {task.label()} came back twice")
        if run.failure is not None:
            self.failures[task] = run.failure.error
        elif run.result is None:
            raise ValueError(f"the run {task.label()} has neither a result nor a failure")
        else:
            self.results[task] = run.result
        self.received(task, run)

    def result(self, task: Task[X]) -> X:
        """The result of ``task`` as its own type (a plan whose tasks return different
        records reads each one typed); KeyError when it has not come back."""
        # ``task`` is one of this plan's tasks, of a type narrower than T: look it up
        # among them all, then check what it returned
        found: Mapping[object, object] = cast("Mapping[object, object]", self.results)
        value = found[task]
        if not isinstance(value, task.result_type):
            raise TypeError(
                f"the run {task.label()} returned a {type(value).__name__}, "
                f"not a {task.result_type.__name__}"
            )
        return value

    def received(self, task: T, run: StoredRun[R]) -> None:  # a hook
        """What the plan does when a run comes back (it is in ``results`` or
        ``failures`` already). Nothing by default."""

    def settled(self) -> bool:
        """Whether the plan wants nothing more once every task so far is back (a plan
        that decides its next tasks from results says no until it has decided)."""
        return True

    def progress(self) -> PlanProgress:
        return PlanProgress(
            known=self._known,
            back=len(self.results) + len(self.failures),
            failed=len(self.failures),
        )

    def done(self) -> bool:
        """True once every run the study needs is in."""
        self.more()
        p = self.progress()
        return not self._wanted and p.back == p.known and self.settled()

    def failed(self, describe: str = "run") -> StudyError | None:
        """A StudyError that lists every failed run (None when none failed)."""
        if not self.failures:
            return None
        return StudyError(
            "; ".join(f"the {describe} {t.label()} failed: {e}" for t, e in self.failures.items())
        )

    # ------------------------------------------------------------ the summary

    @abc.abstractmethod
    def finish(self, folder: Path) -> S:
        """Write the figures and tables into ``folder`` and return the summary;
        StudyError when the study cannot answer."""
