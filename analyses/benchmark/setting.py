"""The records a run writes: one setting's record (``<out>/benchmark/<setting>.json``,
everything measured under one OpenBLAS setting) and the summary of every setting
measured so far (``<out>/benchmark/summary.json``), with the rows of its table. Both
are files of their own, with a schema version: a file written by other code, or a
malformed one, is refused with a message that names the field."""

from __future__ import annotations

from typing import ClassVar

import attrs

from analyses.benchmark.cells import TrainingCell
from analyses.benchmark.config import BenchConfig
from analyses.benchmark.data import DataLoading, Evaluation
from analyses.benchmark.gemm import GemmTimes
from analyses.benchmark.memory import Memory
from analyses.benchmark.targets import Target
from analyses.machine import BlasInfo, MachineInfo
from analyses.pipeline.records import JsonRecord


@attrs.frozen
class ThreadsInfo:
    """The threads each library used: numpy's BLAS, torch (None without torch), the
    cores, the ``--threads`` asked for, XLA_FLAGS and jax's devices (None without jax)."""

    numpy_blas: int
    torch: int | None
    cpu_count: int | None
    requested: int | None
    xla_flags: str | None
    jax_devices: tuple[str, ...] | None


@attrs.frozen
class LoadAvg:
    """The 1, 5 and 15-minute load averages at the start and at the end of a setting."""

    start: tuple[float, ...]
    end: tuple[float, ...]


@attrs.frozen
class SettingRecord(JsonRecord):
    """Everything measured under one OpenBLAS setting ("default", "native",
    "coretype-<NAME>"): the environment (``openblas_env``: the two variables, None
    where unset; ``same_as_native`` when neither is set), the machine, BLAS and threads,
    the options, the GEMM times, the training cells, evaluation, data loading, memory,
    each framework's float64 over float32 time per ``<dataset>/<batch>``, the targets,
    notes, and the setting's wall time."""

    SCHEMA: ClassVar[int] = 2

    setting: str
    openblas_env: dict[str, str | None]
    same_as_native: bool
    machine: MachineInfo
    blas: tuple[BlasInfo, ...]
    threads: ThreadsInfo
    config: BenchConfig
    gemm: GemmTimes
    training: tuple[TrainingCell, ...]
    evaluation: Evaluation
    data_loading: DataLoading
    memory: Memory
    float64_over_float32: dict[str, dict[str, float]]
    targets: tuple[Target, ...]
    notes: tuple[str, ...]
    load_avg: LoadAvg
    wall_seconds: float


@attrs.frozen
class TableRow:
    """One cell as a row of the summary's table: each framework's median seconds per
    epoch (None where skipped), JAX's compilation, fmlp's GFLOP/s and peak fraction, the
    GEMM-only epoch and fmlp's ratios of medians (None where a side is missing)."""

    setting: str
    dataset: str
    dtype: str
    batch: int
    seconds: dict[str, float | None]
    jax_compile_seconds: float | None
    fmlp_gflops: float | None
    fmlp_peak_fraction: float | None
    gemm_bound_seconds: float
    ratios: dict[str, float | None]


@attrs.frozen
class BenchmarkSummary(JsonRecord):
    """Every setting measured so far, by name, and the rows of their table."""

    SCHEMA: ClassVar[int] = 2

    settings: dict[str, SettingRecord]
    table: tuple[TableRow, ...]
