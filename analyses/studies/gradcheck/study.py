"""The finite-difference study as the pipeline runs it, and its entry in the registry."""

from __future__ import annotations

from typing import ClassVar, Final

import attrs

from analyses.datasets import DataSpec
from analyses.pipeline.study import AnyKey, Artifacts, ArtifactValues
from analyses.pipeline.tasks import RunContext
from analyses.studies.artifacts import CHOSEN_MLP
from analyses.studies.gradcheck.options import STUDY, GradcheckOptions
from analyses.studies.gradcheck.plan import GradcheckPlan
from analyses.studies.gradcheck.section import SECTION
from analyses.studies.gradcheck.summary import GradcheckSummary
from analyses.studies.registry import declare


@attrs.frozen
class GradcheckStudy:
    """Central differences of the loss on a training sample against the backward
    gradient, for eps = 1/N over the assignment's twelve N, in float64 and float32: on
    the assignment's sample, and on the sample of largest loss, where float32 resolves
    the differences and its best N can be set against the textbook's."""

    data: DataSpec
    options: GradcheckOptions = attrs.field(factory=GradcheckOptions.full)

    name: ClassVar[str] = STUDY
    priority: ClassVar[int] = 20  # after the search, beside the CNN: it takes seconds
    needs: ClassVar[tuple[AnyKey, ...]] = (CHOSEN_MLP,)
    provides: ClassVar[tuple[AnyKey, ...]] = ()
    summary_type: ClassVar[type[GradcheckSummary]] = GradcheckSummary

    def plan(self, artifacts: Artifacts, ctx: RunContext) -> GradcheckPlan:
        return GradcheckPlan(self.data, self.options, artifacts[CHOSEN_MLP])

    def artifacts(self, summary: GradcheckSummary) -> ArtifactValues:
        return {}


ENTRY: Final = declare(
    GradcheckStudy,
    GradcheckOptions,
    full=GradcheckOptions.full,
    quick=GradcheckOptions.quick,
    section=SECTION,
)
"""The study's entry in the registry."""
