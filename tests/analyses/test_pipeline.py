"""The pipeline driver: artifacts in order, one executor, results stored and reused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest

from analyses.pipeline.records import JsonRecord, RecordError, from_json, key_hash, to_json
from analyses.pipeline.store import ResultStore
from analyses.pipeline.study import MissingArtifact, check_order
from analyses.pipeline.tasks import RunContext
from analyses.pipeline.timings import log_invocation
from tests.analyses.local import run_local
from tests.analyses.pipeline_doubles import Consumer, ConsumerSummary, Producer, ProducerSummary


def _run(
    out: Path,
    studies: list[Any],
    executor: str = "local",
    workers: int | None = None,
    available: list[Any] | None = None,
) -> Any:
    return run_local(
        out, studies, executor=executor, workers=workers, available=available or studies
    )


def _calls(out: Path) -> int:
    folder = out / "calls"
    return len(list(folder.iterdir())) if folder.exists() else 0


def test_studies_run_in_the_order_their_artifacts_require(tmp_path: Path) -> None:
    report = _run(tmp_path, [Consumer(), Producer((1, 2, 3))])
    assert report.errors == {}
    producer = report.summaries["producer"]
    consumer = report.summaries["consumer"]
    assert isinstance(producer, ProducerSummary) and isinstance(consumer, ConsumerSummary)
    assert producer.squares == (1, 4, 9) and consumer.doubled == 28
    assert report.computed == 4 and _calls(tmp_path) == 3
    stored = ResultStore(tmp_path).read_summary("consumer", ConsumerSummary)
    assert stored == consumer


def test_a_rerun_computes_nothing_that_is_stored(tmp_path: Path) -> None:
    _run(tmp_path, [Producer((1, 2, 3)), Consumer()])
    again = _run(tmp_path, [Producer((1, 2, 3, 4)), Consumer()])
    assert _calls(tmp_path) == 4, "only the new number was squared"
    assert again.timings["producer"].reused == 3 and again.timings["producer"].computed == 1
    assert again.computed == 2  # the new square and the new double


def test_a_process_pool_gives_the_same_results(tmp_path: Path) -> None:
    local = _run(tmp_path / "a", [Producer((1, 2, 3, 4)), Consumer()])
    pool = _run(tmp_path / "b", [Producer((1, 2, 3, 4)), Consumer()], "process", 2)
    assert to_json(local.summaries["consumer"]) == to_json(pool.summaries["consumer"])
    assert pool.workers == 2 and pool.utilization >= 0


def test_a_missing_artifact_is_named_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(
        MissingArtifact, match=r"consumer study needs the artifact 'producer\.total'"
    ):
        _run(tmp_path, [Consumer()])
    assert not tmp_path.joinpath("consumer").exists()
    with pytest.raises(MissingArtifact, match="run the producer study too"):
        check_order([Consumer()], [Consumer(), Producer((1,))], ResultStore(tmp_path))


def test_an_artifact_is_read_from_the_stored_summary_of_a_study_left_out(tmp_path: Path) -> None:
    _run(tmp_path, [Producer((2, 3))])
    report = _run(tmp_path, [Consumer()], available=[Consumer(), Producer((2, 3))])
    consumer = report.summaries["consumer"]
    assert isinstance(consumer, ConsumerSummary) and consumer.doubled == 26


def test_a_failed_run_is_recorded_and_its_dependents_are_not_run(tmp_path: Path) -> None:
    report = _run(tmp_path, [Producer((1, 2), fail=(2,)), Consumer()])
    assert "cannot square 2" in report.errors["producer"]
    assert "not run" in report.errors["consumer"]
    # the failure is stored with its error: a rerun does not run it again
    again = _run(tmp_path, [Producer((1, 2), fail=(2,)), Consumer()])
    assert again.computed == 0 and "cannot square 2" in again.errors["producer"]


def test_the_invocation_log_keeps_runs_that_computed(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    first = _run(tmp_path, [Producer((1, 2))])
    assert len(log_invocation(store, first)) == 1
    second = _run(tmp_path, [Producer((1, 2))])
    assert second.computed == 0
    assert len(log_invocation(store, second)) == 1, "nothing computed: nothing logged"


# ---------------------------------------------------------------- records


@attrs.frozen
class Inner:
    a: tuple[float, ...]
    b: dict[str, int | None]


@attrs.frozen
class Outer(JsonRecord):
    SCHEMA = 3
    inner: Inner
    pair: tuple[int, str]
    name: str = "x"


def test_records_round_trip_and_name_a_bad_field() -> None:
    record = Outer(Inner((1.0, float("nan"), float("inf")), {"k": None, "j": 2}), (1, "y"))
    data = record.to_json()
    assert data["schema"] == 3
    back = Outer.from_json(data)
    assert str(to_json(back)) == str(to_json(record))  # NaN != NaN: compare the text
    bad: dict[str, Any] = {**data, "inner": {"a": [1.0], "b": {"k": "one"}}}
    with pytest.raises(RecordError, match=r"Outer\.inner\.b\['k'\]"):
        Outer.from_json(bad)
    with pytest.raises(RecordError, match="schema 2"):
        Outer.from_json({**data, "schema": 2})
    with pytest.raises(RecordError, match="no field"):
        from_json(Inner, {"a": [], "b": {}, "c": 1})
    assert key_hash({"a": 1, "b": 2}) == key_hash({"b": 2, "a": 1})


def test_a_plan_that_cannot_start_fails_its_study_and_its_dependents(tmp_path: Path) -> None:
    from analyses.pipeline.plan import StudyError

    class Refusing(Producer):
        def plan(self, artifacts: Any, ctx: RunContext) -> Any:
            raise StudyError("nothing to do with these options")

    report = _run(tmp_path, [Refusing((1,)), Consumer()])
    assert report.errors["producer"] == "nothing to do with these options"
    assert "not run" in report.errors["consumer"]


def test_a_failed_study_leaves_why_on_disk_in_place_of_a_stale_summary(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    _run(tmp_path, [Producer((1, 2)), Consumer()])
    assert store.summary_path("consumer").is_file() and store.read_error("consumer") is None
    # the producer now fails: the consumer's old summary no longer holds
    report = _run(tmp_path, [Producer((1, 2, 3), fail=(3,)), Consumer()])
    assert set(report.errors) == {"producer", "consumer"}
    for name in ("producer", "consumer"):
        assert not store.summary_path(name).exists()
        assert store.read_error(name) == report.errors[name]
    # once it succeeds again, nothing says it failed
    _run(tmp_path, [Producer((1, 2)), Consumer()])
    assert store.read_error("producer") is None and store.read_error("consumer") is None
    assert store.summary_path("consumer").is_file()


def test_a_study_that_cannot_answer_keeps_its_summary_and_says_why(tmp_path: Path) -> None:
    from analyses.pipeline.plan import StudyError

    class Unanswering(Producer):
        def artifacts(self, summary: Any) -> Any:
            raise StudyError("no total worth handing on")

    store = ResultStore(tmp_path)
    report = _run(tmp_path, [Unanswering((1, 2)), Consumer()])
    assert report.errors["producer"] == "no total worth handing on"
    assert store.summary_path("producer").is_file()  # its results stand
    assert store.read_error("producer") == "no total worth handing on"
    assert "not run" in (store.read_error("consumer") or "")
