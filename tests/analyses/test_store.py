"""The results folder: a stored run is found again only under its own task's key, a file
that cannot be read counts as missing, writes are atomic, and a study's summary and
error files round-trip or fail with a message that says what to do."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, ClassVar

import attrs
import pytest

from analyses.pipeline.records import JsonRecord, RecordError, key_hash, to_json
from analyses.pipeline.store import ResultStore, StoredRun, write_json
from analyses.pipeline.tasks import Failure, Outcome, RunContext

# ------------------------------------------------------------------ test records


def _read(path: Path) -> dict[str, Any]:
    """A stored file as the JSON object it must be."""
    value = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(value, dict)
    return value


@attrs.frozen
class Point:
    x: float
    label: str
    tags: tuple[int, ...]


@attrs.frozen
class PointTask:
    """A task whose result is a ``Point``; ``n`` and ``scale`` are its key."""

    study: ClassVar[str] = "points"
    torch: ClassVar[bool] = False
    result_type: ClassVar[type[Point]] = Point

    n: int
    scale: float = 1.0

    def priority(self) -> int:
        return self.n

    def key(self) -> dict[str, Any]:
        return {"kind": "point", "n": self.n, "scale": self.scale}

    def label(self) -> str:
        return f"point {self.n}"

    def run(self, ctx: RunContext) -> Point:
        return Point(self.n * self.scale, f"p{self.n}", tuple(range(self.n)))


@attrs.frozen
class PointsSummary(JsonRecord):
    SCHEMA: ClassVar[int] = 4
    points: tuple[Point, ...]
    best: float


def _outcome(result: Any, failure: Failure | None = None) -> Outcome[Point]:
    return Outcome(
        result=to_json(result), failure=failure, wall_seconds=1.5, cpu_seconds=1.25, worker="w:1"
    )


def _put(store: ResultStore, task: PointTask) -> StoredRun[Point]:
    return store.put(task, _outcome(task.run(RunContext(str(store.out)))))


def _leftovers(folder: Path) -> list[str]:
    """Temporary files of an atomic write left in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# ------------------------------------------------------------------ runs


def test_put_then_get_gives_the_typed_result_and_its_cost(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    task = PointTask(3, 0.5)
    put = _put(store, task)
    assert put == StoredRun(Point(1.5, "p3", (0, 1, 2)), None, 1.5, 1.25)
    got = store.get(task)
    assert got is not None
    assert got == put and isinstance(got.result, Point)
    assert got.result.tags == (0, 1, 2), "a JSON list comes back as the tuple the field says"
    path = store.run_path(task)
    assert path == tmp_path / "points" / "runs" / f"{key_hash(task.key())}.json"
    stored = _read(path)
    assert stored["task"] == task.key() and stored["worker"] == "w:1"


def test_a_run_that_was_never_stored_is_none(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    _put(store, PointTask(1))
    assert store.get(PointTask(2)) is None, "another key hashes to another file"
    assert store.get(PointTask(1, scale=2.0)) is None
    assert store.get(PointTask(1)) is not None


def test_a_file_under_this_hash_that_holds_another_key_is_not_used(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    mine, other = PointTask(1), PointTask(2)
    _put(store, other)
    # as if two keys hashed to one name: the file names the other task inside
    store.run_path(mine).write_bytes(store.run_path(other).read_bytes())
    assert store.get(mine) is None
    assert store.get(other) is not None


def test_a_file_whose_stored_key_was_altered_is_not_used(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    task = PointTask(4)
    _put(store, task)
    path = store.run_path(task)
    record = _read(path)
    record["task"]["scale"] = 3.0
    path.write_text(json.dumps(record))
    assert store.get(task) is None
    record["task"] = task.key()
    path.write_text(json.dumps(record))
    assert store.get(task) is not None, "the same file with the right key is used again"


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda raw: raw[: len(raw) // 2], id="truncated"),
        pytest.param(lambda raw: raw[:-2], id="last-brace-lost"),
        pytest.param(lambda raw: b"", id="empty"),
        pytest.param(lambda raw: b"{not json", id="not-json"),
        pytest.param(lambda raw: b"\xff\xfe" + raw, id="not-utf8"),
        pytest.param(lambda raw: b"[1, 2]", id="a-list"),
        pytest.param(lambda raw: b"null", id="null"),
    ],
)
def test_a_corrupt_or_truncated_file_counts_as_missing(
    tmp_path: Path, damage: Callable[[bytes], bytes]
) -> None:
    store = ResultStore(tmp_path)
    task = PointTask(2)
    _put(store, task)
    path = store.run_path(task)
    path.write_bytes(damage(path.read_bytes()))
    assert store.get(task) is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("result", {"x": "one", "label": "p2", "tags": [0, 1]}),  # retyped field
        ("result", {"x": 2.0, "label": "p2"}),  # a field missing
        ("result", {"x": 2.0, "label": "p2", "tags": [0, 1], "extra": 1}),  # unknown field
        ("result", [2.0, "p2", [0, 1]]),
        ("result", None),
        ("failure", {"reason": "renamed field"}),
    ],
)
def test_a_result_that_no_longer_fits_its_type_counts_as_missing(
    tmp_path: Path, field: str, value: Any
) -> None:
    store = ResultStore(tmp_path)
    task = PointTask(2)
    _put(store, task)
    path = store.run_path(task)
    record = _read(path)
    record[field] = value
    path.write_text(json.dumps(record))
    assert store.get(task) is None


def test_a_file_without_the_result_counts_as_missing(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    task = PointTask(2)
    _put(store, task)
    path = store.run_path(task)
    record = _read(path)
    del record["result"]
    path.write_text(json.dumps(record))
    assert store.get(task) is None


def test_a_failed_run_is_stored_with_its_failure(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    task = PointTask(5)
    failure = Failure("RuntimeError: cannot place 5", "Traceback ...\nRuntimeError")
    put = store.put(task, _outcome(None, failure))
    assert put == StoredRun(None, failure, 1.5, 1.25)
    got = store.get(task)
    assert got is not None
    assert got.failure == failure and got.result is None
    assert (got.wall_seconds, got.cpu_seconds) == (1.5, 1.25)
    # a failure wins over whatever result the outcome carried
    store.put(task, _outcome(Point(1.0, "x", ()), failure))
    again = store.get(task)
    assert again is not None and again.result is None and again.failure == failure


def test_put_refuses_a_result_that_does_not_fit_the_result_type(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    task = PointTask(1)
    with pytest.raises(RecordError, match=r"Point\.tags"):
        store.put(task, _outcome({"x": 1.0, "label": "p1", "tags": "no"}))
    assert store.get(task) is None


def test_cost_defaults_to_zero_when_a_file_does_not_say(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    task = PointTask(2)
    _put(store, task)
    path = store.run_path(task)
    record = _read(path)
    del record["wall_seconds"], record["cpu_seconds"]
    path.write_text(json.dumps(record))
    got = store.get(task)
    assert got is not None and (got.wall_seconds, got.cpu_seconds) == (0.0, 0.0)
    assert got.result == Point(2.0, "p2", (0, 1))


# ------------------------------------------------------------------ atomic writes


def test_a_write_leaves_one_parsable_file_and_no_temporary(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    for n in (1, 2, 1):  # the third write replaces the first file
        _put(store, PointTask(n))
    runs = store.run_path(PointTask(1)).parent
    assert _leftovers(runs) == []
    assert sorted(p.name for p in runs.iterdir()) == sorted(
        f"{key_hash(PointTask(n).key())}.json" for n in (1, 2)
    )
    for path in runs.iterdir():
        record = json.loads(path.read_text(encoding="utf-8"))
        assert set(record) == {"task", "result", "failure", "wall_seconds", "cpu_seconds", "worker"}


class _HalfWriter:
    """A file handle that writes half of what it is given, then fails (a full disk)."""

    def __init__(self, fh: IO[bytes], seen: list[StoredRun[Point] | None], check: Any) -> None:
        self.fh = fh
        self.seen = seen
        self.check = check

    def __enter__(self) -> _HalfWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.fh.close()

    def write(self, data: bytes) -> int:
        self.fh.write(data[: len(data) // 2])
        self.fh.flush()
        self.seen.append(self.check())  # what a reader sees in the middle of the write
        raise OSError(28, "No space left on device")


def test_a_write_that_fails_midway_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ResultStore(tmp_path)
    task = PointTask(3)
    old = _put(store, task)
    old_bytes = store.run_path(task).read_bytes()
    seen: list[StoredRun[Point] | None] = []
    real_fdopen = os.fdopen

    def half_fdopen(fd: int, mode: str = "r") -> _HalfWriter:
        return _HalfWriter(real_fdopen(fd, mode), seen, lambda: store.get(task))

    monkeypatch.setattr(os, "fdopen", half_fdopen)
    failure = Failure("RuntimeError: the new run failed")
    with pytest.raises(OSError, match="No space left"):
        store.put(task, _outcome(None, failure))
    monkeypatch.undo()
    assert seen == [old], "while the new file was half written, readers saw the old run"
    assert store.run_path(task).read_bytes() == old_bytes
    assert store.get(task) == old
    assert _leftovers(store.run_path(task).parent) == []


def test_write_json_is_indented_sorted_and_keeps_non_finite_floats(tmp_path: Path) -> None:
    path = write_json(
        tmp_path / "deep" / "v.json", {"b": [1.0, math.inf], "a": Point(math.nan, "n", (1,))}
    )
    text = path.read_text(encoding="utf-8")
    assert text.endswith("}\n") and text.index('"a"') < text.index('"b"')
    assert '\n "a": {' in text, "one space of indent per level"
    assert "NaN" in text and "Infinity" in text
    value = _read(path)
    assert math.isnan(value["a"]["x"]) and value["b"] == [1.0, math.inf]
    assert _leftovers(path.parent) == []
    with pytest.raises(RecordError, match="cannot write a object"):
        write_json(tmp_path / "bad.json", {"a": object()})
    assert not (tmp_path / "bad.json").exists() and _leftovers(tmp_path) == []


# ------------------------------------------------------------------ summaries and errors


def test_a_summary_round_trips(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    summary = PointsSummary((Point(1.0, "a", ()), Point(-2.5, "b", (3,))), best=-2.5)
    path = store.write_summary("points", summary)
    assert path == store.summary_path("points") == tmp_path / "points" / "summary.json"
    assert _read(path)["schema"] == 4
    assert store.read_summary("points", PointsSummary) == summary


def test_a_summary_that_has_not_been_written_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        ResultStore(tmp_path).read_summary("points", PointsSummary)


def test_a_summary_of_another_schema_is_refused_naming_the_schema(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    store.write_summary("points", PointsSummary((), best=0.0))
    path = store.summary_path("points")
    write_json(path, {**_read(path), "schema": 3})
    with pytest.raises(RecordError, match=r"summary\.json: PointsSummary: schema 3, .* schema 4"):
        store.read_summary("points", PointsSummary)
    write_json(path, {"points": [], "best": 0.0})
    with pytest.raises(RecordError, match="schema None"):
        store.read_summary("points", PointsSummary)


def test_a_summary_with_a_retyped_field_names_the_field(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    store.write_summary("points", PointsSummary((), best=0.0))
    path = store.summary_path("points")
    write_json(path, {**_read(path), "best": "high"})
    with pytest.raises(RecordError, match=r"PointsSummary\.best: expected a number"):
        store.read_summary("points", PointsSummary)


def test_a_summary_that_is_not_json_says_to_delete_it_and_rerun(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    path = store.write_summary("points", PointsSummary((), best=0.0))
    path.write_text(path.read_text()[:-5])
    with pytest.raises(RecordError, match=r"is not valid JSON \(.*\); delete it and rerun") as info:
        store.read_summary("points", PointsSummary)
    assert str(path) in str(info.value)


def test_drop_summary_removes_it_and_is_quiet_when_absent(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    store.drop_summary("points")  # nothing to drop: no error
    store.write_summary("points", PointsSummary((), best=0.0))
    store.drop_summary("points")
    assert not store.summary_path("points").exists()
    with pytest.raises(FileNotFoundError):
        store.read_summary("points", PointsSummary)


def test_an_error_is_written_read_and_cleared(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    assert store.read_error("points") is None
    store.clear_error("points")  # nothing to clear: no error
    path = store.write_error("points", "the 5 run failed: RuntimeError: boom")
    assert path == tmp_path / "points" / "error.json"
    assert store.read_error("points") == "the 5 run failed: RuntimeError: boom"
    assert store.read_error("other") is None
    store.clear_error("points")
    assert not path.exists() and store.read_error("points") is None


@pytest.mark.parametrize("text", ["{oops", "[]", '{"error": 3}', '{"message": "x"}', "null"])
def test_an_unreadable_error_file_reads_as_none(tmp_path: Path, text: str) -> None:
    store = ResultStore(tmp_path)
    store.write_error("points", "x")
    store.error_path("points").write_text(text)
    assert store.read_error("points") is None
