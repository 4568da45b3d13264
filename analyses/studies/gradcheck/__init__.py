"""The finite-difference study: central differences of the loss on a training sample
against the backward gradient of the search's chosen model, on the assignment's sample
and on the sample of largest loss (where float32 resolves the differences).

- ``finite``: the measurements (differences, kinks, third derivatives, loss noise) as
  pure functions returning typed records, and the rules that pick the samples;
- ``errormodel``: truncation against round-off, where they cross, and the textbook's
  optimum step and error floor per precision;
- ``runs``: its options and its runs (choose the samples; then per sample and dtype);
- ``summary``: the summary the report reads, and the study the pipeline runs;
- ``figures``: the error against N, and float64 beside float32 on the largest loss.
"""

from analyses.studies.gradcheck.runs import ALL_N, GradcheckOptions
from analyses.studies.gradcheck.summary import (
    FIGURE,
    WORST_FIGURE,
    GradcheckStudy,
    GradcheckSummary,
    SampleResult,
)

__all__ = [
    "ALL_N",
    "FIGURE",
    "WORST_FIGURE",
    "GradcheckOptions",
    "GradcheckStudy",
    "GradcheckSummary",
    "SampleResult",
]
