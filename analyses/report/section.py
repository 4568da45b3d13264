"""How a study appears in the report: the section a study declares beside its runs.

A study's :class:`Section` renders its part of the document from its typed summary (the
study's folder at hand for its figures), gives its rows of the title page's summary
table, and says which machine and which dataset its results come from. The registry
(:mod:`analyses.studies`) declares each study with its section; the report
(:mod:`analyses.report.build`) walks the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

import attrs

from analyses.machine import MachineInfo
from analyses.pipeline.records import JsonRecord
from analyses.report.markup import Document

S = TypeVar("S", bound=JsonRecord)

__all__ = ["Section", "no_headline"]


def no_headline(summary: JsonRecord) -> list[list[str]]:
    """A section with no row in the title page's summary table."""
    return []


@attrs.frozen
class Section(Generic[S]):
    """One study's section: its ``title``; ``render`` appends it to the document, with
    the study's folder for its figures; ``headline``: its rows of the title page's
    summary table; the ``machine`` it ran on and the ``dataset`` it used; ``needs``: the
    studies whose results it is computed from."""

    title: str
    render: Callable[[Document, S, Path], None]
    headline: Callable[[S], list[list[str]]]
    machine: Callable[[S], MachineInfo]
    dataset: Callable[[S], str]
    needs: tuple[str, ...] = ()
