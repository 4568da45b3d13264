"""The CNN study's statistics: bands over seeds, the aggregate of a variant, the
verdict, and the ranking of the screened techniques."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from analyses.studies.cnn.models import CNNSpec, count_params, describe, layer_table
from analyses.studies.cnn.options import TrainConfig
from analyses.studies.cnn.runs import CnnRunResult, Curves
from analyses.studies.cnn.summary import (
    TARGET_REGULARIZED,
    Aggregate,
    Band,
    SeedRun,
    Variant,
    Verdict,
)


def band(rows: Sequence[Sequence[float]]) -> Band:
    a = np.asarray(rows, dtype=np.float64)
    sd = a.std(axis=0, ddof=1) if len(a) > 1 else np.zeros(a.shape[1])
    return Band(
        mean=tuple(float(v) for v in a.mean(axis=0)),
        sd=tuple(float(v) for v in sd),
        min=tuple(float(v) for v in a.min(axis=0)),
        max=tuple(float(v) for v in a.max(axis=0)),
    )


def early_stop_epoch(curves: Curves) -> int:
    """The epoch (1-based) of the lowest validation loss; the first of ties."""
    return int(np.argmin(np.asarray(curves.valid_loss))) + 1


def aggregate(runs: Sequence[SeedRun]) -> Aggregate:
    def metric(name: str) -> Band:
        return band([getattr(r.result.curves, name) for r in runs])

    valid_error = metric("valid_error")
    valid_loss = metric("valid_loss")
    final = np.asarray([r.result.curves.valid_error[-1] for r in runs], dtype=np.float64)
    return Aggregate(
        train_loss=metric("train_loss"),
        train_error=metric("train_error"),
        valid_loss=valid_loss,
        valid_error=valid_error,
        final_valid_error=float(final.mean()),
        final_valid_error_sd=float(final.std(ddof=1)) if len(final) > 1 else 0.0,
        final_valid_accuracy=1.0 - float(final.mean()),
        final_test_error=float(np.mean([r.result.test_error for r in runs])),
        early_stop_epoch_of_mean=int(np.argmin(np.asarray(valid_loss.mean))) + 1,
    )


def variant_of(
    name: str,
    technique: str,
    spec: CNNSpec,
    train: TrainConfig,
    results: Sequence[tuple[int, CnnRunResult]],
) -> Variant:
    runs = tuple(SeedRun(seed, r, early_stop_epoch(r.curves)) for seed, r in results)
    return Variant(
        name=name,
        technique=technique,
        spec=spec,
        train=train,
        description=describe(spec),
        n_params=count_params(spec),
        layers=layer_table(spec),
        runs=runs,
        aggregate=aggregate(runs),
    )


def verdict(vanilla: Variant, chosen: Variant) -> Verdict:
    a, b = vanilla.aggregate, chosen.aggregate
    gain = a.final_valid_error - b.final_valid_error
    noise = max(a.final_valid_error_sd, b.final_valid_error_sd)
    return Verdict(
        technique=chosen.name,
        gain=gain,
        noise=noise,
        beyond_noise=gain > 2 * noise,
        target=TARGET_REGULARIZED,
        target_met=b.final_valid_accuracy >= TARGET_REGULARIZED,
    )


def selection_key(result: CnnRunResult, order: int) -> tuple[float, float, int]:
    """``SELECTION`` as a sort key (lower first)."""
    c = result.curves
    return (c.valid_error[-1], c.valid_loss[-1], order)


def rank(results: dict[str, CnnRunResult], names: Sequence[str]) -> list[str]:
    """The techniques that ran, best first by ``SELECTION`` (``names``: the order listed)."""
    ran = [n for n in names if n in results]
    return sorted(ran, key=lambda n: selection_key(results[n], names.index(n)))
