"""The initialization study's configuration and its runs: one per weight scheme.

Every setup shares the architecture, nonlinearity, learning rate, mini-batch size, seed
and data order; only the weights differ (biases are zero): all zero, standard normal,
or Glorot's uniform. Per epoch a run records (from ``fmlp.fit``) the average loss on the
whole training set at the end of the epoch, the running mean of the mini-batch losses,
and the validation loss and accuracy. At initialization and after every epoch, per
layer, on a fixed subsample (the first ``n_diag`` training images): the standard
deviation of the pre-activations, the fraction of dead ReLUs (units never active on the
subsample), the norms of the weight and bias gradients, the spread of each layer's
parameters across its units (0 when all units are identical) and how far each parameter
tensor moved from its initial value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import attrs
import numpy as np

import fmlp
from analyses.datasets import DataSpec, floats, load_data
from analyses.pipeline.tasks import KeyedTask, RunContext
from analyses.studies.init.options import STUDY, InitOptions
from fmlp.types import (
    FloatArray,
    IntArray,
    SchemeName,
)

# -------------------------------------------------------------------- run records


@attrs.frozen
class Curves:
    """Per epoch 1..E. Non-finite values are kept (JSON NaN/Infinity), never dropped."""

    epoch: tuple[int, ...]
    train_loss: tuple[float, ...]
    train_accuracy: tuple[float, ...]
    running_loss: tuple[float, ...]
    running_accuracy: tuple[float, ...]
    val_loss: tuple[float, ...]
    val_accuracy: tuple[float, ...]
    diverged: tuple[bool, ...]


@attrs.frozen
class Initial:
    """The model before training: loss and accuracy on train and valid, the
    subsample's loss, and the logits' standard deviation and largest magnitude."""

    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    subsample_loss: float
    logit_std: float
    logit_max_abs: float


@attrs.frozen
class Diagnostics:
    """Per epoch 0..E (0: initialization), per layer (the output layer last; the dead
    fraction is for hidden layers only and None for a non-ReLU activation)."""

    epoch: tuple[int, ...]
    subsample_loss: tuple[float, ...]
    pre_activation_std: tuple[tuple[float, ...], ...]
    pre_activation_max_abs: tuple[tuple[float, ...], ...]
    dead_fraction: tuple[tuple[float | None, ...], ...]
    grad_w_norm: tuple[tuple[float, ...], ...]
    grad_b_norm: tuple[tuple[float, ...], ...]
    unit_spread_w: tuple[tuple[float, ...], ...]
    unit_spread_b: tuple[tuple[float, ...], ...]
    change_w: tuple[tuple[float, ...], ...]
    change_b: tuple[tuple[float, ...], ...]


@attrs.frozen
class Symmetry:
    """Whether every hidden layer's units stay identical at every epoch (the largest
    spread across them), and which parameter tensors (``w0``, ``b0``, ...) ever move."""

    hidden_units_identical: bool
    max_hidden_unit_spread: float
    moved: dict[str, bool]
    only_output_bias_moves: bool


@attrs.frozen
class NonFinite:
    """How many values of each curve are not finite, and the first diverged epoch."""

    train_loss: int
    running_loss: int
    val_loss: int
    first_diverged_epoch: int | None


@attrs.frozen
class InitRunResult:
    scheme: SchemeName
    curves: Curves
    initial: Initial
    diagnostics: Diagnostics
    symmetry: Symmetry
    nonfinite: NonFinite


# ------------------------------------------------------------------- diagnostics


@attrs.frozen
class _Row:
    subsample_loss: float
    pre_activation_std: tuple[float, ...]
    pre_activation_max_abs: tuple[float, ...]
    dead_fraction: tuple[float | None, ...]
    grad_w_norm: tuple[float, ...]
    grad_b_norm: tuple[float, ...]
    unit_spread_w: tuple[float, ...]
    unit_spread_b: tuple[float, ...]
    change_w: tuple[float, ...]
    change_b: tuple[float, ...]


def diagnostics(params: fmlp.MLP, params0: fmlp.MLP, x: FloatArray, y: IntArray) -> _Row:
    """Per-layer figures of ``params`` on the subsample (x, y); ``params0`` is the
    initialization the changes are measured from."""
    with np.errstate(all="ignore"):  # a diverged model has inf/NaN parameters: record, don't warn
        _, cache = fmlp.forward_with_cache(params, x)
        sub_loss, grads = fmlp.grad(params, x, y)
        zs = cache.pre_activations
        pairs = list(zip(params.layers, params0.layers, strict=True))
        return _Row(
            subsample_loss=float(sub_loss),
            pre_activation_std=tuple(float(np.std(z, dtype=np.float64)) for z in zs),
            pre_activation_max_abs=tuple(float(np.max(np.abs(z))) for z in zs),
            dead_fraction=tuple(
                float(np.mean(~np.any(z > 0, axis=0))) if params.activation == "relu" else None
                for z in zs[:-1]
            ),
            grad_w_norm=tuple(float(np.linalg.norm(g.w.astype(np.float64))) for g in grads.layers),
            grad_b_norm=tuple(float(np.linalg.norm(g.b.astype(np.float64))) for g in grads.layers),
            # units are columns of w (fan_in, fan_out): the spread across units of each
            # incoming weight, and of the biases; 0 when every unit is the same
            unit_spread_w=tuple(float(np.max(np.ptp(l.w, axis=1))) for l in params.layers),
            unit_spread_b=tuple(float(np.ptp(l.b)) for l in params.layers),
            change_w=tuple(float(np.max(np.abs(l.w - l0.w))) for l, l0 in pairs),
            change_b=tuple(float(np.max(np.abs(l.b - l0.b))) for l, l0 in pairs),
        )


def _stack(rows: Sequence[_Row], epochs: int) -> Diagnostics:
    def col(name: str) -> Any:
        return tuple(getattr(r, name) for r in rows)

    return Diagnostics(
        epoch=tuple(range(epochs + 1)), **{f.name: col(f.name) for f in attrs.fields(_Row)}
    )


def symmetry_report(d: Diagnostics) -> Symmetry:
    """What the diagnostics say about symmetry: whether every hidden layer's units stay
    identical, and which parameter tensors ever move from their initial values."""
    n_layers = len(d.change_w[0])
    hidden = range(n_layers - 1)
    spreads = [
        max(row_w[l], row_b[l])
        for row_w, row_b in zip(d.unit_spread_w, d.unit_spread_b, strict=True)
        for l in hidden
    ]
    moved: dict[str, bool] = {}
    for l in range(n_layers):
        moved[f"w{l}"] = any(row[l] != 0.0 for row in d.change_w)
        moved[f"b{l}"] = any(row[l] != 0.0 for row in d.change_b)
    last_b = f"b{n_layers - 1}"
    return Symmetry(
        hidden_units_identical=all(s == 0.0 for s in spreads),
        max_hidden_unit_spread=max(spreads, default=0.0),
        moved=moved,
        only_output_bias_moves=moved[last_b]
        and not any(v for k, v in moved.items() if k != last_b),
    )


# ------------------------------------------------------------------------ the run


@attrs.frozen
class InitRun(KeyedTask):
    """Train one setup (one weight scheme) and record its curves and diagnostics."""

    study: ClassVar[str] = STUDY
    torch: ClassVar[bool] = False
    result_type: ClassVar[type[InitRunResult]] = InitRunResult
    KIND: ClassVar[str] = "init"
    VERSION: ClassVar[int] = 2

    data: DataSpec
    options: InitOptions
    scheme: SchemeName

    def label(self) -> str:
        return f"init {self.scheme}"

    def run(self, ctx: RunContext) -> InitRunResult:
        return train_setup(self.data, self.options, self.scheme)


def train_setup(spec: DataSpec, opts: InitOptions, scheme: SchemeName) -> InitRunResult:
    """Train one setup and return its result record."""
    data = load_data(spec, opts.dtype)
    dtype = np.dtype(opts.dtype)
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
        # a diverging setup (standard normal with a large lr) overflows on purpose: the
        # fit records it (diverged, NaN losses) and so does this study
        _, m = fmlp.fit(
            params0,
            data.x_train,
            data.y_train,
            epochs=opts.epochs,
            batch_size=opts.batch_size,
            lr=opts.lr,
            seed=opts.seed,
            validation=(data.x_valid, data.y_valid),
            eval_train=True,
            params_callback=on_params,
        )
    curves = Curves(
        epoch=tuple(range(1, opts.epochs + 1)),
        train_loss=floats(m.train_loss),
        train_accuracy=floats(m.train_accuracy),
        running_loss=floats(m.running_loss),
        running_accuracy=floats(m.running_accuracy),
        val_loss=floats(m.val_loss),
        val_accuracy=floats(m.val_accuracy),
        diverged=tuple(bool(d) for d in np.asarray(m.diverged)),
    )
    diag = _stack(rows, opts.epochs)

    def nonfinite(values: tuple[float, ...]) -> int:
        return sum(1 for v in values if not math.isfinite(v))

    diverged = [e for e, d in zip(curves.epoch, curves.diverged, strict=True) if d]
    return InitRunResult(
        scheme=scheme,
        curves=curves,
        initial=Initial(
            train_loss=init_train.loss,
            train_accuracy=init_train.accuracy,
            val_loss=init_valid.loss,
            val_accuracy=init_valid.accuracy,
            subsample_loss=rows[0].subsample_loss,
            logit_std=float(np.std(logits0, dtype=np.float64)),
            logit_max_abs=float(np.max(np.abs(logits0))),
        ),
        diagnostics=diag,
        symmetry=symmetry_report(diag),
        nonfinite=NonFinite(
            train_loss=nonfinite(curves.train_loss),
            running_loss=nonfinite(curves.running_loss),
            val_loss=nonfinite(curves.val_loss),
            first_diverged_epoch=diverged[0] if diverged else None,
        ),
    )
