"""The PDF report, built from the studies' typed summaries on disk (no training).

    python -m analyses.report [--out results] [--no-timings]

Every number in the text and tables is read from the summaries and every comment is
derived from them, so the report stays true when the results change. The PDF's bytes
depend only on the results: fixed metadata, no creation date, no path. The title page
gives each study's wall time, the total and the core utilization from
``<out>/pipeline/timings.json``; ``--no-timings`` leaves them (and the date) out, so that
two runs that measured the same results give the same bytes.
"""

from __future__ import annotations

from analyses.report.build import MissingResults, build_report, main

__all__ = ["MissingResults", "build_report", "main"]
