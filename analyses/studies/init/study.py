"""The initialization study as the pipeline runs it, and its entry in the registry."""

from __future__ import annotations

from typing import ClassVar, Final

import attrs

from analyses.datasets import DataSpec
from analyses.pipeline.study import AnyKey, Artifacts, ArtifactValues
from analyses.pipeline.tasks import RunContext
from analyses.studies.init.options import STUDY, InitOptions
from analyses.studies.init.plan import InitPlan
from analyses.studies.init.section import SECTION
from analyses.studies.init.summary import InitSummary
from analyses.studies.registry import declare


@attrs.frozen
class InitStudy:
    """Zero, standard normal and Glorot weights: how initialization shapes training."""

    data: DataSpec
    options: InitOptions = attrs.field(factory=InitOptions)

    name: ClassVar[str] = STUDY
    priority: ClassVar[int] = 30  # last: nothing waits for it
    needs: ClassVar[tuple[AnyKey, ...]] = ()
    provides: ClassVar[tuple[AnyKey, ...]] = ()
    summary_type: ClassVar[type[InitSummary]] = InitSummary

    def plan(self, artifacts: Artifacts, ctx: RunContext) -> InitPlan:
        return InitPlan(self.data, self.options)

    def artifacts(self, summary: InitSummary) -> ArtifactValues:
        return {}


ENTRY: Final = declare(
    InitStudy, InitOptions, full=InitOptions.full, quick=InitOptions.quick, section=SECTION
)
"""The study's entry in the registry."""
