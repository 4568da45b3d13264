"""The initialization study: zero, standard normal and Glorot weights, biases zero, one
architecture, learning rate, batch size and data order for all; 10 epochs each.

- ``runs``: its options and its runs (one per scheme) with their typed result records;
- ``summary``: the summary the report reads, and the study the pipeline runs;
- ``figures``: the loss curves and the per-layer diagnostics.
"""

from analyses.studies.init.runs import InitOptions, InitRun, InitRunResult
from analyses.studies.init.summary import InitSettings, InitStudy, InitSummary

__all__ = ["InitOptions", "InitRun", "InitRunResult", "InitSettings", "InitStudy", "InitSummary"]
