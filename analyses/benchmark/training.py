"""One training cell (dataset, dtype, batch): every framework from the same weights, in the
same sample order, interleaved epoch by epoch in one process, and the statistics of its
epoch times (medians, spreads, fmlp's ratios to the others), as records."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Final, Protocol

import attrs
import numpy as np

import fmlp
from analyses.benchmark.environment import torch_threads
from analyses.benchmark.flops import epoch_flops
from analyses.benchmark.jax_loop import JaxLoop, x64_restored
from analyses.benchmark.numpy_loops import ReferenceLoop, fit_fmlp
from analyses.benchmark.spec import SEED, SIZES
from analyses.benchmark.torch_loop import TorchLoop
from fmlp import MLP, tree_leaves
from fmlp.train import epoch_order
from fmlp.types import FloatArray, IntArray


@attrs.frozen
class Epochs:
    """One framework's epochs in one cell: wall seconds of the measured epochs (and of the
    warm-up ones apart), their median, min, max, interquartile range and spread
    ((max - min) / median); process CPU seconds of each measured epoch and their median;
    the epoch's FLOPs over the median (``gflops``); JAX's compilation (else None); the
    largest |difference| between its final parameters and fmlp's (None without fmlp)."""

    seconds: tuple[float, ...]
    warmup_seconds: tuple[float, ...]
    median: float
    min: float
    max: float
    iqr: float
    spread: float
    cpu_seconds: tuple[float, ...]
    cpu_median: float
    gflops: float
    compile_seconds: float | None
    param_max_abs_diff: float | None


@attrs.frozen
class FrameworkRun:
    """A framework in a cell: its ``epochs``, or (None) the ``note`` that says why it was
    skipped."""

    epochs: Epochs | None
    note: str | None = None

    @property
    def skipped(self) -> bool:
        return self.epochs is None


@attrs.frozen
class Ratio:
    """fmlp's time over another framework's in one cell: of the medians, the median of the
    per-epoch ratios (the epochs were interleaved, so each pair saw the same load), of the
    minima, and of the median CPU times."""

    of_medians: float
    paired_median: float
    of_mins: float
    cpu_of_medians: float


RATIO_NAMES: Final[tuple[str, ...]] = ("fmlp/torch", "fmlp/jax", "fmlp/reference")


def describe(seconds: Sequence[float]) -> dict[str, float]:
    """median, min, max, interquartile range and relative spread (max - min) / median."""
    s = np.asarray(seconds, dtype=np.float64)
    if s.size == 0:
        raise ValueError("describe needs at least one measurement")
    med = float(np.median(s))
    q1, q3 = np.percentile(s, [25, 75])
    return {
        "median": med,
        "min": float(s.min()),
        "max": float(s.max()),
        "iqr": float(q3 - q1),
        "spread": float((s.max() - s.min()) / med) if med > 0 else math.nan,
    }


def max_abs_diff(a: MLP, b: MLP) -> float:
    """The largest |difference| between the parameters of two MLPs, in float64."""
    return max(
        float(np.max(np.abs(p.astype(np.float64) - q.astype(np.float64))))
        for p, q in zip(tree_leaves(a), tree_leaves(b), strict=True)
    )


class Loop(Protocol):
    """A framework's training loop as a cell drives it: made from the initial parameters
    and the training set, it trains one epoch visiting the samples in ``order`` (fmlp's
    ``epoch_order``) and gives back its parameters as an MLP."""

    def epoch(self, order: IntArray) -> None: ...

    def params(self) -> MLP: ...


def make_loop(
    name: str, params: MLP, x: FloatArray, y: IntArray, batch: int, jax: ModuleType | None
) -> Loop:
    """The training loop of framework ``name`` ("reference", "torch" or "jax"; fmlp trains
    through ``fit_fmlp``), from ``params`` on (x, y) at ``batch``."""
    if name == "reference":
        return ReferenceLoop(params, x, y, batch)
    if name == "torch":
        return TorchLoop(params, x, y, batch)
    if name == "jax" and jax is not None:
        return JaxLoop(jax, params, x, y, batch)
    raise ValueError(f"no training loop for {name!r} (jax: {jax is not None})")


def train_cell(
    x: FloatArray,
    y: IntArray,
    batch: int,
    *,
    frameworks: Sequence[str],
    epochs: int,
    warmup: int,
    jax: ModuleType | None,
) -> dict[str, FrameworkRun]:
    """Seconds per epoch of every framework on (x, y), interleaved epoch by epoch: fmlp's
    ``fit`` runs the epochs and the others run theirs in its epoch callback. Each library
    uses the threads this process gives it (see ``environment``)."""
    with x64_restored(jax):  # a float64 cell turns it on
        return _train_cell(
            x, y, batch, frameworks=frameworks, epochs=epochs, warmup=warmup, jax=jax
        )


def _train_cell(
    x: FloatArray,
    y: IntArray,
    batch: int,
    *,
    frameworks: Sequence[str],
    epochs: int,
    warmup: int,
    jax: ModuleType | None,
) -> dict[str, FrameworkRun]:
    n = x.shape[0]
    p0 = fmlp.init(SIZES, seed=SEED, dtype=x.dtype)
    total = warmup + epochs
    others: dict[str, Loop] = {}
    compile_s: dict[str, float] = {}
    notes: dict[str, str] = {}
    for name in frameworks:
        if name == "fmlp":
            continue
        if name == "torch" and torch_threads() is None:
            notes[name] = "torch is not installed"
        elif name == "jax" and jax is None:
            notes[name] = "jax is not installed (pip install -e '.[bench]')"
        else:
            loop = others[name] = make_loop(name, p0, x, y, batch, jax)
            if isinstance(loop, JaxLoop):
                compile_s[name] = loop.compile_seconds
    times: dict[str, list[float]] = {name: [] for name in [*others, "fmlp"]}
    cpu: dict[str, list[float]] = {name: [] for name in [*others, "fmlp"]}
    fmlp_cpu_start = [0.0]

    def run_others(epoch: int) -> None:
        cpu["fmlp"].append(time.process_time() - fmlp_cpu_start[0])
        order = epoch_order(n, SEED, epoch)
        for name, loop in others.items():
            t0, c0 = time.perf_counter(), time.process_time()
            loop.epoch(order)
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
        fmlp_cpu_start[0] = time.process_time()

    final: dict[str, MLP] = {}
    if "fmlp" in frameworks:
        fmlp_cpu_start[0] = time.process_time()
        state, metrics = fit_fmlp(
            p0, x, y, epochs=total, batch=batch, callback=lambda epoch, m: run_others(epoch)
        )
        times["fmlp"] = [float(s) for s in metrics.seconds]
        final["fmlp"] = state.params
    else:
        for epoch in range(total):
            run_others(epoch)
    for name, loop in others.items():
        final[name] = loop.params()
    flops = epoch_flops(SIZES, n, batch)
    out: dict[str, FrameworkRun] = {}
    for name in frameworks:
        if name in notes:
            out[name] = FrameworkRun(epochs=None, note=notes[name])
            continue
        secs = times[name]
        stats = describe(secs[warmup:])
        out[name] = FrameworkRun(
            Epochs(
                seconds=tuple(secs[warmup:]),
                warmup_seconds=tuple(secs[:warmup]),
                median=stats["median"],
                min=stats["min"],
                max=stats["max"],
                iqr=stats["iqr"],
                spread=stats["spread"],
                cpu_seconds=tuple(cpu[name][warmup:]),
                cpu_median=float(np.median(cpu[name][warmup:])),
                gflops=flops / stats["median"] / 1e9,
                compile_seconds=compile_s.get(name),
                param_max_abs_diff=(
                    max_abs_diff(final[name], final["fmlp"]) if "fmlp" in final else None
                ),
            )
        )
    return out


def ratios(fw: Mapping[str, FrameworkRun]) -> dict[str, Ratio | None]:
    """fmlp over each other framework (``RATIO_NAMES``), None where either side was not
    measured."""
    out: dict[str, Ratio | None] = {}
    f = fw["fmlp"].epochs if "fmlp" in fw else None
    for key in RATIO_NAMES:
        other = key.removeprefix("fmlp/")
        o = fw[other].epochs if other in fw else None
        if f is None or o is None:
            out[key] = None
            continue
        paired = np.asarray(f.seconds) / np.asarray(o.seconds)
        out[key] = Ratio(
            of_medians=f.median / o.median,
            paired_median=float(np.median(paired)),
            of_mins=f.min / o.min,
            cpu_of_medians=f.cpu_median / o.cpu_median,
        )
    return out
