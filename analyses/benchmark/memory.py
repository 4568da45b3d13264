"""Peak resident memory: each framework trains in a child process of its own
(``python -m analyses.benchmark --rss-child NAME``) that prints its peaks as JSON (an
``RssReport``), so no framework's imports or buffers count against another's."""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import attrs

import fmlp
from analyses.benchmark.data import get_data
from analyses.benchmark.environment import (
    limited_threads,
    run_child,
    threads_of_blas,
    torch_threads_as,
)
from analyses.benchmark.jax_loop import import_jax
from analyses.benchmark.numpy_loops import fit_fmlp
from analyses.benchmark.spec import DTYPES, EVAL_SAMPLES, FRAMEWORKS, MNIST_TRAIN, SEED, SIZES
from analyses.benchmark.training import make_loop
from analyses.pipeline.records import from_json, to_json
from fmlp.train import epoch_order

MB: Final = 1e6


@attrs.frozen
class RssPeak:
    """What a memory child measured: resident memory after imports and data
    (``baseline_rss_mb``), the peak while making the data, the peak during training
    alone (the peak is reset once the data is in memory; None where it cannot be) and
    the whole child's peak (what the target compares), in MB; the training's seconds."""

    framework: str
    dtype: str
    batch: int
    epochs: int
    dataset: str
    n_train: int
    baseline_rss_mb: float
    data_peak_rss_mb: float
    training_peak_rss_mb: float | None
    peak_rss_mb: float
    seconds: float
    what: str


@attrs.frozen
class RssReport:
    """A memory child's answer: its ``peak``, or (None) the ``note`` that says why not."""

    peak: RssPeak | None
    note: str | None = None


@attrs.frozen
class Memory:
    """This process's peak and each memory child's report, in the order they ran."""

    parent_peak_rss_mb: float
    children: dict[str, RssReport]


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB: VmHWM from /proc/self/status on Linux
    (ru_maxrss of a child started by vfork + exec starts at the parent's peak, since the
    kernel folds the parent's memory into it at exec), else ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / MB
    except OSError:
        pass
    scale = 1.0 if sys.platform == "darwin" else 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / MB


def current_rss_mb() -> float:
    """This process's resident memory now (VmRSS), in MB; NaN where /proc is absent."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024 / MB
    except OSError:
        pass
    return math.nan


def reset_peak_rss() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux: "5" into clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def rss_child_main(argv: Sequence[str]) -> int:
    """A child process that trains one framework and prints its peak memory as JSON."""
    parser = argparse.ArgumentParser(prog="analyses.benchmark --rss-child")
    parser.add_argument("--rss-child", required=True, choices=FRAMEWORKS)
    parser.add_argument("--dtype", default="float32", choices=DTYPES)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--n-train", type=int, default=MNIST_TRAIN)
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    with limited_threads(args.threads, import_torch=False):
        return _rss_child(args)


def _rss_child(args: argparse.Namespace) -> int:
    name: str = args.rss_child
    jax = import_jax() if name == "jax" else None
    if name == "jax" and jax is None:
        print(json.dumps(to_json(RssReport(peak=None, note="jax is not installed"))))
        return 0
    if name == "torch":
        import torch  # noqa: F401  # imported before the baseline, like jax

    data = get_data(args.dataset, args.dtype, args.n_train, EVAL_SAMPLES)
    x, y = data.x_train, data.y_train
    data_peak = peak_rss_mb()
    baseline = current_rss_mb()
    reset = reset_peak_rss()  # so the training's own peak can be told from the data's
    p0 = fmlp.init(SIZES, seed=SEED, dtype=args.dtype)
    t0 = time.perf_counter()
    # torch, imported above only in its own child, uses as many threads as numpy's BLAS
    with torch_threads_as(threads_of_blas(), import_torch=False):
        if name == "fmlp":
            fit_fmlp(
                p0,
                x,
                y,
                epochs=args.epochs,
                batch=args.batch,
                validation=(data.x_valid, data.y_valid),
            )
        else:
            loop = make_loop(name, p0, x, y, args.batch, jax)
            for epoch in range(args.epochs):
                loop.epoch(epoch_order(x.shape[0], SEED, epoch))
    peak = RssPeak(
        framework=name,
        dtype=args.dtype,
        batch=args.batch,
        epochs=args.epochs,
        dataset=args.dataset,
        n_train=int(x.shape[0]),
        baseline_rss_mb=baseline,
        data_peak_rss_mb=data_peak,
        training_peak_rss_mb=peak_rss_mb() if reset else None,
        peak_rss_mb=max(data_peak, peak_rss_mb()),
        seconds=time.perf_counter() - t0,
        what="fmlp.fit with train and validation evaluation each epoch"
        if name == "fmlp"
        else "training epochs",
    )
    print(json.dumps(to_json(RssReport(peak=peak))))
    return 0


def measure_rss(
    framework: str,
    *,
    dtype: str,
    batch: int,
    epochs: int,
    n_train: int,
    dataset: str,
    threads: int | None,
) -> RssReport:
    """Peak memory of ``framework`` training in a child process of its own, as the child
    reports it, or a note when the child fails."""
    cmd = [
        "--rss-child",
        framework,
        "--dtype",
        dtype,
        "--batch",
        str(batch),
        "--epochs",
        str(epochs),
        "--n-train",
        str(n_train),
        "--dataset",
        dataset,
    ]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    proc = run_child(cmd, capture=True)
    if proc.returncode != 0:
        return RssReport(
            peak=None, note=f"child failed ({proc.returncode}): {proc.stderr.strip()[-500:]}"
        )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return RssReport(peak=None, note=f"child printed no result: {proc.stdout.strip()[-300:]}")
    return from_json(RssReport, json.loads(lines[-1]))
