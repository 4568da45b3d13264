"""The finite-difference study: central differences of the loss on a training sample
against the backward gradient of the search's chosen model, on the assignment's sample
and on the sample of largest loss (where float32 resolves the differences).

- ``options``: what it computes, besides the model and the data;
- ``finite``: the measurements (differences, kinks, third derivatives, loss noise) as
  pure functions returning typed records, and the rules that pick the samples;
- ``errormodel``: truncation against round-off, where they cross, and the textbook's
  optimum step and error floor per precision;
- ``runs``: its runs (choose the samples; then per sample and dtype);
- ``plan``: the runs it wants and what it makes of them;
- ``summary``: the summary the report reads;
- ``figures``: the error against N, and float64 beside float32 on the largest loss;
- ``section``: its part of the report;
- ``study``: the study the pipeline runs, and its entry in the registry.
"""

from analyses.studies.gradcheck.options import ALL_N, GradcheckOptions
from analyses.studies.gradcheck.study import ENTRY, GradcheckStudy
from analyses.studies.gradcheck.summary import (
    FIGURE,
    WORST_FIGURE,
    GradcheckSummary,
    SampleResult,
)

__all__ = [
    "ALL_N",
    "ENTRY",
    "FIGURE",
    "WORST_FIGURE",
    "GradcheckOptions",
    "GradcheckStudy",
    "GradcheckSummary",
    "SampleResult",
]
