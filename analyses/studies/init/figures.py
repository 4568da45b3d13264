"""The initialization study's figures: the training loss per setup, and the per-layer
diagnostics (pre-activation scale, dead ReLUs, gradient norms, how far each tensor moved)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np

from analyses.figures import new_figure, save_figure
from analyses.studies.init.runs import InitRunResult

COLORS: Final = {"zero": "tab:gray", "normal": "tab:red", "glorot": "tab:blue", "he": "tab:green"}
LAYER_STYLES: Final = ("-", "--", ":", "-.")

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from analyses.studies.init.summary import InitSettings


def _log_series(
    ax: Axes,
    x: Sequence[float],
    y: Sequence[float | None],
    *,
    color: str,
    label: str | None = None,
    linestyle: str = "-",
    marker: str = "o",
) -> None:
    """Plot y > 0 on a log axis; mark y == 0 at the bottom (triangle down) and
    non-finite y at the top (cross) of the axis, so no value is silently dropped."""
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray([math.nan if v is None else v for v in y], dtype=np.float64)
    finite = np.isfinite(ys)
    pos = finite & (ys > 0)
    shown = np.where(pos, ys, np.nan)
    ax.plot(xs, shown, linestyle=linestyle, marker=marker, markersize=3, color=color, label=label)
    trans = ax.get_xaxis_transform()
    if np.any(finite & (ys <= 0)):
        ax.plot(
            xs[finite & (ys <= 0)],
            np.full(int(np.sum(finite & (ys <= 0))), 0.02),
            "v",
            color=color,
            transform=trans,
            clip_on=False,
            markersize=5,
        )
    if np.any(~finite):
        ax.plot(
            xs[~finite],
            np.full(int(np.sum(~finite)), 0.98),
            "x",
            color=color,
            transform=trans,
            clip_on=False,
            markersize=7,
            mew=2,
        )


def _legend_notes(ax: Axes) -> None:
    from matplotlib.lines import Line2D

    handles, labels = ax.get_legend_handles_labels()
    handles += [
        Line2D([], [], marker="x", color="k", linestyle="", mew=2),
        Line2D([], [], marker="v", color="k", linestyle=""),
    ]
    labels += ["non-finite (top)", "exactly 0 (bottom)"]
    ax.legend(handles, labels, fontsize=7)


def plot_losses(s: InitSettings, runs: Sequence[InitRunResult], folder: Path) -> list[str]:
    """Training loss against epoch (log y) for every setup, and validation accuracy."""
    from matplotlib.ticker import MaxNLocator

    fig = new_figure(figsize=(10, 4))
    ax, ax2 = fig.subplots(1, 2)
    for run in runs:
        scheme, c = run.scheme, run.curves
        color = COLORS.get(scheme, "k")
        _log_series(
            ax, c.epoch, c.train_loss, color=color, label=f"{scheme}: train set, end of epoch"
        )
        _log_series(
            ax,
            c.epoch,
            c.running_loss,
            color=color,
            linestyle=":",
            marker=".",
            label=f"{scheme}: running mean of mini-batches",
        )
        acc = np.asarray(c.val_accuracy, dtype=np.float64)
        ax2.plot(c.epoch, acc, marker="o", markersize=3, color=color, label=scheme)
        bad = ~np.isfinite(acc)
        if np.any(bad):
            ax2.plot(
                np.asarray(c.epoch)[bad],
                np.full(int(bad.sum()), 0.98),
                "x",
                color=color,
                transform=ax2.get_xaxis_transform(),
                clip_on=False,
                mew=2,
            )
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("average cross-entropy")
    ax.set_title(
        f"{'-'.join(map(str, s.sizes))} {s.activation}, SGD lr {s.lr}, batch {s.batch_size}",
        fontsize=9,
    )
    _legend_notes(ax)
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("validation accuracy")
    ax2.set_ylim(0, 1)
    ax2.legend(fontsize=7)
    for a in (ax, ax2):
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
        a.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, folder, "init_loss")


def plot_diagnostics(s: InitSettings, runs: Sequence[InitRunResult], folder: Path) -> list[str]:
    """Per-layer pre-activation std, dead ReLU fraction and weight-gradient norm against
    epoch (0 = initialization), and how far each parameter tensor moved."""
    from matplotlib.ticker import MaxNLocator

    fig = new_figure(figsize=(11, 8))
    (a_std, a_dead), (a_grad, a_move) = fig.subplots(2, 2)
    names = s.layer_names
    schemes = [run.scheme for run in runs]
    for run in runs:
        scheme, d = run.scheme, run.diagnostics
        color = COLORS.get(scheme, "k")
        for l, name in enumerate(names):
            style = LAYER_STYLES[l % len(LAYER_STYLES)]
            _log_series(
                a_std,
                d.epoch,
                [row[l] for row in d.pre_activation_std],
                color=color,
                linestyle=style,
                label=f"{scheme} {name}",
            )
            _log_series(
                a_grad,
                d.epoch,
                [row[l] for row in d.grad_w_norm],
                color=color,
                linestyle=style,
                label=f"{scheme} {name}",
            )
            if l < len(names) - 1 and d.dead_fraction[0][l] is not None:
                vals = np.asarray([row[l] for row in d.dead_fraction], dtype=np.float64)
                a_dead.plot(
                    d.epoch,
                    vals,
                    linestyle=style,
                    marker="o",
                    markersize=3,
                    color=color,
                    label=f"{scheme} {name}",
                )
    a_std.set_yscale("log")
    a_std.set_title("std of pre-activations (subsample)", fontsize=9)
    a_grad.set_yscale("log")
    a_grad.set_title("norm of the weight gradient (subsample)", fontsize=9)
    a_dead.set_title("fraction of dead ReLUs (never active on the subsample)", fontsize=9)
    a_dead.set_ylim(-0.02, 1.02)
    for a in (a_std, a_grad, a_dead):
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
        a.set_xlabel("epoch (0 = initialization)")
        a.grid(True, which="both", alpha=0.3)
    # one compact legend: colour = setup, line style = layer
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=COLORS.get(scheme, "k")) for scheme in schemes]
    handles += [
        Line2D([], [], color="k", linestyle=LAYER_STYLES[l % len(LAYER_STYLES)])
        for l in range(len(names))
    ]
    handles += [
        Line2D([], [], marker="x", color="k", linestyle="", mew=2),
        Line2D([], [], marker="v", color="k", linestyle=""),
    ]
    labels = [*schemes, *names, "non-finite (top)", "exactly 0 (bottom)"]
    a_dead.legend(handles, labels, fontsize=7, loc="center right")
    # the parameter tensors' total movement: bars per scheme, zero marked
    tensors = [f"{k}{l}" for l in range(len(names)) for k in ("w", "b")]
    width = 0.8 / max(1, len(runs))
    for j, run in enumerate(runs):
        scheme = run.scheme
        last_w, last_b = run.diagnostics.change_w[-1], run.diagnostics.change_b[-1]
        moved = [v for l in range(len(names)) for v in (last_w[l], last_b[l])]
        xs = np.arange(len(tensors)) + (j - (len(runs) - 1) / 2) * width
        arr = np.asarray(moved, dtype=np.float64)
        ok = np.isfinite(arr) & (arr > 0)
        a_move.bar(xs[ok], arr[ok], width=width, color=COLORS.get(scheme, "k"), label=scheme)
        zero = np.isfinite(arr) & (arr <= 0)
        if np.any(zero):  # (an empty line with clip_on=False would stretch the tight bbox)
            a_move.plot(
                xs[zero],
                np.full(int(zero.sum()), 0.02),
                "v",
                color=COLORS.get(scheme, "k"),
                transform=a_move.get_xaxis_transform(),
                clip_on=False,
            )
        bad = ~np.isfinite(arr)
        if np.any(bad):
            a_move.plot(
                xs[bad],
                np.full(int(bad.sum()), 0.98),
                "x",
                color=COLORS.get(scheme, "k"),
                transform=a_move.get_xaxis_transform(),
                clip_on=False,
                mew=2,
            )
    a_move.set_yscale("log")
    a_move.set_xticks(np.arange(len(tensors)), tensors)
    a_move.set_title("max |theta - theta_0| after the last epoch (v: exactly 0)", fontsize=9)
    a_move.legend(fontsize=7)
    a_move.grid(True, axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, folder, "init_diagnostics")


# ---------------------------------------------------------------------------- study
