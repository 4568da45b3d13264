"""The initialization study's summary: what the report reads."""

from __future__ import annotations

from typing import Final

import attrs

import fmlp
from analyses.datasets import DataSpec, SplitSizes, load_data
from analyses.machine import MachineInfo
from analyses.pipeline.records import JsonRecord
from analyses.studies.init.options import InitOptions
from analyses.studies.init.runs import InitRunResult
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
