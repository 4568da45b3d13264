"""The search as the pipeline runs it, and its entry in the registry."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Final

import attrs

from analyses.datasets import DataSpec
from analyses.pipeline.plan import StudyError
from analyses.pipeline.study import AnyKey, Artifacts, ArtifactValues
from analyses.pipeline.tasks import RunContext
from analyses.studies.artifacts import CHOSEN_MLP
from analyses.studies.registry import declare
from analyses.studies.search.options import SearchOptions
from analyses.studies.search.plan import SearchPlan
from analyses.studies.search.runs import STUDY
from analyses.studies.search.section import SECTION
from analyses.studies.search.summary import SearchSummary


@attrs.frozen
class SearchStudy:
    """Which hyper-parameters reach 97% validation accuracy: successive halving over
    the assignment's plain-SGD grid and a sample of a wider space."""

    data: DataSpec
    options: SearchOptions = attrs.field(factory=SearchOptions.full)

    name: ClassVar[str] = STUDY
    priority: ClassVar[int] = 0  # first: the finite differences and the CNN wait for it
    needs: ClassVar[tuple[AnyKey, ...]] = ()
    provides: ClassVar[tuple[AnyKey, ...]] = (CHOSEN_MLP,)
    summary_type: ClassVar[type[SearchSummary]] = SearchSummary

    def plan(self, artifacts: Artifacts, ctx: RunContext) -> SearchPlan:
        return SearchPlan(self.data, self.options, Path(ctx.out))

    def artifacts(self, summary: SearchSummary) -> ArtifactValues:
        if summary.chosen is None:
            raise StudyError(
                "no configuration finished the last rung successfully: nothing was chosen"
            )
        return {CHOSEN_MLP: summary.chosen}


ENTRY: Final = declare(
    SearchStudy,
    SearchOptions,
    full=SearchOptions.full,
    quick=SearchOptions.quick,
    section=SECTION,
)
"""The study's entry in the registry."""
