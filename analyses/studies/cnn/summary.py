"""The CNN study's summary: what the report reads (its records, the targets it is read
against, and the rule that chose the technique)."""

from __future__ import annotations

from typing import ClassVar, Final

import attrs

from analyses.datasets import EvalSubset, SplitSizes
from analyses.machine import MachineInfo
from analyses.mlp import MlpConfig
from analyses.pipeline.records import JsonRecord
from analyses.studies.cnn.models import CNNSpec, Layer
from analyses.studies.cnn.options import Device, Technique, TrainConfig
from analyses.studies.cnn.runs import CnnRunResult, Curves

TARGET_VANILLA: Final = 0.990
"""Validation accuracy a plain CNN of this size should reach in 10 epochs."""
TARGET_REGULARIZED: Final = 0.9945
"""Validation accuracy (mean over seeds) the chosen regularizer aims at."""
SELECTION: Final = (
    "the technique with the highest validation accuracy after the last epoch at the "
    "screening seed (ties: the lower final validation loss, then the order listed)"
)


@attrs.frozen
class Band:
    """One metric per epoch over seeds: mean, standard deviation (ddof 1; 0 for one
    seed), smallest and largest."""

    mean: tuple[float, ...]
    sd: tuple[float, ...]
    min: tuple[float, ...]
    max: tuple[float, ...]


@attrs.frozen
class SeedRun:
    """One seed's run, and the epoch of its lowest validation loss (where early stopping
    on the validation loss would have stopped)."""

    seed: int
    result: CnnRunResult
    early_stop_epoch: int


@attrs.frozen
class Aggregate:
    """A variant over its seeds: per-epoch bands, and the last epoch's validation error
    (mean and sd), validation accuracy (mean) and test error (mean)."""

    train_loss: Band
    train_error: Band
    valid_loss: Band
    valid_error: Band
    final_valid_error: float
    final_valid_error_sd: float
    final_valid_accuracy: float
    final_test_error: float
    early_stop_epoch_of_mean: int


@attrs.frozen
class Variant:
    """One CNN trained over several seeds: its name, the technique in words, its network
    and training, and its runs."""

    name: str
    technique: str
    spec: CNNSpec
    train: TrainConfig
    description: str
    n_params: int
    layers: tuple[Layer, ...]
    runs: tuple[SeedRun, ...]
    aggregate: Aggregate

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(r.seed for r in self.runs)


@attrs.frozen
class MlpReference:
    """The MLP compared with: the search's chosen model, its curves as the search
    measured them while training it (on the same training subset as the CNN runs), and
    its test loss and error, measured once after the choice."""

    config: MlpConfig
    description: str
    sizes: tuple[int, ...]
    n_params: int
    curves: Curves
    test_loss: float
    test_error: float


@attrs.frozen
class Screened:
    """One technique's screening run at the screening seed, and its rank by
    ``SELECTION`` (1: chosen); None when the run failed (then ``error`` says why)."""

    technique: Technique
    description: str
    train: str
    result: CnnRunResult | None
    error: str | None
    rank: int | None


@attrs.frozen
class Verdict:
    """The chosen technique against vanilla over the same seeds: the gain in mean final
    validation error (vanilla minus chosen; positive: better), the larger of the two
    seed sds, whether the gain exceeds twice it, and whether the chosen technique's mean
    validation accuracy reaches ``target``."""

    technique: str
    gain: float
    noise: float
    beyond_noise: bool
    target: float
    target_met: bool


@attrs.frozen
class CnnSummary(JsonRecord):
    """The study's results (no wall times: they live in the pipeline's log)."""

    SCHEMA: ClassVar[int] = 3

    dataset: str
    dataset_sizes: SplitSizes
    epochs: int
    seeds: tuple[int, ...]
    device: Device
    threads: int
    train: TrainConfig
    optimizer: str
    eval_subset: EvalSubset
    train_measured_on: str
    mlp: MlpReference
    cnn_params: int
    param_ratio: float
    screening_seed: int
    selection: str
    screening: tuple[Screened, ...]
    variants: tuple[Variant, ...]
    verdict: Verdict
    target_vanilla: float
    figures: tuple[str, ...]
    machine: MachineInfo

    def variant(self, name: str) -> Variant:
        return next(v for v in self.variants if v.name == name)

    @property
    def vanilla(self) -> Variant:
        return self.variant("vanilla")

    @property
    def chosen(self) -> Variant:
        """The chosen technique over every seed."""
        return next(v for v in self.variants if v.name != "vanilla")


FIGURES: Final = ("cnn_screening", "cnn_errors", "cnn_vs_mlp_loss")
