"""A measured cell (setting, dataset, dtype, batch) as a run of the results store, and
as its setting's record shows it.

``CellTask`` names everything a cell's epoch times depend on; the pipeline's
``ResultStore`` keeps its ``CellResult`` under ``<out>/benchmark/runs/<hash of the
key>.json`` and gives it back only for the same key, so a rerun reads finished cells
instead of measuring them again, and a changed implementation (its ``source`` hash) or
environment is measured afresh. ``TrainingCell`` is the cell in a setting's record,
with what depends on the rest of the setting (the GEMM peak and bound) and fmlp's
ratios to the others.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import ModuleType
from typing import ClassVar, Final

import attrs

from analyses.benchmark.data import get_data
from analyses.benchmark.environment import load_avg
from analyses.benchmark.jax_loop import import_jax
from analyses.benchmark.training import Epochs, FrameworkRun, Ratio, train_cell
from analyses.datasets import StudyData
from analyses.pipeline.tasks import KeyedTask, RunContext

STUDY: Final = "benchmark"
TRAIN_ONLY_EVAL: Final = 16
"""Validation and test samples of a cell's data when a cell makes its own: the cell
trains only (the driver passes the data it has already made)."""


@attrs.frozen
class CellResult:
    """What the results store keeps of one cell: every framework's epochs, the load
    averages before and after, the training samples."""

    frameworks: dict[str, FrameworkRun]
    load_avg: tuple[tuple[float, ...], tuple[float, ...]]
    n_train: int


@attrs.frozen
class CellTask(KeyedTask):
    """One measured cell: every field is part of its key (``kind``, ``version`` and every
    field), so any change measures it again. ``source`` is the hash of fmlp's and the
    benchmark's source; ``threads`` numpy's BLAS threads; ``jax`` whether jax was
    importable; ``openblas_env`` the OpenBLAS variables (None where unset)."""

    study: ClassVar[str] = STUDY
    torch: ClassVar[bool] = True
    result_type: ClassVar[type[CellResult]] = CellResult
    KIND: ClassVar[str] = "cell"
    VERSION: ClassVar[int] = 2

    setting: str
    openblas_env: dict[str, str | None]
    source: str
    n_train: int
    xla_flags: str | None
    epochs: int
    warmup: int
    frameworks: tuple[str, ...]
    threads: int
    jax: bool
    quick: bool
    dataset: str
    dtype: str
    batch: int

    def label(self) -> str:
        return f"benchmark {self.setting} {self.dataset} {self.dtype} batch {self.batch}"

    def run(self, ctx: RunContext) -> CellResult:
        """The cell on data of its own (the driver calls ``measure`` with the data it has)."""
        data = get_data(self.dataset, self.dtype, self.n_train, TRAIN_ONLY_EVAL)
        return self.measure(data, import_jax() if self.jax else None)

    def measure(
        self,
        data: StudyData,
        jax: ModuleType | None,
        log: Callable[[str], None] = lambda msg: None,
    ) -> CellResult:
        """Every framework's epochs on ``data``'s training set, interleaved epoch by epoch."""
        log(f"{self.dataset} {self.dtype} batch {self.batch} (load {load_avg()})")
        before = load_avg()
        frameworks = train_cell(
            data.x_train,
            data.y_train,
            self.batch,
            frameworks=self.frameworks,
            epochs=self.epochs,
            warmup=self.warmup,
            jax=jax,
        )
        return CellResult(
            frameworks=frameworks,
            load_avg=(tuple(before), tuple(load_avg())),
            n_train=int(data.x_train.shape[0]),
        )


@attrs.frozen
class TrainingCell:
    """A cell in its setting's record: ``frameworks`` as measured (``computed_now``: in
    this invocation, not read back), ``peak_fraction`` (per measured framework, its
    GFLOP/s over the GEMM peak of the dtype), ``gemm_bound_seconds`` (the epoch's FLOPs
    at the speed of the step's products timed alone) and fmlp's ``ratios``."""

    dataset: str
    dtype: str
    batch: int
    n_train: int
    steps_per_epoch: int
    epoch_flops: int
    gemm_bound_seconds: float
    load_avg: tuple[tuple[float, ...], tuple[float, ...]]
    frameworks: dict[str, FrameworkRun]
    peak_fraction: dict[str, float]
    ratios: dict[str, Ratio | None]
    computed_now: bool

    def epochs(self, name: str) -> Epochs | None:
        """The epochs of framework ``name``; None when it was skipped or not asked for."""
        run = self.frameworks.get(name)
        return None if run is None else run.epochs


def dtype_ratios(training: Sequence[TrainingCell]) -> dict[str, dict[str, float]]:
    """Per dataset and batch (``<dataset>/<batch>``), each framework's median float64
    epoch over its float32 one."""
    by = {(r.dataset, r.dtype, r.batch): r for r in training}
    out: dict[str, dict[str, float]] = {}
    for (dataset, dtype, batch), r64 in by.items():
        r32 = by.get((dataset, "float32", batch))
        if dtype != "float64" or r32 is None:
            continue
        ratios: dict[str, float] = {}
        for name in r64.frameworks:
            e64, e32 = r64.epochs(name), r32.epochs(name)
            if e64 is not None and e32 is not None:
                ratios[name] = e64.median / e32.median
        out[f"{dataset}/{batch}"] = ratios
    return out
