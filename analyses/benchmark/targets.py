"""The targets fmlp's training speed and memory are held to, each checked against the
synthetic cells of one setting's record.

fmlp is a functional library: every step returns new parameters. The targets say what
that may cost: fmlp trains in at most three quarters of PyTorch eager's time and no
slower than a jitted JAX epoch, its products reach three quarters of the machine's
sgemm peak, it is at most 15% slower than an in-place numpy loop doing the same
arithmetic, float64 costs it no more than about twice float32 (what BLAS allows), and a
10-epoch ``fit`` on MNIST stays under 1 GB of resident memory. A target is judged in
every setting measured; where it is meant for one setting, its note says which."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Final

import attrs

from analyses.benchmark.cells import TrainingCell
from analyses.benchmark.memory import Memory

RSS_LIMIT_MB: Final = 1000.0


@attrs.frozen
class Target:
    """A target: the measured ``value`` against ``threshold``; ``met`` is None when the
    value was not measured."""

    name: str
    value: float | None
    threshold: float
    met: bool | None
    note: str


def _cell(training: Sequence[TrainingCell], dtype: str, batch: int) -> TrainingCell | None:
    """The synthetic cell of ``dtype`` and ``batch``, or None when it was not measured."""
    for r in training:
        if r.dataset == "synthetic" and r.dtype == dtype and r.batch == batch:
            return r
    return None


def _target(name: str, value: float | None, threshold: float, *, below: bool, note: str) -> Target:
    met = (
        None
        if value is None or not math.isfinite(value)
        else (value <= threshold if below else value >= threshold)
    )
    return Target(name=name, value=value, threshold=threshold, met=met, note=note)


def evaluate_targets(
    training: Sequence[TrainingCell],
    float64_over_float32: Mapping[str, Mapping[str, float]],
    memory: Memory,
) -> tuple[Target, ...]:
    """Every target, measured on the synthetic cells of one setting, its float64 over
    float32 ratios and its memory children."""
    out = []
    c128 = _cell(training, "float32", 128)
    torch_r = c128.ratios.get("fmlp/torch") if c128 else None
    jax_r = c128.ratios.get("fmlp/jax") if c128 else None
    out.append(
        _target(
            "fmlp/torch epoch time, float32, batch 128",
            torch_r.of_medians if torch_r else None,
            0.75,
            below=True,
            note="meant for the default setting, the environment the studies run in",
        )
    )
    out.append(
        _target(
            "fmlp/jax epoch time, float32, batch 128",
            jax_r.of_medians if jax_r else None,
            1.0,
            below=True,
            note="meant for the native setting (XLA does not use OpenBLAS's kernel)",
        )
    )
    c256 = _cell(training, "float32", 256)
    frac = c256.peak_fraction.get("fmlp") if c256 else None
    out.append(
        _target(
            "fmlp fraction of the sgemm peak, float32, batch 256",
            frac,
            0.75,
            below=False,
            note="meant for the native setting, OpenBLAS's own kernel choice",
        )
    )
    refs = [
        ratio.of_medians for t in training if (ratio := t.ratios.get("fmlp/reference")) is not None
    ]
    out.append(
        _target(
            "fmlp/reference epoch time, worst cell",
            max(refs) if refs else None,
            1.15,
            below=True,
            note="over every dataset, dtype and batch measured",
        )
    )
    d = [
        v["fmlp"]
        for k, v in float64_over_float32.items()
        if k.startswith("synthetic/") and "fmlp" in v
    ]
    out.append(
        _target(
            "fmlp float64/float32 epoch time, worst batch",
            max(d) if d else None,
            2.2,
            below=True,
            note="the reference loop's ratio, in float64_over_float32, shows what BLAS allows",
        )
    )
    child = memory.children.get("fmlp")
    peak = child.peak if child is not None else None
    out.append(
        _target(
            f"peak RSS (MB) of a {peak.epochs if peak else '?'}-epoch fmlp.fit, float32, on "
            f"{peak.dataset if peak else '?'}",
            peak.peak_rss_mb if peak else None,
            RSS_LIMIT_MB,
            below=True,
            note="meant for 10 epochs on MNIST, the default run (--quick measures less)",
        )
    )
    return tuple(out)
