"""The finite-difference study's plan: first the run that chooses the samples, then
every run on each, then the error model, the figures and the summary."""

from __future__ import annotations

from pathlib import Path

from analyses.datasets import DataSpec
from analyses.machine import machine_info
from analyses.pipeline.plan import StudyError, StudyPlan
from analyses.pipeline.store import StoredRun
from analyses.studies.artifacts import ChosenMlp
from analyses.studies.gradcheck.finite import ChosenSample
from analyses.studies.gradcheck.options import GradcheckOptions
from analyses.studies.gradcheck.runs import (
    ChooseSamples,
    GradcheckResult,
    GradcheckRun,
    ModelRef,
    SampleChoice,
    sample_runs,
)
from analyses.studies.gradcheck.summary import (
    FIGURE,
    WORST_FIGURE,
    GradcheckSummary,
    SampleResult,
    checked_model,
    sample_result,
    settings_of,
)


class GradcheckPlan(StudyPlan[GradcheckRun, GradcheckResult, GradcheckSummary]):
    """First the run that chooses the samples, then every run on each."""

    def __init__(self, data: DataSpec, options: GradcheckOptions, chosen: ChosenMlp) -> None:
        self.data = data
        self.options = options
        self.chosen = chosen
        self.model = ModelRef(chosen.params_file, chosen.params_sha256)
        self.choose = ChooseSamples(data, self.model, options.layer, options.p, options.scan_limit)
        self.choice: SampleChoice | None = None
        super().__init__([self.choose])

    @property
    def _elements(self) -> tuple[int, ...] | None:
        return None if self.choice is None else self.choice.elements

    def _samples(self) -> list[int]:
        """The distinct samples to measure, in order (none before the choice)."""
        if self.choice is None:
            return []
        first, worst = self.choice.first.index, self.choice.worst.index
        return [first] if worst == first else [first, worst]

    def received(self, task: GradcheckRun, run: StoredRun[GradcheckResult]) -> None:
        if task == self.choose and task in self.results:
            self.choice = self.result(self.choose)
            for index in self._samples():
                runs = sample_runs(self.data, self.model, self.options, index, self._elements)
                self.want(*runs.all())

    def settled(self) -> bool:
        return self.choice is not None or self.choose in self.failures

    def _sample_result(self, choice: SampleChoice, sample: ChosenSample) -> SampleResult:
        runs = sample_runs(self.data, self.model, self.options, sample.index, choice.elements)
        return sample_result(
            sample,
            self.options,
            self.result(runs.third),
            {dt: self.result(t) for dt, t in runs.curves.items()},
            {dt: self.result(t) for dt, t in runs.noises.items()},
            choice.theta_value,
        )

    def finish(self, folder: Path) -> GradcheckSummary:
        error = self.failed()
        if error is not None or self.choice is None:
            raise error or StudyError("the samples were never chosen")
        from analyses.studies.gradcheck.figures import plot_precisions, plot_sample

        choice = self.choice
        settings = settings_of(self.data, self.options, choice)
        first = self._sample_result(choice, choice.first)
        second = self._sample_result(choice, choice.worst)
        written = plot_sample(settings, first, folder, FIGURE)
        written += plot_precisions(settings, second, folder, WORST_FIGURE)
        return GradcheckSummary(
            settings=settings,
            model=checked_model(self.chosen),
            first=first,
            second=second,
            max_loss_index=choice.max_loss_index,
            max_loss=choice.max_loss,
            figures=tuple(written),
            machine=machine_info(),
        )
