"""The CNN study as the pipeline runs it, and its entry in the registry."""

from __future__ import annotations

from typing import ClassVar, Final

import attrs

from analyses.datasets import DataSpec
from analyses.pipeline.study import AnyKey, Artifacts, ArtifactValues
from analyses.pipeline.tasks import RunContext
from analyses.studies.artifacts import CHOSEN_MLP
from analyses.studies.cnn.device import resolve_device
from analyses.studies.cnn.options import STUDY, CnnOptions
from analyses.studies.cnn.plan import CnnPlan
from analyses.studies.cnn.section import SECTION
from analyses.studies.cnn.summary import CnnSummary
from analyses.studies.registry import declare


@attrs.frozen
class CnnStudy:
    """A CNN of the chosen MLP's size: CNN against MLP; regularizers screened, and the
    best against the vanilla CNN over several seeds."""

    data: DataSpec
    options: CnnOptions = attrs.field(factory=CnnOptions)

    name: ClassVar[str] = STUDY
    priority: ClassVar[int] = 10  # right after the search: its runs are the longest
    needs: ClassVar[tuple[AnyKey, ...]] = (CHOSEN_MLP,)
    provides: ClassVar[tuple[AnyKey, ...]] = ()
    summary_type: ClassVar[type[CnnSummary]] = CnnSummary

    def plan(self, artifacts: Artifacts, ctx: RunContext) -> CnnPlan:
        return CnnPlan(
            self.data, self.options, artifacts[CHOSEN_MLP], resolve_device(self.options.device)
        )

    def artifacts(self, summary: CnnSummary) -> ArtifactValues:
        return {}


ENTRY: Final = declare(
    CnnStudy, CnnOptions, full=CnnOptions.full, quick=CnnOptions.quick, section=SECTION
)
"""The study's entry in the registry."""
