"""Small studies for testing the pipeline: a producer that squares numbers and provides
their sum as an artifact, and a consumer that needs it. Module-level, so a spawned
worker process can import their tasks."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Final

import attrs

from analyses.pipeline.driver import ArtifactKey, Artifacts, StudyError
from analyses.pipeline.records import JsonRecord, to_json
from analyses.pipeline.store import StoredRun
from analyses.pipeline.tasks import RunContext, Task


@attrs.frozen
class Total:
    value: int


TOTAL: Final = ArtifactKey("producer.total", Total)


@attrs.frozen
class Square:
    value: int
    pid: int


@attrs.frozen
class SquareTask:
    study: ClassVar[str] = "producer"
    torch: ClassVar[bool] = False
    result_type: ClassVar[type[Square]] = Square

    n: int
    fail: bool = False

    def key(self) -> dict[str, Any]:
        return {"kind": "square", **to_json(self)}

    def label(self) -> str:
        return f"square {self.n}"

    def priority(self) -> int:
        return -self.n  # larger first

    def run(self, ctx: RunContext) -> Square:
        if self.fail:
            raise RuntimeError(f"cannot square {self.n}")
        marker = Path(ctx.out) / "calls" / f"{self.n}-{os.getpid()}-{os.urandom(4).hex()}"
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        return Square(self.n * self.n, os.getpid())


@attrs.frozen
class ProducerSummary(JsonRecord):
    SCHEMA: ClassVar[int] = 1
    squares: tuple[int, ...]
    total: int


class _ProducerPlan:
    def __init__(self, ns: Sequence[int], fail: Sequence[int]) -> None:
        self.tasks = [SquareTask(n, n in fail) for n in ns]
        self.out = False
        self.results: dict[int, int] = {}
        self.failed: dict[int, str] = {}

    def ready(self) -> Sequence[Task[Any]]:
        if self.out:
            return ()
        self.out = True
        return self.tasks

    def record(self, task: Task[Any], run: StoredRun) -> None:
        assert isinstance(task, SquareTask)
        if run.failure is not None:
            self.failed[task.n] = run.failure.error
        else:
            self.results[task.n] = run.result.value

    def done(self) -> bool:
        return len(self.results) + len(self.failed) == len(self.tasks)

    def finish(self, folder: Path) -> ProducerSummary:
        if self.failed:
            raise StudyError("; ".join(f"{n}: {e}" for n, e in sorted(self.failed.items())))
        squares = tuple(self.results[t.n] for t in self.tasks)
        return ProducerSummary(squares=squares, total=sum(squares))


@attrs.frozen
class Producer:
    ns: tuple[int, ...]
    fail: tuple[int, ...] = ()

    name: ClassVar[str] = "producer"
    needs: ClassVar[tuple[ArtifactKey[Any], ...]] = ()
    provides: ClassVar[tuple[ArtifactKey[Any], ...]] = (TOTAL,)
    summary_type: ClassVar[type[ProducerSummary]] = ProducerSummary

    def plan(self, artifacts: Artifacts, ctx: RunContext) -> _ProducerPlan:
        return _ProducerPlan(self.ns, self.fail)

    def artifacts(self, summary: ProducerSummary) -> dict[ArtifactKey[Any], object]:
        return {TOTAL: Total(summary.total)}


@attrs.frozen
class Doubled:
    value: int


@attrs.frozen
class DoubleTask:
    study: ClassVar[str] = "consumer"
    torch: ClassVar[bool] = False
    result_type: ClassVar[type[Doubled]] = Doubled

    total: int

    def key(self) -> dict[str, Any]:
        return {"kind": "double", "total": self.total}

    def label(self) -> str:
        return f"double {self.total}"

    def priority(self) -> int:
        return 0

    def run(self, ctx: RunContext) -> Doubled:
        return Doubled(2 * self.total)


@attrs.frozen
class ConsumerSummary(JsonRecord):
    SCHEMA: ClassVar[int] = 1
    doubled: int


class _ConsumerPlan:
    def __init__(self, total: int) -> None:
        self.task = DoubleTask(total)
        self.out = False
        self.value: int | None = None

    def ready(self) -> Sequence[Task[Any]]:
        if self.out:
            return ()
        self.out = True
        return (self.task,)

    def record(self, task: Task[Any], run: StoredRun) -> None:
        self.value = run.result.value

    def done(self) -> bool:
        return self.value is not None

    def finish(self, folder: Path) -> ConsumerSummary:
        assert self.value is not None
        return ConsumerSummary(self.value)


@attrs.frozen
class Consumer:
    name: ClassVar[str] = "consumer"
    needs: ClassVar[tuple[ArtifactKey[Any], ...]] = (TOTAL,)
    provides: ClassVar[tuple[ArtifactKey[Any], ...]] = ()
    summary_type: ClassVar[type[ConsumerSummary]] = ConsumerSummary

    def plan(self, artifacts: Artifacts, ctx: RunContext) -> _ConsumerPlan:
        return _ConsumerPlan(artifacts[TOTAL].value)

    def artifacts(self, summary: ConsumerSummary) -> dict[ArtifactKey[Any], object]:
        return {}
