"""The machine's own limit: the time of numpy's GEMM at the peak size (2048^3) and of each
of the 8 matrix products of a training step alone, per dtype and batch, as records."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Final

import attrs
import numpy as np
from numpy.typing import DTypeLike

from analyses.benchmark.flops import GemmShape, step_flops, step_gemms
from analyses.benchmark.spec import SIZES
from fmlp.types import FloatArray

GEMM_SIZE: Final = 2048


@attrs.frozen
class GemmPeak:
    """The product size^3 of one dtype: GFLOP/s at the best time (the peak every fraction
    is of) and at the median, and every time."""

    size: int
    gflops_best: float
    gflops_median: float
    seconds: tuple[float, ...]


@attrs.frozen
class GemmProduct:
    """One of a step's products timed alone; ``gflops`` at the best time."""

    name: str
    m: int
    k: int
    n: int
    flops: int
    seconds_best: float
    seconds_median: float
    gflops: float


@attrs.frozen
class StepGemms:
    """The 8 products of a step at one dtype and batch: ``step_seconds`` is the sum of
    their best times, ``step_gflops`` the step's FLOPs over it."""

    products: tuple[GemmProduct, ...]
    step_seconds: float
    step_gflops: float


@attrs.frozen
class GemmTimes:
    """``peak`` per dtype; ``shapes`` per dtype and batch (the batch as text, a JSON key)."""

    peak: dict[str, GemmPeak]
    shapes: dict[str, dict[str, StepGemms]]


def _operands(
    g: GemmShape, dtype: DTypeLike, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray]:
    a = rng.random((g.k, g.m) if g.trans_a else (g.m, g.k)).astype(dtype)
    b = rng.random((g.n, g.k) if g.trans_b else (g.k, g.n)).astype(dtype)
    return (a.T if g.trans_a else a), (b.T if g.trans_b else b)


def time_gemm(
    g: GemmShape, dtype: DTypeLike, *, reps: int, min_seconds: float = 0.0
) -> list[float]:
    """Seconds of ``reps`` (or more, until ``min_seconds`` have passed) products
    ``np.matmul(a, b, out=c)`` after one untimed call."""
    dt = np.dtype(dtype)
    a, b = _operands(g, dt, np.random.default_rng(0))
    c = np.empty((g.m, g.n), dtype=dt)
    np.matmul(a, b, out=c)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < reps or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        np.matmul(a, b, out=c)
        times.append(time.perf_counter() - t0)
    return times


def measure_gemm(
    dtypes: Sequence[str],
    batches: Sequence[int],
    *,
    size: int,
    reps: int,
    shape_reps: int,
    min_seconds: float,
    shape_min_seconds: float,
) -> GemmTimes:
    """The GEMM peak (size^3) per dtype and each training product per dtype and batch.
    Each is repeated ``reps`` times and for at least ``min_seconds``; the best time
    stands for what the machine can do (other processes only ever slow a product down)."""
    peak: dict[str, GemmPeak] = {}
    shapes: dict[str, dict[str, StepGemms]] = {}
    for dtype in dtypes:
        g = GemmShape("peak", size, size, size)
        secs = time_gemm(g, dtype, reps=reps, min_seconds=min_seconds)
        peak[dtype] = GemmPeak(
            size=size,
            gflops_best=g.flops / min(secs) / 1e9,
            gflops_median=g.flops / float(np.median(secs)) / 1e9,
            seconds=tuple(secs),
        )
        shapes[dtype] = {}
        for batch in batches:
            rows: list[GemmProduct] = []
            for s in step_gemms(SIZES, batch):
                secs = time_gemm(s, dtype, reps=shape_reps, min_seconds=shape_min_seconds)
                best = min(secs)
                rows.append(
                    GemmProduct(
                        name=s.name,
                        m=s.m,
                        k=s.k,
                        n=s.n,
                        flops=s.flops,
                        seconds_best=best,
                        seconds_median=float(np.median(secs)),
                        gflops=s.flops / best / 1e9,
                    )
                )
            step_s = sum(r.seconds_best for r in rows)
            shapes[dtype][str(batch)] = StepGemms(
                products=tuple(rows),
                step_seconds=step_s,
                step_gflops=step_flops(SIZES, batch) / step_s / 1e9,
            )
    return GemmTimes(peak=peak, shapes=shapes)
