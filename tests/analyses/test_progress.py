"""Where the driver stands: runs done out of runs known per study, the time so far and
an estimate of the rest, as a bar on a terminal and as plain lines elsewhere; and a run
that returns another record than it declares is a failed run, not a stopped pipeline."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import ClassVar

import attrs
import pytest

from analyses.pipeline.plan import PlanProgress
from analyses.pipeline.progress import Progress, Standing, duration
from analyses.pipeline.store import ResultStore
from analyses.pipeline.study import Artifacts
from analyses.pipeline.tasks import RunContext
from tests.analyses.local import run_local
from tests.analyses.pipeline_doubles import Consumer, Producer, ProducerPlan, Square, SquareTask


def test_durations_read_as_a_person_would_say_them() -> None:
    assert [duration(s) for s in (0, 42.4, 185, 3725)] == ["0s", "42s", "3m05s", "1h02m"]


def test_the_estimate_is_the_runs_left_times_their_measured_cost_over_the_workers() -> None:
    standing = Standing(
        studies={"a": PlanProgress(10, 4, 0), "b": PlanProgress(6, 0, 0)},
        measured={"a": (4, 8.0), "b": (0, 0.0)},  # a: 2 s a run; b: none yet, so 2 s too
        workers=2,
        elapsed=30.0,
    )
    assert standing.known == 16 and standing.back == 4
    assert standing.rest() == pytest.approx((6 * 2.0 + 6 * 2.0) / 2)
    assert standing.counts() == "a 4/10, b 0/6"
    assert standing.status() == "4/16 runs, 30s, about 12s left"
    before = attrs.evolve(standing, measured={})
    assert before.rest() is None and before.status() == "4/16 runs, 30s"


def _run(out: Path, progress: Progress) -> None:
    run_local(out, [Producer((1, 2, 3)), Consumer()], progress=progress)


def test_off_a_terminal_every_finished_run_is_a_plain_line_with_the_standing(
    tmp_path: Path,
) -> None:
    stream = io.StringIO()
    _run(tmp_path, Progress(stream))
    lines = stream.getvalue().splitlines()
    runs = [line for line in lines if line.startswith("[")]
    assert len(runs) == 4  # three squares and one double
    # the squares run in order of priority (larger first); the count goes up by one
    assert [re.match(r"\[(\d+)/(\d+) runs", line).groups() for line in runs[:3]] == [  # type: ignore[union-attr]  # every line matches
        ("1", "3"),
        ("2", "3"),
        ("3", "3"),
    ]
    assert "square 3: done" in runs[0] and "about" in runs[0]
    assert runs[-1].startswith("[4/4 runs")
    assert "producer: started" in lines and any(x.startswith("consumer: done") for x in lines)
    assert "\r" not in stream.getvalue()  # no bar off a terminal


def test_on_a_terminal_one_bar_counts_the_runs_of_every_study(tmp_path: Path) -> None:
    stream = io.StringIO()
    _run(tmp_path, Progress(stream, bar=True))
    text = stream.getvalue()
    assert "\r" in text  # the bar redraws itself
    last = text.split("\r")[-1]
    assert "4/4 runs" in last and "producer 3/3, consumer 1/1" in last
    assert "square 3: done" in text  # the run lines are written above it


@attrs.frozen
class WrongSquare(SquareTask):
    """Declares a Square and returns something else."""

    study: ClassVar[str] = "producer"

    def run(self, ctx: RunContext) -> Square:
        return "not a square"  # type: ignore[return-value]  # wrong on purpose


def test_a_run_that_returns_another_record_is_a_failed_run(tmp_path: Path) -> None:
    task = WrongSquare(4)
    store = ResultStore(tmp_path)
    stream = io.StringIO()

    class Wrong(Producer):
        def plan(self, artifacts: Artifacts, ctx: RunContext) -> ProducerPlan:
            plan = super().plan(artifacts, ctx)
            plan.tasks.append(task)
            plan.want(task)
            return plan

    report = run_local(tmp_path, [Wrong((1,))], progress=Progress(stream))
    assert "producer" in report.errors and "4" in report.errors["producer"]
    stored = store.get(task)
    assert stored is not None and stored.failure is not None
    assert "not the Square it declares" in stored.failure.error
    assert "square 4: failed" in stream.getvalue()
