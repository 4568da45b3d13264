"""The finite-difference study: central differences of the loss on one training sample
against the backward gradient of the search's chosen model.

- ``finite``: the measurements (differences, kinks, third derivatives, loss noise) as
  pure functions returning typed records, and the rule that picks the sample;
- ``errormodel``: truncation against round-off, and where they cross;
- ``runs``: its options and its runs (choose the sample; then per sample and dtype);
- ``summary``: the summary the report reads, and the study the pipeline runs;
- ``figures``: the error against N.
"""

from analyses.studies.gradcheck.runs import ALL_N, GradcheckOptions
from analyses.studies.gradcheck.summary import GradcheckStudy, GradcheckSummary, SampleResult

__all__ = ["ALL_N", "GradcheckOptions", "GradcheckStudy", "GradcheckSummary", "SampleResult"]
