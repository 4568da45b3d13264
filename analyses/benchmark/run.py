"""One setting measured from start to end in this process: the GEMM peak, every training
cell (read back from the results store when measured before with the same key, see
``cells``), evaluation, data loading, the memory children, and the record that holds
them with its targets."""

from __future__ import annotations

import hashlib
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import fmlp
from analyses.benchmark.cells import CellResult, CellTask, TrainingCell, dtype_ratios
from analyses.benchmark.config import BenchConfig
from analyses.benchmark.data import get_data, measure_evaluation, measure_loading
from analyses.benchmark.environment import (
    blas_info,
    limited_threads,
    load_avg,
    openblas_env,
    threads_of_blas,
    torch_threads,
    torch_threads_as,
    xla_flags,
)
from analyses.benchmark.flops import batch_sizes_of_epoch, epoch_flops
from analyses.benchmark.gemm import GemmTimes, measure_gemm
from analyses.benchmark.jax_loop import import_jax
from analyses.benchmark.memory import Memory, RssReport, measure_rss, peak_rss_mb
from analyses.benchmark.setting import LoadAvg, SettingRecord, ThreadsInfo
from analyses.benchmark.spec import SIZES
from analyses.benchmark.targets import evaluate_targets
from analyses.benchmark.training import ratios
from analyses.datasets import StudyData
from analyses.machine import machine_info
from analyses.pipeline.records import to_json
from analyses.pipeline.store import ResultStore
from analyses.pipeline.tasks import Outcome


def source_hash() -> str:
    """sha256 of fmlp's source files and the benchmark's: a changed implementation is
    measured afresh, an unchanged one resumes from finished cells."""
    h = hashlib.sha256()
    fmlp_root = Path(fmlp.__file__).resolve().parent
    bench_root = Path(__file__).resolve().parent
    for path in [*sorted(fmlp_root.glob("*.py")), *sorted(bench_root.glob("*.py"))]:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def run_setting(
    cfg: BenchConfig, setting: str, store: ResultStore, *, fresh: bool, quiet: bool
) -> SettingRecord:
    """Measure everything under the current process's environment, as ``setting``, with
    every library limited to ``cfg.threads`` threads when given; torch always uses as many
    threads as numpy's BLAS, so that the two compare like with like. Training cells are
    kept in ``store``; a cell stored with the same key is read back, not measured again,
    unless ``fresh``."""
    # threads_of_blas() is read once limited_threads has applied its limit
    with limited_threads(cfg.threads) as notes, torch_threads_as(threads_of_blas()):
        return _run_setting(cfg, setting, store, fresh=fresh, quiet=quiet, notes=list(notes))


def _run_setting(
    cfg: BenchConfig,
    setting: str,
    store: ResultStore,
    *,
    fresh: bool,
    quiet: bool,
    notes: list[str],
) -> SettingRecord:
    t_start = time.perf_counter()
    load_start = load_avg()
    threads = threads_of_blas()
    jax = import_jax() if "jax" in cfg.frameworks else None
    if "jax" in cfg.frameworks and jax is None:
        notes.append("jax is not installed: its column is skipped (pip install -e '.[bench]')")
    env = openblas_env()
    if setting == "default" and not any(env.values()):
        notes.append(
            "the inherited environment sets neither OPENBLAS_CORETYPE nor OPENBLAS_L2_SIZE: "
            "this setting is OpenBLAS's native kernel choice"
        )

    def log(msg: str) -> None:
        if not quiet:
            print(f"[benchmark:{setting}] {msg}", file=sys.stderr)

    log(f"GEMM peak and training shapes (load {load_avg()})")
    gemm = measure_gemm(
        cfg.dtypes,
        cfg.batch_sizes,
        size=cfg.gemm_size,
        reps=cfg.gemm_reps,
        shape_reps=cfg.gemm_shape_reps,
        min_seconds=0.1 if cfg.quick else 3.0,
        shape_min_seconds=0.01 if cfg.quick else 0.3,
    )
    source = source_hash()
    training: list[TrainingCell] = []
    data_cache: dict[tuple[str, str], StudyData] = {}
    for dataset in cfg.datasets:
        for dtype in cfg.dtypes:
            for batch in cfg.batch_sizes:
                task = CellTask(
                    setting=setting,
                    openblas_env=env,
                    source=source,
                    n_train=cfg.n_train,
                    xla_flags=xla_flags(),
                    epochs=cfg.epochs,
                    warmup=cfg.warmup,
                    frameworks=cfg.frameworks,
                    threads=threads,
                    jax=jax is not None,
                    quick=cfg.quick,
                    dataset=dataset,
                    dtype=dtype,
                    batch=batch,
                )
                if fresh:
                    store.run_path(task).unlink(missing_ok=True)
                result, now = cell_result(store, task, cfg, data_cache, jax, log)
                training.append(_training_cell(task, result, gemm, computed_now=now))
    data_cache.clear()

    log("evaluation throughput and data loading")
    eval_data = get_data(cfg.datasets[-1], "float64", cfg.eval_samples, cfg.eval_samples)
    evaluation = measure_evaluation(
        eval_data, cfg.dtypes, cfg.eval_samples, cfg.eval_reps, dataset=cfg.datasets[-1]
    )
    loading = measure_loading(cfg.dataset, cfg.dtypes, cfg.load_reps)

    children: dict[str, RssReport] = {}
    if cfg.rss:
        for name in cfg.rss_frameworks:
            epochs = cfg.rss_epochs if name == "fmlp" else 1
            log(f"peak memory of {name} ({epochs} epochs) in a child process")
            children[name] = measure_rss(
                name,
                dtype="float32",
                batch=cfg.rss_batch,
                epochs=epochs,
                n_train=cfg.n_train,
                dataset=cfg.rss_dataset,
                threads=cfg.threads,
            )
    memory = Memory(parent_peak_rss_mb=peak_rss_mb(), children=children)
    f64 = dtype_ratios(training)
    return SettingRecord(
        setting=setting,
        openblas_env=env,
        same_as_native=not any(env.values()),
        machine=machine_info(),
        blas=blas_info(),
        threads=ThreadsInfo(
            numpy_blas=threads,
            torch=torch_threads(),
            cpu_count=os.cpu_count(),
            requested=cfg.threads,
            xla_flags=xla_flags(),
            jax_devices=tuple(str(d) for d in jax.devices()) if jax is not None else None,
        ),
        config=cfg,
        gemm=gemm,
        training=tuple(training),
        evaluation=evaluation,
        data_loading=loading,
        memory=memory,
        float64_over_float32=f64,
        targets=evaluate_targets(training, f64, memory),
        notes=tuple(notes),
        load_avg=LoadAvg(start=tuple(load_start), end=tuple(load_avg())),
        wall_seconds=time.perf_counter() - t_start,
    )


def cell_result(
    store: ResultStore,
    task: CellTask,
    cfg: BenchConfig,
    data_cache: dict[tuple[str, str], StudyData],
    jax: ModuleType | None,
    log: Callable[[str], None],
) -> tuple[CellResult, bool]:
    """The cell's result as stored, or measured now and stored; the flag says whether it
    was measured now. ``data_cache`` keeps the data last made, since the cells of one
    dataset and dtype follow each other."""
    stored = store.get(task)
    if stored is not None and isinstance(stored.result, CellResult):
        return stored.result, False
    key = (task.dataset, task.dtype)
    if key not in data_cache:
        data_cache.clear()
        data_cache[key] = get_data(task.dataset, task.dtype, cfg.n_train, cfg.eval_samples)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    result = task.measure(data_cache[key], jax, log)
    store.put(
        task,
        Outcome(
            result=to_json(result),
            failure=None,
            wall_seconds=time.perf_counter() - wall0,
            cpu_seconds=time.process_time() - cpu0,
            worker=f"{platform.node()}:{os.getpid()}",
        ),
    )
    return result, True


def _training_cell(
    task: CellTask, result: CellResult, gemm: GemmTimes, *, computed_now: bool
) -> TrainingCell:
    """The cell as its setting's record shows it: with its GEMM bound, each framework's
    fraction of the GEMM peak of its dtype, and fmlp's ratios."""
    n = result.n_train
    flops = epoch_flops(SIZES, n, task.batch)
    peak = gemm.peak[task.dtype].gflops_best
    step_gflops = gemm.shapes[task.dtype][str(task.batch)].step_gflops
    return TrainingCell(
        dataset=task.dataset,
        dtype=task.dtype,
        batch=task.batch,
        n_train=n,
        steps_per_epoch=len(batch_sizes_of_epoch(n, task.batch)),
        epoch_flops=flops,
        gemm_bound_seconds=flops / step_gflops / 1e9,
        load_avg=result.load_avg,
        frameworks=result.frameworks,
        peak_fraction={
            name: run.epochs.gflops / peak
            for name, run in result.frameworks.items()
            if run.epochs is not None
        },
        ratios=ratios(result.frameworks),
        computed_now=computed_now,
    )
