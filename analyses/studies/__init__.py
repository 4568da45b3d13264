"""The registry: every study, declared once, and the suite built from it.

Each study is a package of its own (``init``, ``search``, ``gradcheck``, ``cnn``), laid
out the same way: ``options`` (what fixes its results besides the data), ``runs`` (its
tasks and their results), ``plan`` (which runs it wants and what it does with them),
``summary`` (its typed summary, what the report reads), ``figures``, ``section`` (its
part of the report) and ``study`` (the pipeline's entry point and the study's entry in
this registry). None imports another; what passes between them is a declared artifact
(``artifacts``).

Adding a study means one new package and one line in ``REGISTRY``. :func:`registered`
adds one for a while (a test's own study, say).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any, TypeAlias, TypeVar

import attrs

from analyses.datasets import DataSpec, quick_data
from analyses.pipeline.records import JsonRecord
from analyses.pipeline.study import AnyStudy
from analyses.studies import cnn, gradcheck, init, search
from analyses.studies.registry import StudyEntry

O = TypeVar("O")
S = TypeVar("S", bound=JsonRecord)

AnyEntry: TypeAlias = "StudyEntry[Any, Any]"
"""An entry of the registry (each study has its own options and summary types)."""

REGISTRY: list[AnyEntry] = [init.ENTRY, search.ENTRY, gradcheck.ENTRY, cnn.ENTRY]
"""Every study, in the order the report presents them."""

__all__ = ["REGISTRY", "SuiteOptions", "entries", "entry", "registered", "study_names", "suite"]


def entries() -> tuple[AnyEntry, ...]:
    return tuple(REGISTRY)


def study_names() -> tuple[str, ...]:
    return tuple(e.name for e in REGISTRY)


def entry(name: str) -> AnyEntry:
    """The study named ``name``; ValueError naming the known ones otherwise."""
    for e in REGISTRY:
        if e.name == name:
            return e
    raise ValueError(f"unknown study {name!r}: expected one of {', '.join(study_names())}")


@contextlib.contextmanager
def registered(new: AnyEntry) -> Iterator[AnyEntry]:
    """``new`` in the registry (last) until the block ends."""
    if new.name in study_names():
        raise ValueError(f"a study named {new.name!r} is registered already")
    REGISTRY.append(new)
    try:
        yield new
    finally:
        REGISTRY.remove(new)


@attrs.frozen
class SuiteOptions:
    """The data and the settings of every registered study: the full suite, or the quick
    one (the same studies on 600 / 200 samples for an epoch or two)."""

    data: DataSpec
    options: Mapping[str, object]
    """Each study's options, by name."""
    smoke: bool = False
    """The quick setting: a study registered since these options were made gets its
    quick options."""

    @classmethod
    def full(cls, dataset: str = "mnist") -> SuiteOptions:
        return cls(DataSpec(dataset), {e.name: e.full() for e in REGISTRY})

    @classmethod
    def quick(cls, dataset: str = "mnist") -> SuiteOptions:
        return cls(quick_data(dataset), {e.name: e.quick() for e in REGISTRY}, smoke=True)

    def of(self, study: StudyEntry[O, S]) -> O:
        """The options of ``study``."""
        return study.check(self.options[study.name])

    def with_options(self, study: StudyEntry[O, S], options: O) -> SuiteOptions:
        """The same suite, with ``options`` for ``study``."""
        return attrs.evolve(self, options={**self.options, study.name: study.check(options)})


def suite(options: SuiteOptions) -> list[AnyStudy]:
    """Every registered study, configured (a study added since ``options`` were made
    gets its own settings, full or quick as the data say)."""
    studies: list[AnyStudy] = []
    for e in REGISTRY:
        chosen = options.options.get(e.name)
        settings = e.check(chosen) if chosen is not None else e.options(options.smoke)
        studies.append(e.make(options.data, settings))
    return studies
