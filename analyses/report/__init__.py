"""The report, built from the studies' typed summaries on disk (no training).

    python -m analyses.report [--out results] [--no-timings]

Writes ``<out>/report.typ``, Typst source in which every number, table and comment is
generated from the summaries (so the report stays true when the results change), and
compiles it into ``<out>/report.pdf``. A study without results keeps its section, which
says why. The PDF's bytes depend only on the results: no date, no path, the compiler's
own fonts. The title page gives each study's wall time, the total and the core
utilization from ``<out>/pipeline/timings.json``; ``--no-timings`` leaves them (and the
date) out, so that two runs that measured the same results give the same bytes.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from analyses.report.build import Built, MissingResults, build_report, describe, main

__all__ = ["Built", "MissingResults", "build_report", "describe", "main"]


def __getattr__(name: str) -> object:
    # Each study's section uses the report's toolkit (markup, fmt) and the report's
    # builder walks the registry of studies: the builder is imported when first used,
    # so that importing a study does not import every other one through this package.
    if name in __all__:
        return getattr(importlib.import_module("analyses.report.build"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
