"""The hyper-parameter search: which settings reach 97%+ validation accuracy.

- ``space``: the configurations it tries (the assignment's plain-SGD grid and a sample
  of a wider space) and its rungs;
- ``halving``: successive halving, with decisions that do not depend on timing;
- ``runs``: one rung of one configuration, resumed from the previous rung's checkpoint;
- ``summary``: every trial ranked, the chosen model (an artifact for the other
  studies), the tables, and the study the pipeline runs;
- ``figures``: the ladder of r(valid) against epoch, and r(valid) by setting.
"""

from analyses.studies.search.halving import Rungs, SuccessiveHalving
from analyses.studies.search.runs import SearchRun, SegmentResult, train_segment
from analyses.studies.search.space import SearchOptions
from analyses.studies.search.summary import SearchStudy, SearchSummary, Trial

__all__ = [
    "Rungs",
    "SearchOptions",
    "SearchRun",
    "SearchStudy",
    "SearchSummary",
    "SegmentResult",
    "SuccessiveHalving",
    "Trial",
    "train_segment",
]
