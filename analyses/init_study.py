"""Initialization study: Zero, standard Normal and Glorot weights, biases zero, one
architecture, learning rate, batch size and data order for all three; 10 epochs each.

    python -m analyses.init_study [--out results] [--quick] [--quiet] [--dataset mnist]
        [--lr 0.01] [--batch-size 64] [--epochs 10] [--seed 0] [--dtype float32] ...

Each setup is one run, stored under ``<out>/init_study/runs/<config hash>.json``, so an
interrupted study resumes without training the finished setups again. The weights are
drawn from ``seed``; epoch ``e`` visits the training set in the order derived from
``(seed, e)``, the same for every setup.

Per epoch (from ``fmlp.fit``): the average loss on the whole training set at the end of
the epoch, the running mean of the mini-batch losses, the validation loss and accuracy.
At initialization and after every epoch, per layer, on a fixed subsample (the first
``n_diag`` training images): the standard deviation of the pre-activations, the fraction
of dead ReLUs (units never active on the subsample), the norm of the weight and bias
gradients, the spread of each layer's parameters across its units (0 when all units are
identical) and how far each parameter tensor moved from its initial value.

``<out>/init_study/summary.json`` (what the report reads):

- ``study``: "init_study"; ``settings``: sizes, n_params, activation, schemes, biases,
  optimizer, lr, batch_size, epochs, seed, dtype, dataset, dataset_sizes, n_diag,
  data_order (a sentence), layer_names.
- ``runs``: one entry per scheme (``zero``, ``normal``, ``glorot``), each with
  ``config_hash``, ``computed_now`` (false when read back from a finished run),
  ``wall_seconds`` (the run's own training time), ``curves`` (lists over epochs
  1..E: ``epoch``, ``train_loss``, ``train_accuracy``, ``running_loss``,
  ``running_accuracy``, ``val_loss``, ``val_accuracy``, ``diverged``, ``seconds``;
  non-finite values are JSON NaN/Infinity, never dropped), ``initial`` (loss and
  accuracy at initialization on train and valid, the subsample's loss, the logits'
  std and max |z|), ``diagnostics`` (lists over epochs 0..E of lists over layers:
  ``pre_activation_std``, ``pre_activation_max_abs``, ``dead_fraction`` (hidden layers
  only; null for a non-ReLU activation), ``grad_w_norm``, ``grad_b_norm``,
  ``unit_spread_w``, ``unit_spread_b``, ``change_w``, ``change_b``, and per epoch
  ``subsample_loss``), ``symmetry`` (``hidden_units_identical``: every hidden layer's
  units have identical parameters at every epoch; ``moved``: per parameter tensor, whether
  it ever left its initial value; ``only_output_bias_moves``), ``nonfinite`` (count of
  non-finite values per curve and ``first_diverged_epoch``).
- ``table``: one row per scheme: first and last train loss, last running loss, last
  validation loss and accuracy, initial loss, initial logit std.
- ``figures``: file names written beside the summary; ``wall_seconds``: this
  invocation's time (small when it resumed finished runs); ``runs_wall_seconds``: the
  runs' own training times summed, whenever they ran; ``machine``:
  ``analyses.common.machine_info()``.
"""

from __future__ import annotations

import hashlib
import math
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, cast

import attrs
import numpy as np

import fmlp
from analyses.common import (
    ResultStore,
    StudyData,
    Timer,
    load_study_data,
    machine_info,
    progress,
    save_figure,
    study_parser,
    synthetic_data,
    use_agg,
)
from fmlp.params import check_sizes
from fmlp.types import (
    ACTIVATION_NAMES,
    SCHEME_NAMES,
    ActivationName,
    FloatArray,
    IntArray,
    SchemeName,
    check_activation,
    check_dtype,
    is_int,
)

STUDY: Final = "init_study"
SCHEMES: Final[tuple[SchemeName, ...]] = ("zero", "normal", "glorot")
DEFAULT_SIZES: Final = (784, 512, 512, 10)
QUICK_EPOCHS: Final = 2
COLORS: Final = {"zero": "tab:gray", "normal": "tab:red", "glorot": "tab:blue", "he": "tab:green"}
LAYER_STYLES: Final = ("-", "--", ":", "-.")


@attrs.frozen
class InitOptions:
    """Everything that fixes the study's results besides the data."""

    sizes: tuple[int, ...] = DEFAULT_SIZES
    activation: ActivationName = "relu"
    schemes: tuple[SchemeName, ...] = SCHEMES
    lr: float = 0.01
    batch_size: int = 64
    epochs: int = 10
    seed: int = 0
    dtype: str = "float32"
    n_diag: int = 1000

    def __attrs_post_init__(self) -> None:
        check_sizes(self.sizes)
        check_activation(self.activation)
        if not self.schemes:
            raise ValueError("schemes is empty: name at least one of " + ", ".join(SCHEME_NAMES))
        for s in self.schemes:
            if s not in SCHEME_NAMES:
                raise ValueError(
                    f"unknown init scheme {s!r}: expected one of {', '.join(SCHEME_NAMES)}"
                )
        if len(set(self.schemes)) != len(self.schemes):
            raise ValueError(f"schemes repeat a name: {self.schemes}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive finite number, got {self.lr}")
        for name in ("batch_size", "epochs", "n_diag"):
            value = getattr(self, name)
            if not is_int(value) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not is_int(self.seed) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        check_dtype(self.dtype)


DEFAULTS: Final = InitOptions()


def data_digest(data: StudyData) -> str:
    """A cheap fingerprint of the data (labels and every k-th training image), so a run
    stored for other data with the same name and sizes is not taken for this one."""
    h = hashlib.sha256()
    step = max(1, len(data.y_train) // 1000)
    for arr in (
        data.y_train,
        data.y_valid,
        np.ascontiguousarray(data.x_train[::step], dtype=np.float64),
    ):
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()[:16]


def shared_settings(data: StudyData, opts: InitOptions) -> dict[str, Any]:
    """The settings every setup shares: part of each run's configuration and of the
    summary's ``settings``."""
    return {
        "sizes": list(opts.sizes),
        "activation": opts.activation,
        "biases": "zero",
        "optimizer": "sgd",
        "lr": opts.lr,
        "batch_size": opts.batch_size,
        "epochs": opts.epochs,
        "seed": opts.seed,
        "dtype": str(np.dtype(opts.dtype)),
        "dataset": data.name,
        "dataset_sizes": data.sizes,
        "n_diag": min(opts.n_diag, len(data.y_train)),
    }


def run_config(data: StudyData, opts: InitOptions, scheme: SchemeName) -> dict[str, Any]:
    """The configuration that names one setup's run (everything its result depends on)."""
    return {
        "study": STUDY,
        "version": 1,
        **shared_settings(data, opts),
        "scheme": scheme,
        "data_digest": data_digest(data),
    }


# ------------------------------------------------------------------- diagnostics


def diagnostics(params: fmlp.MLP, params0: fmlp.MLP, x: FloatArray, y: IntArray) -> dict[str, Any]:
    """Per-layer figures of ``params`` on the subsample (x, y); ``params0`` is the
    initialization the changes are measured from. Lists run over layers 0..L-1."""
    with np.errstate(all="ignore"):  # a diverged model has inf/NaN parameters: record, don't warn
        _, cache = fmlp.forward_with_cache(params, x)
        sub_loss, grads = fmlp.grad(params, x, y)
        zs = cache.pre_activations
        out: dict[str, Any] = {
            "subsample_loss": float(sub_loss),
            "pre_activation_std": [float(np.std(z, dtype=np.float64)) for z in zs],
            "pre_activation_max_abs": [float(np.max(np.abs(z))) for z in zs],
            "dead_fraction": [
                float(np.mean(~np.any(z > 0, axis=0))) if params.activation == "relu" else None
                for z in zs[:-1]
            ],
            "grad_w_norm": [float(np.linalg.norm(g.w.astype(np.float64))) for g in grads.layers],
            "grad_b_norm": [float(np.linalg.norm(g.b.astype(np.float64))) for g in grads.layers],
            # units are columns of w (fan_in, fan_out): the spread across units of each
            # incoming weight, and of the biases; 0 when every unit is the same
            "unit_spread_w": [float(np.max(np.ptp(l.w, axis=1))) for l in params.layers],
            "unit_spread_b": [float(np.ptp(l.b)) for l in params.layers],
            "change_w": [
                float(np.max(np.abs(l.w - l0.w))) for l, l0 in zip(params.layers, params0.layers)
            ],
            "change_b": [
                float(np.max(np.abs(l.b - l0.b))) for l, l0 in zip(params.layers, params0.layers)
            ],
        }
    return out


def _columns(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """A list of same-keyed dicts as a dict of lists."""
    return {key: [row[key] for row in rows] for key in rows[0]}


def symmetry_report(diag: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
    """What the diagnostics say about symmetry: whether every hidden layer's units stay
    identical, and which parameter tensors ever move from their initial values."""
    hidden = range(len(diag["unit_spread_w"][0]) - 1)
    identical = all(
        row_w[l] == 0.0 and row_b[l] == 0.0
        for row_w, row_b in zip(diag["unit_spread_w"], diag["unit_spread_b"])
        for l in hidden
    )
    n_layers = len(diag["change_w"][0])
    moved = {}
    for l in range(n_layers):
        moved[f"w{l}"] = any(row[l] != 0.0 for row in diag["change_w"])
        moved[f"b{l}"] = any(row[l] != 0.0 for row in diag["change_b"])
    last_b = f"b{n_layers - 1}"
    only_output_bias = moved[last_b] and not any(v for k, v in moved.items() if k != last_b)
    return {
        "hidden_units_identical": identical,
        "max_hidden_unit_spread": max(
            (
                max(row_w[l], row_b[l])
                for row_w, row_b in zip(diag["unit_spread_w"], diag["unit_spread_b"])
                for l in hidden
            ),
            default=0.0,
        ),
        "moved": moved,
        "only_output_bias_moves": only_output_bias,
    }


# ------------------------------------------------------------------------ one run


class _EpochBar:
    """A progress bar over epochs driven from fit's callback."""

    def __init__(self, epochs: int, desc: str, quiet: bool) -> None:
        self._it: Iterator[int] = progress(range(epochs), total=epochs, desc=desc, quiet=quiet)
        next(self._it, None)

    def tick(self, epoch: int, metrics: fmlp.EpochMetrics) -> None:
        next(self._it, None)


def train_setup(
    data: StudyData, opts: InitOptions, scheme: SchemeName, *, quiet: bool = True
) -> dict[str, Any]:
    """Train one setup and return its result record (curves, diagnostics, symmetry)."""
    dtype = check_dtype(opts.dtype)
    data = data.astype(dtype)
    params0 = fmlp.init(
        opts.sizes, scheme=scheme, activation=opts.activation, seed=opts.seed, dtype=dtype
    )
    n_diag = min(opts.n_diag, len(data.y_train))
    xd, yd = data.x_train[:n_diag], data.y_train[:n_diag]
    rows = [diagnostics(params0, params0, xd, yd)]

    def on_params(epoch: int, params: fmlp.MLP) -> None:
        rows.append(diagnostics(params, params0, xd, yd))

    with np.errstate(all="ignore"):
        init_train = fmlp.evaluate(params0, data.x_train, data.y_train)
        init_valid = fmlp.evaluate(params0, data.x_valid, data.y_valid)
        logits0 = fmlp.logits(params0, xd)
    bar = _EpochBar(opts.epochs, f"{scheme} epochs", quiet)
    with Timer() as timer, np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        # a diverging setup (standard normal with a large lr) overflows on purpose: the
        # fit records it (diverged, NaN losses) and so does this study
        _, metrics = fmlp.fit(
            params0,
            data.x_train,
            data.y_train,
            epochs=opts.epochs,
            batch_size=opts.batch_size,
            lr=opts.lr,
            seed=opts.seed,
            validation=(data.x_valid, data.y_valid),
            eval_train=True,
            callback=bar.tick,
            params_callback=on_params,
        )
    diag = _columns(rows)
    curves = {
        "epoch": list(range(1, opts.epochs + 1)),
        "train_loss": metrics.train_loss.tolist(),
        "train_accuracy": metrics.train_accuracy.tolist(),
        "running_loss": metrics.running_loss.tolist(),
        "running_accuracy": metrics.running_accuracy.tolist(),
        "val_loss": metrics.val_loss.tolist(),
        "val_accuracy": metrics.val_accuracy.tolist(),
        "diverged": metrics.diverged.tolist(),
        "seconds": metrics.seconds.tolist(),
    }
    nonfinite = {
        key: int(np.count_nonzero(~np.isfinite(np.asarray(curves[key], dtype=np.float64))))
        for key in ("train_loss", "running_loss", "val_loss")
    }
    diverged_epochs = [e for e, d in zip(curves["epoch"], curves["diverged"]) if d]
    return {
        "scheme": scheme,
        "wall_seconds": timer.seconds,
        "curves": curves,
        "initial": {
            "train_loss": init_train.loss,
            "train_accuracy": init_train.accuracy,
            "val_loss": init_valid.loss,
            "val_accuracy": init_valid.accuracy,
            "subsample_loss": rows[0]["subsample_loss"],
            "logit_std": float(np.std(logits0, dtype=np.float64)),
            "logit_max_abs": float(np.max(np.abs(logits0))),
        },
        "diagnostics": {"epoch": list(range(opts.epochs + 1)), **diag},
        "symmetry": symmetry_report(diag),
        "nonfinite": {
            **nonfinite,
            "first_diverged_epoch": diverged_epochs[0] if diverged_epochs else None,
        },
    }


# ------------------------------------------------------------------------- figures


def _log_series(
    ax: Any,
    x: Sequence[float],
    y: Sequence[Any],
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


def _legend_notes(ax: Any) -> None:
    from matplotlib.lines import Line2D

    handles, labels = ax.get_legend_handles_labels()
    handles += [
        Line2D([], [], marker="x", color="k", linestyle="", mew=2),
        Line2D([], [], marker="v", color="k", linestyle=""),
    ]
    labels += ["non-finite (top)", "exactly 0 (bottom)"]
    ax.legend(handles, labels, fontsize=7)


def plot_losses(summary: Mapping[str, Any], folder: Path) -> list[Path]:
    """Training loss against epoch (log y) for every setup, and validation accuracy."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for scheme, run in summary["runs"].items():
        c = run["curves"]
        color = COLORS.get(scheme, "k")
        _log_series(
            ax, c["epoch"], c["train_loss"], color=color, label=f"{scheme}: train set, end of epoch"
        )
        _log_series(
            ax,
            c["epoch"],
            c["running_loss"],
            color=color,
            linestyle=":",
            marker=".",
            label=f"{scheme}: running mean of mini-batches",
        )
        acc = np.asarray(c["val_accuracy"], dtype=np.float64)
        ax2.plot(c["epoch"], acc, marker="o", markersize=3, color=color, label=scheme)
        bad = ~np.isfinite(acc)
        if np.any(bad):
            ax2.plot(
                np.asarray(c["epoch"])[bad],
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
    s = summary["settings"]
    ax.set_title(
        f"{'-'.join(map(str, s['sizes']))} {s['activation']}, SGD lr {s['lr']}, batch {s['batch_size']}",
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
    paths = save_figure(fig, folder, "init_loss")
    plt.close(fig)
    return paths


def plot_diagnostics(summary: Mapping[str, Any], folder: Path) -> list[Path]:
    """Per-layer pre-activation std, dead ReLU fraction and weight-gradient norm against
    epoch (0 = initialization), and how far each parameter tensor moved."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    (a_std, a_dead), (a_grad, a_move) = axes
    runs = summary["runs"]
    names = summary["settings"]["layer_names"]
    for scheme, run in runs.items():
        d = run["diagnostics"]
        color = COLORS.get(scheme, "k")
        for l, name in enumerate(names):
            style = LAYER_STYLES[l % len(LAYER_STYLES)]
            _log_series(
                a_std,
                d["epoch"],
                [row[l] for row in d["pre_activation_std"]],
                color=color,
                linestyle=style,
                label=f"{scheme} {name}",
            )
            _log_series(
                a_grad,
                d["epoch"],
                [row[l] for row in d["grad_w_norm"]],
                color=color,
                linestyle=style,
                label=f"{scheme} {name}",
            )
            if l < len(names) - 1 and d["dead_fraction"][0][l] is not None:
                vals = np.asarray([row[l] for row in d["dead_fraction"]], dtype=np.float64)
                a_dead.plot(
                    d["epoch"],
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

    handles = [Line2D([], [], color=COLORS.get(scheme, "k")) for scheme in runs]
    handles += [
        Line2D([], [], color="k", linestyle=LAYER_STYLES[l % len(LAYER_STYLES)])
        for l in range(len(names))
    ]
    handles += [
        Line2D([], [], marker="x", color="k", linestyle="", mew=2),
        Line2D([], [], marker="v", color="k", linestyle=""),
    ]
    labels = [*runs, *names, "non-finite (top)", "exactly 0 (bottom)"]
    a_dead.legend(handles, labels, fontsize=7, loc="center right")
    # the parameter tensors' total movement: bars per scheme, zero marked
    tensors = [f"{k}{l}" for l in range(len(names)) for k in ("w", "b")]
    width = 0.8 / max(1, len(runs))
    for j, (scheme, run) in enumerate(runs.items()):
        d = run["diagnostics"]
        last_w, last_b = d["change_w"][-1], d["change_b"][-1]
        moved = [v for l in range(len(names)) for v in (last_w[l], last_b[l])]
        xs = np.arange(len(tensors)) + (j - (len(runs) - 1) / 2) * width
        arr = np.asarray([math.nan if v is None else v for v in moved], dtype=np.float64)
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
    paths = save_figure(fig, folder, "init_diagnostics")
    plt.close(fig)
    return paths


# ---------------------------------------------------------------------------- study


def run(
    data: StudyData,
    out: Path,
    opts: InitOptions = DEFAULTS,
    *,
    quiet: bool = True,
    figures: bool = True,
) -> dict[str, Any]:
    """Run (or resume) every setup of ``opts`` on ``data``, write the summary and (unless
    ``figures=False``) the figures into ``<out>/init_study/``, and return the summary."""
    store = ResultStore(Path(out), STUDY)
    runs: dict[str, Any] = {}
    with Timer() as timer:
        for scheme in progress(
            opts.schemes, total=len(opts.schemes), desc="init setups", quiet=quiet
        ):
            config = run_config(data, opts, scheme)
            result, computed = store.run(
                config, lambda: train_setup(data, opts, scheme, quiet=quiet)
            )
            runs[scheme] = {
                "config_hash": store.path(config).stem,
                "computed_now": computed,
                **result,
            }
    n_layers = len(opts.sizes) - 1
    summary: dict[str, Any] = {
        "study": STUDY,
        "settings": {
            **shared_settings(data, opts),
            "n_params": fmlp.count_params(opts.sizes),
            "schemes": list(opts.schemes),
            "data_order": (
                f"weights drawn from seed {opts.seed}; epoch e visits the training set in the "
                f"order np.random.default_rng(({opts.seed}, e)).permutation(n), the same for every setup"
            ),
            "layer_names": [
                f"layer {l + 1}" + (" (logits)" if l == n_layers - 1 else "")
                for l in range(n_layers)
            ],
        },
        "runs": runs,
        "table": [
            {
                "scheme": scheme,
                "initial_train_loss": r["initial"]["train_loss"],
                "initial_logit_std": r["initial"]["logit_std"],
                "first_train_loss": r["curves"]["train_loss"][0],
                "last_train_loss": r["curves"]["train_loss"][-1],
                "last_running_loss": r["curves"]["running_loss"][-1],
                "last_val_loss": r["curves"]["val_loss"][-1],
                "last_val_accuracy": r["curves"]["val_accuracy"][-1],
                "wall_seconds": r["wall_seconds"],
            }
            for scheme, r in runs.items()
        ],
    }
    written: list[Path] = []
    if figures:
        use_agg()
        written = plot_losses(summary, store.folder) + plot_diagnostics(summary, store.folder)
    summary["figures"] = [p.name for p in written]
    summary["wall_seconds"] = timer.seconds
    summary["runs_wall_seconds"] = sum(float(r["wall_seconds"]) for r in runs.values())
    summary["machine"] = machine_info()
    store.write_summary(summary)
    return summary


def load_data(dataset: str, *, quick: bool, dtype: Any = np.float64) -> StudyData:
    """The study's data: ``synthetic`` (no files needed) or a dataset fmlp.data knows."""
    if dataset == "synthetic":
        return synthetic_data(dtype=dtype)
    return load_study_data(dataset, quick=quick, dtype=dtype)


def main(argv: Sequence[str] | None = None) -> int:
    parser = study_parser(__doc__.split("\n\n")[0] if __doc__ else "initialization study")
    parser.add_argument(
        "--lr", type=float, default=DEFAULTS.lr, help="SGD learning rate (default 0.01)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=DEFAULTS.batch_size, help="mini-batch size (default 64)"
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help=f"epochs per setup (default 10; {QUICK_EPOCHS} with --quick)",
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULTS.seed, help="weights and data order seed (default 0)"
    )
    parser.add_argument(
        "--dtype", choices=("float32", "float64"), default=DEFAULTS.dtype, help="default float32"
    )
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=list(DEFAULT_SIZES),
        help="widths, default 784 512 512 10",
    )
    parser.add_argument("--activation", choices=ACTIVATION_NAMES, default="relu")
    parser.add_argument("--schemes", nargs="+", choices=SCHEME_NAMES, default=list(SCHEMES))
    parser.add_argument(
        "--n-diag",
        type=int,
        default=DEFAULTS.n_diag,
        help="training images for the diagnostics (default 1000)",
    )
    args = parser.parse_args(argv)
    try:
        opts = InitOptions(
            sizes=tuple(args.sizes),
            activation=cast(ActivationName, args.activation),
            schemes=tuple(cast(SchemeName, s) for s in args.schemes),
            lr=args.lr,
            batch_size=args.batch_size,
            epochs=args.epochs if args.epochs is not None else (QUICK_EPOCHS if args.quick else 10),
            seed=args.seed,
            dtype=args.dtype,
            n_diag=args.n_diag,
        )
        data = load_data(args.dataset, quick=args.quick)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"init_study: {exc}", file=sys.stderr)
        return 2
    summary = run(data, args.out, opts, quiet=args.quiet)
    for row in summary["table"]:
        print(
            f"{row['scheme']:>7}: loss at init {row['initial_train_loss']:.4g}, after epoch 1 "
            f"{row['first_train_loss']:.4g}, after epoch {opts.epochs} {row['last_train_loss']:.4g}, "
            f"valid acc {row['last_val_accuracy']:.4f} ({row['wall_seconds']:.1f} s)"
        )
    print(f"init_study: {summary['wall_seconds']:.1f} s; results in {Path(args.out) / STUDY}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
