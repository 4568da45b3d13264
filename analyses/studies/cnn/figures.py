"""The CNN study's figures: the validation error per epoch of every technique screened
against the vanilla CNN at the screening seed; training and validation error per epoch
of the vanilla CNN and the chosen technique (mean over seeds with the min-max band) and
of the MLP; training and validation loss of both CNNs and the MLP on shared axes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np

from analyses.figures import new_figure, save_figure

if TYPE_CHECKING:
    from analyses.studies.cnn.summary import CnnSummary

COLORS: Final = {"vanilla": "tab:blue", "mlp": "tab:gray"}
VARIANT_COLORS: Final = ("tab:blue", "tab:orange")
TECHNIQUE_COLORS: Final = ("tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


def color(name: str, index: int = 0) -> str:
    return COLORS.get(name, VARIANT_COLORS[index % len(VARIANT_COLORS)])


def plot_screening(s: CnnSummary, folder: Path) -> list[str]:
    """cnn_screening: one panel per technique screened, its validation error per epoch
    against the vanilla CNN's at the screening seed; the chosen one's title says so."""
    from matplotlib.ticker import MaxNLocator

    n = len(s.screening)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig = new_figure(figsize=(3.6 * cols, 3.0 * rows))
    axes = np.atleast_1d(fig.subplots(rows, cols, sharey=True, squeeze=False)).ravel()
    base = next(r for r in s.vanilla.runs if r.seed == s.screening_seed).result.curves
    for i, (ax, sc) in enumerate(zip(axes, s.screening, strict=False)):
        ax.plot(
            base.epoch,
            100 * np.asarray(base.valid_error),
            "o--",
            ms=3,
            color=COLORS["vanilla"],
            label=f"vanilla (final acc {100 * (1 - base.valid_error[-1]):.2f}%)",
        )
        if sc.result is not None:
            c = sc.result.curves
            ax.plot(
                c.epoch,
                100 * np.asarray(c.valid_error),
                "o-",
                ms=3,
                color=TECHNIQUE_COLORS[i % len(TECHNIQUE_COLORS)],
                label=f"{sc.technique.name} (final acc {100 * (1 - c.valid_error[-1]):.2f}%)",
            )
            status = f"rank {sc.rank}" + (", chosen" if sc.rank == 1 else "")
        else:
            status = "failed"
        ax.set_title(f"{sc.technique.name} ({status})", fontsize=9)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes[n:]:
        ax.set_visible(False)
    for ax in axes[::cols]:
        ax.set_ylabel(f"valid error (%), seed {s.screening_seed}")
    fig.tight_layout()
    return save_figure(fig, folder, "cnn_screening")


def plot_errors(s: CnnSummary, folder: Path) -> list[str]:
    """cnn_errors: train (subset) and valid error per epoch, the CNNs' mean over seeds
    with the min-max band and early-stopping epochs marked, the MLP dashed."""
    from matplotlib.ticker import MaxNLocator

    fig = new_figure(figsize=(10, 4))
    axes = fig.subplots(1, 2)
    mlp = s.mlp.curves
    for ax, split in zip(axes, ("train", "valid"), strict=True):
        for i, v in enumerate(s.variants):
            band = v.aggregate.train_error if split == "train" else v.aggregate.valid_error
            e = np.arange(1, len(band.mean) + 1)
            mean = 100 * np.asarray(band.mean)
            c = color(v.name, i)
            ax.plot(e, mean, "o-", ms=3, color=c, label=f"CNN {v.name} (mean of {len(v.runs)})")
            ax.fill_between(
                e, 100 * np.asarray(band.min), 100 * np.asarray(band.max), color=c, alpha=0.2, lw=0
            )
            if split == "valid":
                for r in v.runs:
                    ax.plot(
                        r.early_stop_epoch,
                        mean[r.early_stop_epoch - 1],
                        "v",
                        ms=9,
                        mfc="none",
                        color=c,
                    )
        errors = mlp.train_error if split == "train" else mlp.valid_error
        ax.plot(mlp.epoch, 100 * np.asarray(errors), "s--", ms=3, color=COLORS["mlp"], label="MLP")
        # Training errors span decades; validation errors differ by tenths of a point.
        ax.set_yscale("log" if split == "train" else "linear")
        ax.set_ylabel("error rate (%)" + (", log scale" if split == "train" else ""))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        title = (
            "train error (fixed training subset)"
            if split == "train"
            else "valid error (v: lowest valid loss = early stop)"
        )
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, folder, "cnn_errors")


def plot_losses(s: CnnSummary, folder: Path) -> list[str]:
    """cnn_vs_mlp_loss: training (subset) and validation loss of every CNN variant (mean
    over seeds) and of the MLP."""
    from matplotlib.ticker import MaxNLocator

    fig = new_figure(figsize=(6.5, 4.5))
    ax = fig.subplots()
    for i, v in enumerate(s.variants):
        a = v.aggregate
        e = np.arange(1, len(a.train_loss.mean) + 1)
        c = color(v.name, i)
        ax.plot(e, a.train_loss.mean, "o-", ms=3, color=c, label=f"CNN {v.name} train")
        ax.plot(e, a.valid_loss.mean, "o--", ms=3, color=c, label=f"CNN {v.name} valid")
        best = a.early_stop_epoch_of_mean
        ax.plot(best, a.valid_loss.mean[best - 1], "v", ms=10, mfc="none", color=c)
    mlp = s.mlp.curves
    ax.plot(mlp.epoch, mlp.train_loss, "s-", ms=3, color=COLORS["mlp"], label="MLP train")
    ax.plot(mlp.epoch, mlp.valid_loss, "s--", ms=3, color=COLORS["mlp"], label="MLP valid")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(
        "CNN vs MLP: training (subset) and validation loss\n"
        "(CNN: mean over seeds; v: lowest mean valid loss)",
        fontsize=10,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    return save_figure(fig, folder, "cnn_vs_mlp_loss")
