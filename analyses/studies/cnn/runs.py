"""The CNN study's runs: one CNN run per (variant, seed), each a task
with a typed result record.

After every epoch each run records the mean cross-entropy and the error rate (1 -
accuracy) on a fixed subset of the training split (``analyses.datasets.EvalSubset``:
10,000 samples drawn once from a stated seed, the same for every run, and the same the
search measured its MLPs on) and on the whole validation set; at the end, on the test
set. The MLP compared with is the search's chosen model, whose curves the search
measured as it trained it: nothing is trained twice.

Nothing here imports torch: the CNN run imports ``net`` (and so torch) when it runs.
"""

from __future__ import annotations

from typing import ClassVar, Final

import attrs

from analyses.datasets import DataSpec, EvalSubset, load_data
from analyses.pipeline.tasks import NOT_IDENTITY, KeyedTask, RunContext
from analyses.studies.cnn.models import CNNSpec
from analyses.studies.cnn.options import STUDY, Device, TrainConfig

RUN_THREADS: Final = 1
"""Torch and BLAS threads of every run (the task environment sets them): runs go side
by side, one per core, and the kernels' sums depend on the thread count."""


# ------------------------------------------------------------------ run records


@attrs.frozen
class Curves:
    """Per epoch 1..E: loss (mean cross-entropy) and error rate on the training subset
    and on the whole validation set."""

    epoch: tuple[int, ...]
    train_loss: tuple[float, ...]
    train_error: tuple[float, ...]
    valid_loss: tuple[float, ...]
    valid_error: tuple[float, ...]


@attrs.frozen
class CnnRunResult:
    """One CNN run: its curves, the learning rate of each epoch, its parameter count as
    torch counts it, the test set after the last epoch, and where it ran."""

    curves: Curves
    lr: tuple[float, ...]
    n_params: int
    test_loss: float
    test_error: float
    device: Device
    threads: int


# ------------------------------------------------------------------------- tasks


@attrs.frozen
class CnnRun(KeyedTask):
    """Train one CNN (vanilla or one technique, one seed) and measure it after every
    epoch."""

    study: ClassVar[str] = STUDY
    torch: ClassVar[bool] = True
    result_type: ClassVar[type[CnnRunResult]] = CnnRunResult
    KIND: ClassVar[str] = "cnn"
    VERSION: ClassVar[int] = 4
    """Bumped whenever a change to the code changes the numbers a run gives, so results
    stored by older code are never mixed with new ones (1-3 named it "implementation";
    4: the same runs, keyed the way every task is)."""

    data: DataSpec
    spec: CNNSpec
    train: TrainConfig
    seed: int
    epochs: int
    device: Device
    eval_subset: EvalSubset
    threads: int = RUN_THREADS
    variant: str = attrs.field(default="", eq=False, metadata=NOT_IDENTITY)
    """For labels only."""

    def label(self) -> str:
        return f"cnn {self.variant or 'run'} seed {self.seed}"

    def run(self, ctx: RunContext) -> CnnRunResult:
        from analyses.studies.cnn.net import train_cnn

        data = load_data(self.data, "float32")
        return train_cnn(
            self.spec,
            data,
            self.train,
            seed=self.seed,
            epochs=self.epochs,
            device=self.device,
            eval_index=self.eval_subset.indices(len(data.y_train)),
        )
