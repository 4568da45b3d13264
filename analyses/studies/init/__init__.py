"""The initialization study: zero, standard normal and Glorot weights, biases zero, one
architecture, learning rate, batch size and data order for all; 10 epochs each.

- ``options``: what fixes its results besides the data;
- ``runs``: its runs (one per scheme) with their typed result records;
- ``plan``: the runs it wants and what it makes of them;
- ``summary``: the summary the report reads;
- ``figures``: the loss curves and the per-layer diagnostics;
- ``section``: its part of the report;
- ``study``: the study the pipeline runs, and its entry in the registry.
"""

from analyses.studies.init.options import InitOptions
from analyses.studies.init.runs import InitRun, InitRunResult
from analyses.studies.init.study import ENTRY, InitStudy
from analyses.studies.init.summary import InitSettings, InitSummary

__all__ = [
    "ENTRY",
    "InitOptions",
    "InitRun",
    "InitRunResult",
    "InitSettings",
    "InitStudy",
    "InitSummary",
]
