"""The initialization study's plan: one run per weight scheme, then the figures and
the summary."""

from __future__ import annotations

from pathlib import Path

from analyses.datasets import DataSpec
from analyses.machine import machine_info
from analyses.pipeline.plan import StudyError, StudyPlan
from analyses.studies.init.options import InitOptions
from analyses.studies.init.runs import InitRun, InitRunResult
from analyses.studies.init.summary import InitSummary, settings_of


class InitPlan(StudyPlan[InitRun, InitRunResult, InitSummary]):
    """One run per scheme, all at once."""

    def __init__(self, data: DataSpec, options: InitOptions) -> None:
        self.data = data
        self.options = options
        self.tasks = [InitRun(data, options, s) for s in options.schemes]
        super().__init__(self.tasks)

    def finish(self, folder: Path) -> InitSummary:
        if self.failures:
            raise StudyError(
                "; ".join(f"the {t.scheme} run failed: {e}" for t, e in self.failures.items())
            )
        from analyses.studies.init.figures import plot_diagnostics, plot_losses

        settings = settings_of(self.data, self.options)
        runs = tuple(self.results[t] for t in self.tasks)
        written = plot_losses(settings, runs, folder) + plot_diagnostics(settings, runs, folder)
        return InitSummary(
            settings=settings, runs=runs, figures=tuple(written), machine=machine_info()
        )
