"""The options of one benchmark run as a frozen record, made from the command line with
the quick-mode defaults and the checks of every value."""

from __future__ import annotations

import argparse

import attrs

from analyses.benchmark.data import dataset_cached
from analyses.benchmark.gemm import GEMM_SIZE
from analyses.benchmark.spec import EVAL_SAMPLES, MNIST_TRAIN
from analyses.datasets import QUICK_EVAL, QUICK_TRAIN


@attrs.frozen
class BenchConfig:
    """The options of one run once the defaults are filled in: the cells measured,
    the repetitions of each measurement and the memory children."""

    quick: bool
    n_train: int
    epochs: int
    warmup: int
    batch_sizes: tuple[int, ...]
    dtypes: tuple[str, ...]
    frameworks: tuple[str, ...]
    datasets: tuple[str, ...]
    gemm_size: int
    gemm_reps: int
    gemm_shape_reps: int
    eval_samples: int
    eval_reps: int
    load_reps: int
    rss: bool
    rss_epochs: int
    rss_batch: int
    rss_dataset: str
    rss_frameworks: tuple[str, ...]
    threads: int | None
    dataset: str


def make_config(args: argparse.Namespace) -> BenchConfig:
    """The run's options from the parsed command line, with the quick-mode defaults; a bad
    value exits with a message that names its option."""
    quick: bool = args.quick
    for b in args.batch_sizes:
        if b <= 0:
            raise SystemExit(f"--batch-sizes must be positive integers, got {args.batch_sizes}")
    if args.epochs is not None and args.epochs <= 0:
        raise SystemExit(f"--epochs must be a positive integer, got {args.epochs}")
    if args.warmup is not None and args.warmup < 0:
        raise SystemExit(f"--warmup must be 0 or more, got {args.warmup}")
    if args.n_train is not None and args.n_train <= 0:
        raise SystemExit(f"--n-train must be a positive integer, got {args.n_train}")
    real = args.real_data
    cached = dataset_cached(args.dataset)
    if real == "yes" and not cached:
        raise SystemExit(
            f"--real-data yes but {args.dataset} is not in the cache; "
            f"run: python -m fmlp.data fetch {args.dataset}"
        )
    use_real = real == "yes" or (real == "auto" and cached and not quick)
    n_train = args.n_train if args.n_train is not None else (QUICK_TRAIN if quick else MNIST_TRAIN)
    return BenchConfig(
        quick=quick,
        n_train=n_train,
        epochs=args.epochs if args.epochs is not None else (1 if quick else 5),
        warmup=args.warmup if args.warmup is not None else 1,
        batch_sizes=tuple(args.batch_sizes),
        dtypes=tuple(args.dtypes),
        frameworks=tuple(dict.fromkeys(args.frameworks)),
        datasets=("synthetic", args.dataset) if use_real else ("synthetic",),
        gemm_size=256 if quick else GEMM_SIZE,
        gemm_reps=3 if quick else 7,
        gemm_shape_reps=1 if quick else 20,
        eval_samples=QUICK_EVAL if quick else EVAL_SAMPLES,
        eval_reps=1 if quick else 5,
        load_reps=1 if quick else 3,
        rss=not args.no_rss,
        rss_epochs=args.rss_epochs if args.rss_epochs is not None else (1 if quick else 10),
        rss_batch=128,
        rss_dataset=args.dataset if use_real else "synthetic",
        rss_frameworks=("fmlp",) if quick else tuple(dict.fromkeys(args.frameworks)),
        threads=args.threads,
        dataset=args.dataset,
    )
