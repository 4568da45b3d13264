"""The registry's record: how one study is declared.

A study is declared once, by one :class:`StudyEntry`: its study class (which names the
study, its summary type, its task priority and the artifacts it needs and provides),
its options (the full setting and the quick one), and its report section. The command
line's ``--only`` choices, the suite, the report's sections and the title page's rows
all derive from the entries listed in :mod:`analyses.studies`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

import attrs

from analyses.datasets import DataSpec
from analyses.pipeline.records import JsonRecord
from analyses.pipeline.study import Study
from analyses.report.section import Section

O = TypeVar("O")
O_contra = TypeVar("O_contra", contravariant=True)
S = TypeVar("S", bound=JsonRecord)

__all__ = ["StudyClass", "StudyEntry", "declare"]


class StudyClass(Protocol[O_contra, S]):
    """A study's class: it names the study and its summary type, and makes the study
    from the data and the options."""

    @property
    def name(self) -> str: ...

    @property
    def summary_type(self) -> type[S]: ...

    def __call__(self, data: DataSpec, options: O_contra, /) -> Study[S]: ...


@attrs.frozen
class StudyEntry(Generic[O, S]):
    """One study of the registry: its ``name`` and ``summary_type`` (read from its
    class), how to ``make`` it, its ``full`` and ``quick`` options, its ``section``."""

    name: str
    summary_type: type[S]
    make: Callable[[DataSpec, O], Study[S]]
    options_type: type[O]
    full: Callable[[], O]
    quick: Callable[[], O]
    section: Section[S]

    @property
    def label(self) -> str:
        """The label of its section in the report: ``@sec-<name>`` refers to it."""
        return f"sec-{self.name}"

    def options(self, quick: bool) -> O:
        return self.quick() if quick else self.full()

    def check(self, options: object) -> O:
        """``options`` as this study's options; TypeError when they are another's."""
        if not isinstance(options, self.options_type):
            raise TypeError(
                f"the {self.name} study takes {self.options_type.__name__}, "
                f"got {type(options).__name__}"
            )
        return options


def declare(
    study: StudyClass[O, S],
    options: type[O],
    *,
    full: Callable[[], O],
    quick: Callable[[], O],
    section: Section[S],
) -> StudyEntry[O, S]:
    """The registry's entry of the study whose class is ``study``."""
    return StudyEntry(
        name=study.name,
        summary_type=study.summary_type,
        make=study,
        options_type=options,
        full=full,
        quick=quick,
        section=section,
    )
