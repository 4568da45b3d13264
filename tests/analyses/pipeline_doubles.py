"""Small studies for testing the pipeline: a producer that squares numbers and provides
their sum as an artifact, and a consumer that needs it. Module-level, so a spawned
worker process can import their tasks."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Final

import attrs

from analyses.pipeline.plan import StudyError, StudyPlan
from analyses.pipeline.records import Json, JsonRecord, record_json
from analyses.pipeline.study import AnyKey, ArtifactKey, Artifacts, ArtifactValues
from analyses.pipeline.tasks import RunContext


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

    def key(self) -> dict[str, Json]:
        return {"kind": "square", **record_json(self)}

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


class ProducerPlan(StudyPlan[SquareTask, Square, ProducerSummary]):
    def __init__(self, ns: Sequence[int], fail: Sequence[int]) -> None:
        self.tasks = [SquareTask(n, n in fail) for n in ns]
        super().__init__(self.tasks)

    def finish(self, folder: Path) -> ProducerSummary:
        if self.failures:
            raise StudyError(
                "; ".join(f"{t.n}: {e}" for t, e in sorted(self.failures.items(), key=_n))
            )
        squares = tuple(self.results[t].value for t in self.tasks)
        return ProducerSummary(squares=squares, total=sum(squares))


def _n(item: tuple[SquareTask, str]) -> int:
    return item[0].n


@attrs.frozen
class Producer:
    ns: tuple[int, ...]
    fail: tuple[int, ...] = ()

    name: ClassVar[str] = "producer"
    priority: ClassVar[int] = 0
    needs: ClassVar[tuple[AnyKey, ...]] = ()
    provides: ClassVar[tuple[AnyKey, ...]] = (TOTAL,)
    summary_type: ClassVar[type[ProducerSummary]] = ProducerSummary

    def plan(self, artifacts: Artifacts, ctx: RunContext) -> ProducerPlan:
        return ProducerPlan(self.ns, self.fail)

    def artifacts(self, summary: ProducerSummary) -> ArtifactValues:
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

    def key(self) -> dict[str, Json]:
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


class _ConsumerPlan(StudyPlan[DoubleTask, Doubled, ConsumerSummary]):
    def __init__(self, total: int) -> None:
        self.task = DoubleTask(total)
        super().__init__([self.task])

    def finish(self, folder: Path) -> ConsumerSummary:
        return ConsumerSummary(self.results[self.task].value)


@attrs.frozen
class Consumer:
    name: ClassVar[str] = "consumer"
    priority: ClassVar[int] = 0
    needs: ClassVar[tuple[AnyKey, ...]] = (TOTAL,)
    provides: ClassVar[tuple[AnyKey, ...]] = ()
    summary_type: ClassVar[type[ConsumerSummary]] = ConsumerSummary

    def plan(self, artifacts: Artifacts, ctx: RunContext) -> _ConsumerPlan:
        return _ConsumerPlan(artifacts[TOTAL].value)

    def artifacts(self, summary: ConsumerSummary) -> ArtifactValues:
        return {}
