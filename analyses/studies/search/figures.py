"""The search's figures: the successive-halving ladder, and r(valid) by setting."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np

from analyses.figures import new_figure, save_figure

if TYPE_CHECKING:
    from analyses.studies.search.summary import Trial

OPTIMIZER_COLORS: Final = {
    "sgd": "tab:blue",
    "momentum": "tab:orange",
    "nesterov": "tab:green",
    "adam": "tab:red",
    "adamw": "tab:purple",
}
ACTIVATION_MARKERS: Final = {"relu": "o", "tanh": "s", "sigmoid": "^"}
FINALISTS_LABELLED: Final = 6


def _pct(values: Sequence[float]) -> np.ndarray:
    return 100 * np.asarray(values, dtype=np.float64)


def plot_ladder(trials: Sequence[Trial], rung_epochs: Sequence[int], folder: Path) -> list[str]:
    """r(valid) against epoch for every configuration: stopped runs thin and grey (a dot
    where they stopped), promoted ones in colour, the finalists labelled; the rungs'
    ends dashed. Right: the same on a zoomed axis around the finalists."""
    fig = new_figure(figsize=(11.5, 4.6))
    ax, zoom = fig.subplots(1, 2)
    last = rung_epochs[-1]
    finalists = [t for t in trials if t.epochs == last and t.status == "ok"]
    for a in (ax, zoom):
        for t in trials:
            if t.epochs == last or not t.val_accuracy:
                continue
            e = np.arange(1, len(t.val_accuracy) + 1)
            promoted = any(t.promoted)
            a.plot(
                e,
                _pct(t.val_accuracy),
                "-",
                lw=1.0 if promoted else 0.6,
                color="tab:olive" if promoted else "0.65",
                alpha=0.9 if promoted else 0.6,
            )
            a.plot(e[-1], 100 * t.val_accuracy[-1], ".", ms=4, color="0.4")
        for i, t in enumerate(finalists):
            e = np.arange(1, len(t.val_accuracy) + 1)
            label = f"#{t.rank} {t.config.describe()}" if i < FINALISTS_LABELLED else None
            a.plot(e, _pct(t.val_accuracy), "o-", ms=3, lw=1.4, color=f"C{i % 10}", label=label)
        for r in rung_epochs:
            a.axvline(r, color="k", ls="--", lw=0.8, alpha=0.5)
        a.axhline(97.0, color="grey", ls=":", lw=1)
        a.set_xlabel("epoch")
        a.set_ylabel("r(valid) %")
        a.set_xticks(range(1, last + 1))
        a.grid(True, alpha=0.3)
    ok = [v for t in trials if t.status == "ok" for v in t.val_accuracy if math.isfinite(v)]
    low = max(0.0, float(np.percentile(ok, 10)) * 100 - 2) if ok else 0.0
    ax.set_ylim(low, 100)
    ax.set_title(
        f"successive halving: {len(trials)} configurations; grey: stopped, olive: promoted "
        "then stopped, colour: finalists",
        fontsize=8,
    )
    if finalists:
        vals = [
            v for t in finalists for v in t.val_accuracy[rung_epochs[0] - 1 :] if math.isfinite(v)
        ]
        lo = min(vals) * 100
        zoom.set_ylim(lo - 0.2, min(100.0, max(vals) * 100 + 0.15))
        zoom.set_xlim(rung_epochs[0] - 0.2, last + 0.2)
        zoom.legend(fontsize=6, loc="lower right")
    zoom.set_title("zoom on the finalists", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, folder, "search_ladder")


def plot_by_setting(trials: Sequence[Trial], folder: Path) -> list[str]:
    """Left: r(valid) after the first epoch of every configuration against its learning
    rate (colour: optimizer, marker: nonlinearity). Right: r(valid) at each
    configuration's last epoch against how many epochs it trained."""
    fig = new_figure(figsize=(11.5, 4.4))
    left, right = fig.subplots(1, 2)
    seen: set[tuple[str, str]] = set()
    for t in trials:
        c = t.config
        color = OPTIMIZER_COLORS.get(c.optimizer, "k")
        marker = ACTIVATION_MARKERS.get(c.activation, "x")
        key = (c.optimizer, c.activation)
        label = f"{c.optimizer} {c.activation}" if key not in seen else None
        seen.add(key)
        first = t.val_accuracy[0] if t.val_accuracy else math.nan
        if math.isfinite(first):
            left.scatter(c.lr, 100 * first, c=color, marker=marker, s=22, label=label, alpha=0.85)
        else:
            left.scatter(c.lr, 0.0, c="red", marker="x", s=22)
        if t.status == "ok" and math.isfinite(t.r_valid):
            jitter = (int(t.name[:4], 16) % 7 - 3) * 0.06  # names are hex: a stable jitter
            right.scatter(
                t.epochs + jitter, 100 * t.r_valid, c=color, marker=marker, s=22, alpha=0.85
            )
    left.set_xscale("log")
    left.set_xlabel("learning rate (log scale)")
    left.set_ylabel("r(valid) % after epoch 1")
    left.set_ylim(bottom=max(0.0, left.get_ylim()[0]))
    left.legend(fontsize=6, ncol=2, loc="lower left")
    left.set_title("every configuration after its first epoch (x at 0: failed)", fontsize=9)
    right.set_xlabel("epochs trained (its last rung)")
    right.set_ylabel("r(valid) % at its last epoch")
    right.set_title("where each configuration stopped", fontsize=9)
    for a in (left, right):
        a.grid(True, which="both", alpha=0.3)
        a.axhline(97.0, color="grey", ls=":", lw=1)
    fig.tight_layout()
    return save_figure(fig, folder, "search_by_setting")
