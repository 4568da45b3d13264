"""One way to key a run: kind, version and every field of the task record, except the
fields marked as not part of its identity.

The test walks every task class of the studies and of the benchmark (every subclass of
``KeyedTask`` under ``analyses``), so a new task class without an example here fails,
and a field added to a task cannot be forgotten in its key.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest

import analyses
from analyses.datasets import DataSpec, EvalSubset
from analyses.pipeline.records import key_hash
from analyses.pipeline.tasks import IDENTITY, NOT_IDENTITY, KeyedTask, identity_fields, run_key
from analyses.studies.cnn import CnnRun, TrainConfig
from analyses.studies.cnn.models import QUICK_BLOCKS, match_params
from analyses.studies.gradcheck.options import GradcheckOptions
from analyses.studies.gradcheck.runs import (
    ChooseSamples,
    FdCurveRun,
    LossNoiseRun,
    ModelRef,
    ThirdDerivativeRun,
    sample_runs,
)
from analyses.studies.init import InitOptions, InitRun
from analyses.studies.search import SearchOptions, SearchRun

DATA = DataSpec("synthetic", 120, 40)
MODEL = ModelRef("search/chosen_params.npz", "0" * 64)


def _all_modules() -> None:
    """Import every module under ``analyses`` (but the entry points' ``__main__``), so
    every task class is defined."""
    for info in pkgutil.walk_packages(analyses.__path__, "analyses."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)


def _subclasses(cls: type[object]) -> Iterator[type[object]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _cell() -> KeyedTask:
    from analyses.benchmark.cells import CellTask

    return CellTask(
        setting="native",
        openblas_env={"OPENBLAS_CORETYPE": None},
        source="abc",
        n_train=1000,
        xla_flags=None,
        epochs=3,
        warmup=1,
        frameworks=("fmlp", "torch"),
        threads=1,
        jax=False,
        quick=True,
        dataset="synthetic",
        dtype="float32",
        batch=128,
    )


def _gradcheck_runs() -> dict[type[object], Callable[[], KeyedTask]]:
    runs = sample_runs(DATA, MODEL, GradcheckOptions(), 3)
    return {
        ChooseSamples: lambda: ChooseSamples(DATA, MODEL, 1, 10, 100),
        ThirdDerivativeRun: lambda: runs.third,
        FdCurveRun: lambda: runs.curves["float32"],
        LossNoiseRun: lambda: runs.noises["float64"],
    }


EXAMPLES: dict[str, Callable[[], KeyedTask]] = {
    "InitRun": lambda: InitRun(DATA, InitOptions.quick(), "glorot"),
    "SearchRun": lambda: SearchRun(DATA, SearchOptions.quick().configs[0], 1, 2, rung=1),
    "CnnRun": lambda: CnnRun(
        DATA,
        match_params(QUICK_BLOCKS, 20_000),
        TrainConfig(),
        0,
        2,
        "cpu",
        EvalSubset(),
        variant="vanilla",
    ),
    "CellTask": _cell,
    **{cls.__name__: make for cls, make in _gradcheck_runs().items()},
}
"""An example of every task class, by name."""


def _task_classes() -> list[type[object]]:
    _all_modules()
    found = {
        cls
        for cls in _subclasses(KeyedTask)
        if cls.__module__.startswith("analyses.") and "KIND" in dir(cls) and attrs.has(cls)
    }
    return sorted(found, key=lambda c: c.__name__)


def _changed(value: object) -> Iterator[object]:
    """Values other than ``value``, of a kind its field can hold."""
    if isinstance(value, bool):
        yield not value
    elif isinstance(value, int):
        yield value + 1
    elif isinstance(value, float):
        yield value * 2 + 1
    elif isinstance(value, str):
        yield value + "x"
    elif value is None:
        yield "x"
    elif isinstance(value, tuple):
        yield (*value, *value[:1]) if value else ("x",)
    elif isinstance(value, dict):
        yield {**value, "x": None}
    elif attrs.has(type(value)):
        record: Any = value
        for f in attrs.fields(type(record)):
            for other in _changed(getattr(record, f.name)):
                try:
                    yield attrs.evolve(record, **{f.name: other})
                except (TypeError, ValueError):  # the record refuses it: try another
                    continue
    else:
        raise AssertionError(f"no other value for a {type(value).__name__}")


def _evolve(task: KeyedTask, name: str) -> KeyedTask:
    for other in _changed(getattr(task, name)):
        try:
            changed: KeyedTask = attrs.evolve(task, **{name: other})  # type: ignore[misc]  # an attrs record
        except (TypeError, ValueError):
            continue
        return changed
    raise AssertionError(f"{type(task).__name__}.{name} cannot be changed")


def test_every_task_class_has_an_example() -> None:
    names = {cls.__name__ for cls in _task_classes()}
    assert names, "no task class found"
    assert names == set(EXAMPLES), (
        f"task classes without an example here: {sorted(names - set(EXAMPLES))}; "
        f"examples of no task class: {sorted(set(EXAMPLES) - names)}"
    )


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_identity_field_changes_the_key_and_no_other_does(name: str) -> None:
    task = EXAMPLES[name]()
    key = task.key()
    assert key["kind"] == type(task).KIND and key["version"] == type(task).VERSION
    identity = identity_fields(type(task))
    record: Any = task
    for f in attrs.fields(type(record)):
        other = _evolve(task, f.name)
        if f.name in identity:
            assert other.key() != key, f"{name}.{f.name} is not in the key"
            assert key_hash(other.key()) != key_hash(key)
        else:
            assert f.metadata.get(IDENTITY) is False
            assert other.key() == key, f"{name}.{f.name} is in the key but marked otherwise"


def test_a_new_version_is_a_new_key() -> None:
    task = EXAMPLES["InitRun"]()
    assert run_key(task, "init", InitRun.VERSION) == task.key()
    assert run_key(task, "init", InitRun.VERSION + 1) != task.key()


def test_a_field_added_with_its_default_leaves_old_keys_as_they_were() -> None:
    """gradcheck's ``elements`` (theta's indices when not the first p elements) joined
    the runs' records after runs were stored: at its default it is not in the key."""
    task = EXAMPLES["FdCurveRun"]()
    assert "elements" not in task.key()
    assert "elements" in _evolve(task, "elements").key()


def test_a_field_whose_name_is_taken_by_the_key_is_refused() -> None:
    @attrs.frozen
    class Clash(KeyedTask):
        KIND = "clash"
        VERSION = 1
        kind: str = "mine"

    with pytest.raises(ValueError, match="named 'kind'"):
        Clash().key()


def test_the_keys_of_the_stored_runs_are_as_they_were() -> None:
    """The keys of the init, search and finite-difference runs are the ones stored
    runs carry (their hashes name the files), so results on disk stay valid."""
    init = EXAMPLES["InitRun"]()
    assert init.key() == {"kind": "init", "version": 2, **_fields(init)}
    search = EXAMPLES["SearchRun"]()
    fields = _fields(search)
    del fields["rung"]
    assert search.key() == {"kind": "search", "version": 2, **fields}
    choose = EXAMPLES["ChooseSamples"]()
    fields = _fields(choose)
    del fields["elements"]
    assert choose.key() == {"kind": "samples", "version": 3, **fields}


def _fields(task: object) -> dict[str, Any]:
    from analyses.pipeline.records import to_json

    value = to_json(task)
    assert isinstance(value, dict)
    return value


def test_the_marks_are_what_attrs_keeps() -> None:
    @attrs.frozen
    class Marked(KeyedTask):
        KIND = "marked"
        VERSION = 1
        kept: int = 1
        hint: int = attrs.field(default=0, eq=False, metadata=NOT_IDENTITY)

    assert identity_fields(Marked) == ("kept",)
    assert Marked(1, 5).key() == Marked(1, 6).key() == {"kind": "marked", "version": 1, "kept": 1}
