"""The initialization study's summary, what the report reads, and the study itself."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Final

import attrs

import fmlp
from analyses.common import DataSpec, MachineInfo, SplitSizes, load_data, machine_info
from analyses.pipeline.driver import ArtifactKey, Artifacts, StudyError
from analyses.pipeline.records import JsonRecord
from analyses.pipeline.store import StoredRun
from analyses.pipeline.tasks import RunContext, Task
from analyses.studies.init.runs import STUDY, InitOptions, InitRun, InitRunResult
from fmlp.types import ActivationName, SchemeName


@attrs.frozen
class InitSettings:
    """What every setup shares (the report's settings list)."""

    sizes: tuple[int, ...]
    n_params: int
    activation: ActivationName
    schemes: tuple[SchemeName, ...]
    lr: float
    batch_size: int
    epochs: int
    seed: int
    dtype: str
    dataset: str
    dataset_sizes: SplitSizes
    n_diag: int
    data_order: str
    layer_names: tuple[str, ...]


@attrs.frozen
class InitSummary(JsonRecord):
    """The study's results: its settings, one run per scheme (in the settings' order),
    the figure files written beside it, and the machine."""

    SCHEMA = 1

    settings: InitSettings
    runs: tuple[InitRunResult, ...]
    figures: tuple[str, ...]
    machine: MachineInfo

    def run(self, scheme: str) -> InitRunResult | None:
        return next((r for r in self.runs if r.scheme == scheme), None)


FIGURES: Final = ("init_loss", "init_diagnostics")


def settings_of(spec: DataSpec, opts: InitOptions) -> InitSettings:
    data = load_data(spec, opts.dtype)
    n_layers = len(opts.sizes) - 1
    return InitSettings(
        sizes=opts.sizes,
        n_params=fmlp.count_params(opts.sizes),
        activation=opts.activation,
        schemes=opts.schemes,
        lr=opts.lr,
        batch_size=opts.batch_size,
        epochs=opts.epochs,
        seed=opts.seed,
        dtype=opts.dtype,
        dataset=spec.name,
        dataset_sizes=data.sizes,
        n_diag=min(opts.n_diag, data.sizes.train),
        data_order=(
            f"weights drawn from seed {opts.seed}; epoch e visits the training set in the "
            f"order np.random.default_rng(({opts.seed}, e)).permutation(n), the same for "
            "every setup"
        ),
        layer_names=tuple(
            f"layer {l + 1}" + (" (logits)" if l == n_layers - 1 else "") for l in range(n_layers)
        ),
    )


class _InitPlan:
    def __init__(self, data: DataSpec, options: InitOptions) -> None:
        self.data = data
        self.options = options
        self.tasks = [InitRun(data, options, s) for s in options.schemes]
        self.handed_out = False
        self.results: dict[SchemeName, InitRunResult] = {}
        self.failures: dict[SchemeName, str] = {}

    def ready(self) -> Sequence[Task[Any]]:
        if self.handed_out:
            return ()
        self.handed_out = True
        return self.tasks

    def record(self, task: Task[Any], run: StoredRun) -> None:
        assert isinstance(task, InitRun)
        if run.failure is not None:
            self.failures[task.scheme] = run.failure.error
        else:
            self.results[task.scheme] = run.result

    def done(self) -> bool:
        return len(self.results) + len(self.failures) == len(self.tasks)

    def finish(self, folder: Path) -> InitSummary:
        if self.failures:
            raise StudyError(
                "; ".join(f"the {s} run failed: {e}" for s, e in self.failures.items())
            )
        from analyses.studies.init.figures import plot_diagnostics, plot_losses

        settings = settings_of(self.data, self.options)
        runs = tuple(self.results[s] for s in self.options.schemes)
        written = plot_losses(settings, runs, folder) + plot_diagnostics(settings, runs, folder)
        return InitSummary(
            settings=settings, runs=runs, figures=tuple(written), machine=machine_info()
        )


@attrs.frozen
class InitStudy:
    """Zero, standard normal and Glorot weights: how initialization shapes training."""

    data: DataSpec
    options: InitOptions = attrs.field(factory=InitOptions)

    name: ClassVar[str] = STUDY
    needs: ClassVar[tuple[ArtifactKey[Any], ...]] = ()
    provides: ClassVar[tuple[ArtifactKey[Any], ...]] = ()
    summary_type: ClassVar[type[InitSummary]] = InitSummary

    def plan(self, artifacts: Artifacts, ctx: RunContext) -> _InitPlan:
        return _InitPlan(self.data, self.options)

    def artifacts(self, summary: InitSummary) -> dict[ArtifactKey[Any], object]:
        return {}
