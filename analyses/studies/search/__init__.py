"""The hyper-parameter search: which settings reach 97%+ validation accuracy.

- ``options``: the configurations it tries (the assignment's plain-SGD grid and a sample
  of a wider space) and its rungs;
- ``halving``: successive halving, with decisions that do not depend on timing;
- ``runs``: one rung of one configuration, resumed from the previous rung's checkpoint;
- ``plan``: the rungs, the grid's best continued to the last rung, the chosen model (an
  artifact for the other studies);
- ``summary``: every trial ranked, the chosen model and the tables;
- ``figures``: the ladder of r(valid) against epoch, and r(valid) by setting;
- ``section``: its part of the report;
- ``study``: the study the pipeline runs, and its entry in the registry.
"""

from analyses.studies.search.halving import Rungs, SuccessiveHalving
from analyses.studies.search.options import SearchOptions
from analyses.studies.search.runs import SearchRun, SegmentResult, train_segment
from analyses.studies.search.study import ENTRY, SearchStudy
from analyses.studies.search.summary import SearchSummary, Trial

__all__ = [
    "ENTRY",
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
