"""One setting measured from start to end in this process: the GEMM peak, every training
cell (resumed from the results store when the implementation is unchanged), evaluation,
data loading, the memory children, and the record that holds them with its targets."""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fmlp
from analyses.benchmark.config import BenchConfig
from analyses.benchmark.data import get_data, measure_evaluation, measure_loading
from analyses.benchmark.environment import (
    limited_threads,
    load_avg,
    openblas_env,
    threads_of_blas,
    torch_threads,
    torch_threads_as,
    xla_flags,
)
from analyses.benchmark.flops import batch_sizes_of_epoch, epoch_flops
from analyses.benchmark.gemm import measure_gemm
from analyses.benchmark.jax_loop import import_jax
from analyses.benchmark.memory import measure_rss, peak_rss_mb
from analyses.benchmark.spec import SIZES
from analyses.benchmark.store import ResultStore, blas_info
from analyses.benchmark.targets import evaluate_targets
from analyses.benchmark.training import dtype_ratios, ratios, train_cell
from analyses.common import StudyData, machine_info
from analyses.pipeline.records import to_json


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
) -> dict[str, Any]:
    """Measure everything under the current process's environment, as ``setting``, with
    every library limited to ``cfg.threads`` threads when given; torch always uses as many
    threads as numpy's BLAS, so that the two compare like with like."""
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
) -> dict[str, Any]:
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
    base_cfg = {
        "setting": setting,
        "openblas_env": env,
        "source": source_hash(),
        "n_train": cfg.n_train,
        "xla_flags": xla_flags(),
        "epochs": cfg.epochs,
        "warmup": cfg.warmup,
        "frameworks": list(cfg.frameworks),
        "threads": threads,
        "jax": jax is not None,
        "quick": cfg.quick,
    }
    training: list[dict[str, Any]] = []
    data_cache: dict[tuple[str, str], StudyData] = {}
    for dataset in cfg.datasets:
        for dtype in cfg.dtypes:
            for batch in cfg.batch_sizes:
                cell_cfg = {**base_cfg, "dataset": dataset, "dtype": dtype, "batch": batch}
                if fresh:
                    store.path(cell_cfg).unlink(missing_ok=True)

                compute = functools.partial(
                    _measure_cell, cfg, dataset, dtype, batch, data_cache, jax, log
                )
                result, now = store.run(cell_cfg, compute)
                n = int(result["n_train"])
                flops = epoch_flops(SIZES, n, batch)
                peak = gemm["peak"][dtype]["gflops_best"]
                fw = result["frameworks"]
                for rec in fw.values():
                    if not rec.get("skipped"):
                        rec["peak_fraction"] = rec["gflops"] / peak
                step_gflops = gemm["shapes"][dtype][str(batch)]["step_gflops"]
                training.append(
                    {
                        "dataset": dataset,
                        "dtype": dtype,
                        "batch": batch,
                        "n_train": n,
                        "steps_per_epoch": len(batch_sizes_of_epoch(n, batch)),
                        "epoch_flops": flops,
                        "gemm_bound_seconds": flops / step_gflops / 1e9,
                        "load_avg": result["load_avg"],
                        "frameworks": fw,
                        "ratios": ratios(fw),
                        "computed_now": now,
                    }
                )
    data_cache.clear()

    log("evaluation throughput and data loading")
    eval_data = get_data(cfg.datasets[-1], "float64", cfg.eval_samples, cfg.eval_samples)
    evaluation = measure_evaluation(eval_data, cfg.dtypes, cfg.eval_samples, cfg.eval_reps)
    evaluation["dataset"] = cfg.datasets[-1]
    loading = measure_loading(cfg.dataset, cfg.dtypes, cfg.load_reps)

    memory: dict[str, Any] = {"children": {}}
    if cfg.rss:
        for name in cfg.rss_frameworks:
            epochs = cfg.rss_epochs if name == "fmlp" else 1
            log(f"peak memory of {name} ({epochs} epochs) in a child process")
            memory["children"][name] = measure_rss(
                name,
                dtype="float32",
                batch=cfg.rss_batch,
                epochs=epochs,
                n_train=cfg.n_train,
                dataset=cfg.rss_dataset,
                threads=cfg.threads,
            )
    memory["parent_peak_rss_mb"] = peak_rss_mb()

    record: dict[str, Any] = {
        "setting": setting,
        "openblas_env": env,
        "same_as_native": not any(env.values()),
        "machine": to_json(machine_info()),
        "blas": blas_info(),
        "threads": {
            "numpy_blas": threads,
            "torch": torch_threads(),
            "cpu_count": os.cpu_count(),
            "requested": cfg.threads,
            "xla_flags": xla_flags(),
            "jax_devices": [str(d) for d in jax.devices()] if jax is not None else None,
        },
        "config": cfg.as_dict(),
        "gemm": gemm,
        "training": training,
        "evaluation": evaluation,
        "data_loading": loading,
        "memory": memory,
        "notes": notes,
    }
    record["float64_over_float32"] = dtype_ratios(training)
    record["targets"] = evaluate_targets(record)
    record["load_avg"] = {"start": load_start, "end": load_avg()}
    record["wall_seconds"] = time.perf_counter() - t_start
    return record


def _measure_cell(
    cfg: BenchConfig,
    dataset: str,
    dtype: str,
    batch: int,
    data_cache: dict[tuple[str, str], StudyData],
    jax: Any | None,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """What the results store keeps of one cell: every framework's epochs on ``dataset`` in
    ``dtype`` at ``batch``. ``data_cache`` keeps the data last made, since the cells of one
    dataset and dtype follow each other."""
    key = (dataset, dtype)
    if key not in data_cache:
        data_cache.clear()
        data_cache[key] = get_data(dataset, dtype, cfg.n_train, cfg.eval_samples)
    d = data_cache[key]
    log(f"{dataset} {dtype} batch {batch} (load {load_avg()})")
    la = load_avg()
    fw = train_cell(
        d.x_train,
        d.y_train,
        batch,
        frameworks=cfg.frameworks,
        epochs=cfg.epochs,
        warmup=cfg.warmup,
        jax=jax,
    )
    return {
        "frameworks": fw,
        "load_avg": [la, load_avg()],
        "n_train": int(d.x_train.shape[0]),
    }
