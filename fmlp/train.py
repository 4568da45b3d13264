"""The training loop as a scan: a step maps ``(state, batch) -> (state, metrics)``, an
epoch is a scan of steps over shuffled mini-batches, a fit is a scan of epochs.

Randomness is derived, never global: epoch ``e`` of a fit seeded ``seed`` visits the
samples in the order ``np.random.default_rng((seed, e)).permutation(n)``. Everything
else a fit carries from one epoch to the next is in its ``TrainState``, so ``resume``
continues a fit from a saved state (``fmlp.checkpoint.save_state``) bit for bit.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeAlias, TypeVar

import attrs
import numpy as np
from numpy.typing import NDArray

from fmlp import fused
from fmlp.checks import (
    expect,
    expect_callable,
    expect_int,
    expect_optimizer,
    expect_params,
    expect_state,
    expect_training,
    invalid,
    nonnegative_int,
    positive_int,
)
from fmlp.losses import cross_entropy, softmax_cross_entropy_grad
from fmlp.model import backprop, check_inputs, check_labels, forward_unchecked
from fmlp.optim import AnyOptimizer, Optimizer, ScaleByLearningRateState, apply_updates, sgd
from fmlp.params import MLP
from fmlp.tree import static_field, tree_copy, tree_stack
from fmlp.types import FloatArray, IntArray

C = TypeVar("C")
X = TypeVar("X")
Y = TypeVar("Y")
S = TypeVar("S")

Batch: TypeAlias = tuple[FloatArray, IntArray]
F64: TypeAlias = NDArray[np.float64]


def scan(f: Callable[[C, X], tuple[C, Y]], carry: C, xs: Iterable[X]) -> tuple[C, Y]:
    """Thread ``carry`` through ``f`` over ``xs`` and stack the per-step outputs.

    Like ``jax.lax.scan``: returns the final carry and a tree whose leaves are the
    outputs' leaves stacked along a new leading axis. ``xs`` must not be empty.
    """
    expect_callable(f, "scan", "f", "a function (carry, x) -> (carry, y)")
    ys: list[Y] = []
    for x in xs:
        carry, y = f(carry, x)
        ys.append(y)
    if not ys:
        raise ValueError("scan over an empty sequence: there is nothing to stack")
    return carry, tree_stack(ys)


def _f64(value: float) -> F64:
    return np.asarray(value, dtype=np.float64)


@attrs.frozen(eq=False)
class TrainState(Generic[S]):
    """What a training step carries: parameters, optimizer state and the step count."""

    params: MLP
    opt_state: S
    step: int = static_field(default=0)
    diverged: bool = static_field(default=False)


@attrs.frozen(eq=False)
class StepMetrics:
    """One step's mini-batch loss, accuracy and size (0-d arrays; stacked by ``scan``)."""

    loss: F64
    accuracy: F64
    count: F64


@attrs.frozen(eq=False)
class Evaluation:
    """Mean cross-entropy and accuracy over a dataset."""

    loss: float
    accuracy: float


@attrs.frozen(eq=False)
class EpochMetrics:
    """Per-epoch figures (0-d arrays in one epoch; (E,) arrays once stacked by ``fit``).

    train_loss / train_accuracy: measured on the whole training set at the end of the
    epoch (NaN when ``fit(..., eval_train=False)``). running_loss / running_accuracy:
    sample-weighted means over the epoch's mini-batches. val_*: on the validation set
    (NaN without one). diverged: a non-finite loss was met (the fit stops updating).
    """

    train_loss: F64
    train_accuracy: F64
    running_loss: F64
    running_accuracy: F64
    val_loss: F64
    val_accuracy: F64
    diverged: NDArray[np.bool_]
    seconds: F64


def init_state(params: MLP, optimizer: Optimizer[S]) -> TrainState[S]:
    """The state before the first step."""
    expect_params(params, "init_state")
    expect_optimizer(optimizer, "init_state")
    return TrainState(params=params, opt_state=optimizer.init(params), step=0)


def make_step(
    optimizer: Optimizer[S], *, donate: bool = False, sgd_in_gemm: bool = False
) -> Callable[[TrainState[S], Batch], tuple[TrainState[S], StepMetrics]]:
    """A training step ``(state, (x, y)) -> (state, StepMetrics)`` for ``optimizer``.

    The batch is not validated (validate the dataset once, as ``fit`` does). With
    ``donate=True`` the step writes the new parameters into the old ones' buffers, and the
    new optimizer state into the old state's arrays (like JAX's buffer donation of the
    whole state): only for loops that own private copies of both, as ``fit``. Then a
    known chain (``fmlp.fused.plan``) runs as one compiled pass per parameter array when
    numba is installed, with the same bits as the numpy rules.
    A non-finite loss leaves the parameters unchanged and marks the state diverged.

    ``sgd_in_gemm=True`` (with ``donate=True``): a plain SGD chain (``sgd``, with an
    ``add_decayed_weights`` term or not, any schedule) updates each layer's weights
    inside the product that would have made their gradient (``fmlp.blas``), when
    numpy's BLAS is available; other chains run as without it. The weights may then
    differ from the default step's in the last bit of some elements (the gradient is not
    rounded before it is scaled), the same on every run and thread count; so it is
    opt-in, and the default step is the reference.
    """
    expect_optimizer(optimizer, "make_step")
    expect(sgd_in_gemm, bool, "make_step", "sgd_in_gemm", "True or False")
    if sgd_in_gemm and not donate:
        raise ValueError(
            "make_step: sgd_in_gemm writes the parameters in place: give donate=True too "
            "(fit and resume do)"
        )
    one_pass = fused.plan(optimizer) if donate else None
    in_gemm = None
    if sgd_in_gemm and optimizer.spec is not None:
        in_gemm = fused.match(optimizer.spec)

    def step(state: TrainState[S], batch: Batch) -> tuple[TrainState[S], StepMetrics]:
        x, y = batch
        n = x.shape[0]
        if state.diverged:
            nan = _f64(math.nan)
            return state, StepMetrics(loss=nan, accuracy=nan, count=_f64(n))
        z, acts, _ = forward_unchecked(state.params, x)
        correct = int(np.count_nonzero(z.argmax(axis=1) == y))
        value, dz = softmax_cross_entropy_grad(z, y, donate=True)
        metrics = StepMetrics(loss=_f64(value), accuracy=_f64(correct / n), count=_f64(n))
        if not math.isfinite(value):
            return attrs.evolve(state, diverged=True), metrics
        if in_gemm is not None:
            new_state = in_gemm.sgd_in_gemm(state.params, acts, dz, state.opt_state)
            if new_state is not None:
                return TrainState(
                    params=state.params, opt_state=new_state, step=state.step + 1
                ), metrics
        grads = backprop(state.params, acts, dz)
        if one_pass is not None:
            new_state = one_pass.step(state.params, grads, state.opt_state)
            if new_state is not None:
                return TrainState(
                    params=state.params, opt_state=new_state, step=state.step + 1
                ), metrics
        # grads were made by this step and are seen by no one else: the optimizer writes
        # its updates into them (bit-identical to its pure update) instead of a new tree.
        updates, opt_state = optimizer.update_into(grads, state.opt_state, state.params)
        params = apply_updates(state.params, updates, donate=donate)
        return TrainState(params=params, opt_state=opt_state, step=state.step + 1), metrics

    return step


def sgd_step(
    state: TrainState[ScaleByLearningRateState], batch: Batch, *, lr: float
) -> tuple[TrainState[ScaleByLearningRateState], StepMetrics]:
    """One plain SGD step on a validated batch: params - lr * grad. Pure."""
    expect_state(state, "sgd_step")
    return make_step(sgd(lr))(state, batch)


def batches(
    x: FloatArray, y: IntArray, batch_size: int, *, order: IntArray | None = None
) -> Iterator[Batch]:
    """Mini-batches of ``batch_size`` rows in ``order`` (default: as stored); the last
    batch holds the remaining rows when ``batch_size`` does not divide N."""
    if batch_size <= 0:  # only the sign: the kind is the callers' check
        raise invalid("batch_size", batch_size, must="be a positive integer", show=str)
    n = x.shape[0]
    for start in range(0, n, batch_size):
        if order is None:
            yield x[start : start + batch_size], y[start : start + batch_size]
        else:
            idx = order[start : start + batch_size]
            yield x[idx], y[idx]


def epoch_order(n: int, seed: int, epoch: int) -> IntArray:
    """The sample order of epoch ``epoch``: a permutation derived from ``(seed, epoch)``."""
    return np.random.default_rng((seed, epoch)).permutation(n)


def train_epoch(
    state: TrainState[S],
    x: FloatArray,
    y: IntArray,
    *,
    optimizer: Optimizer[S],
    batch_size: int,
    seed: int,
    epoch: int,
    shuffle: bool = True,
    donate: bool = False,
    sgd_in_gemm: bool = False,
) -> tuple[TrainState[S], StepMetrics]:
    """One pass over (x, y) in mini-batches: a scan of steps. Returns the new state and
    the stacked per-step metrics. Inputs are validated once here. ``sgd_in_gemm``: see
    ``make_step``."""
    expect_state(state, "train_epoch")
    expect_optimizer(optimizer, "train_epoch")
    expect_int(seed, "train_epoch", "seed")
    expect_int(epoch, "train_epoch", "epoch")
    x = check_inputs(state.params, x)
    y = check_labels(y, x.shape[0], state.params.sizes[-1])
    return _train_epoch_unchecked(
        state,
        x,
        y,
        optimizer=optimizer,
        batch_size=batch_size,
        seed=seed,
        epoch=epoch,
        shuffle=shuffle,
        donate=donate,
        sgd_in_gemm=sgd_in_gemm,
    )


def _train_epoch_unchecked(
    state: TrainState[S],
    x: FloatArray,
    y: IntArray,
    *,
    optimizer: Optimizer[S],
    batch_size: int,
    seed: int,
    epoch: int,
    shuffle: bool,
    donate: bool,
    sgd_in_gemm: bool = False,
) -> tuple[TrainState[S], StepMetrics]:
    """``train_epoch`` without validation, for ``fit``, which validated (x, y) once."""
    order = epoch_order(x.shape[0], seed, epoch) if shuffle else None
    if not donate:
        state = attrs.evolve(
            state, params=tree_copy(state.params), opt_state=tree_copy(state.opt_state)
        )
    step = make_step(optimizer, donate=True, sgd_in_gemm=sgd_in_gemm)
    with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported, not warned
        return scan(step, state, batches(x, y, batch_size, order=order))


def _evaluate_unchecked(params: MLP, x: FloatArray, y: IntArray, chunk: int) -> Evaluation:
    total_loss = 0.0
    correct = 0
    for start in range(0, x.shape[0], chunk):
        xb, yb = x[start : start + chunk], y[start : start + chunk]
        z = forward_unchecked(params, xb)[0]
        correct += int(np.count_nonzero(z.argmax(axis=1) == yb))
        total_loss += cross_entropy(z, yb, reduction="sum")
    n = x.shape[0]
    return Evaluation(loss=total_loss / n, accuracy=correct / n)


def evaluate(params: MLP, x: FloatArray, y: IntArray, *, chunk: int = 2048) -> Evaluation:
    """Mean cross-entropy and accuracy of ``params`` on (x, y), in chunks of ``chunk``
    rows so memory stays bounded whatever N is."""
    expect_params(params, "evaluate")
    expect_int(chunk, "evaluate", "chunk")
    positive_int("chunk", chunk, show=str)
    x = check_inputs(params, x)
    y = check_labels(y, x.shape[0], params.sizes[-1])
    return _evaluate_unchecked(params, x, y, chunk)


EpochCallback: TypeAlias = Callable[[int, EpochMetrics], None]


def fit(
    params: MLP,
    x: FloatArray,
    y: IntArray,
    *,
    epochs: int,
    batch_size: int,
    optimizer: Optimizer[S] | None = None,
    lr: float | None = None,
    seed: int = 0,
    validation: tuple[FloatArray, IntArray] | None = None,
    eval_train: bool = True,
    shuffle: bool = True,
    callback: EpochCallback | None = None,
    params_callback: Callable[[int, MLP], None] | None = None,
    sgd_in_gemm: bool = False,
) -> tuple[TrainState[Any], EpochMetrics]:
    """Train ``params`` for ``epochs`` epochs of mini-batch steps: a scan of epochs.

    Give either ``optimizer`` or ``lr`` (plain SGD). This is
    ``resume(init_state(params, optimizer), x, y, start_epoch=0, ...)``: see ``resume``
    for the other arguments and what comes back. ``params`` is not modified.
    """
    expect_params(params, "fit")
    if (optimizer is None) == (lr is None):
        raise ValueError("fit needs exactly one of optimizer= or lr= (plain SGD)")
    if optimizer is not None:
        expect_optimizer(optimizer, "fit")
    expect_training(
        "fit", seed=seed, validation=validation, callback=callback, params_callback=params_callback
    )
    opt: AnyOptimizer = sgd(lr) if optimizer is None else optimizer  # type: ignore[arg-type]  # lr is set when optimizer is None
    positive_int("epochs", epochs, show=str)
    return resume(
        init_state(params, opt),
        x,
        y,
        optimizer=opt,
        start_epoch=0,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        validation=validation,
        eval_train=eval_train,
        shuffle=shuffle,
        callback=callback,
        params_callback=params_callback,
        sgd_in_gemm=sgd_in_gemm,
    )


def resume(
    state: TrainState[S],
    x: FloatArray,
    y: IntArray,
    *,
    optimizer: Optimizer[S],
    start_epoch: int,
    epochs: int,
    batch_size: int,
    seed: int = 0,
    validation: tuple[FloatArray, IntArray] | None = None,
    eval_train: bool = True,
    shuffle: bool = True,
    callback: EpochCallback | None = None,
    params_callback: Callable[[int, MLP], None] | None = None,
    sgd_in_gemm: bool = False,
) -> tuple[TrainState[S], EpochMetrics]:
    """Continue training from ``state``: run epochs ``start_epoch .. epochs - 1``.

    ``state`` carries the parameters, the optimizer state (its counts drive the
    schedules), the step count and the diverged flag; it is not modified. Epoch ``e``
    visits the samples in the order ``epoch_order(N, seed, e)`` (in stored order with
    ``shuffle=False``), so a fit of E epochs and a fit of K < E epochs resumed here with
    ``start_epoch=K`` give the same parameters, optimizer state and metrics, bit for bit.

    Returns the final TrainState and the EpochMetrics of the epochs run, stacked: fields
    of shape (epochs - start_epoch,). A run whose loss becomes non-finite is not an
    error: its metrics say ``diverged`` from that epoch on, with NaN losses, and its
    parameters stop changing. ``callback(epoch, metrics)`` is called after each epoch
    (for progress bars); ``params_callback(epoch, params)`` after it, with a copy of the
    epoch's final parameters (for diagnostics that need the model itself).
    ``sgd_in_gemm``: a plain SGD step folded into the weight gradient's product (see
    ``make_step``; opt-in, as its weights may differ from the default's in the last bit).
    """
    expect_state(state, "resume")
    expect(sgd_in_gemm, bool, "resume", "sgd_in_gemm", "True or False")
    expect_optimizer(optimizer, "resume")
    expect_training(
        "resume",
        seed=seed,
        validation=validation,
        callback=callback,
        params_callback=params_callback,
    )
    nonnegative_int("start_epoch", start_epoch, show=str)
    positive_int("epochs", epochs, show=str)
    if epochs <= start_epoch:
        raise ValueError(
            f"nothing to run: epochs ({epochs}) must exceed start_epoch ({start_epoch})"
        )
    positive_int("batch_size", batch_size, show=str)
    params = state.params
    x = check_inputs(params, x)
    y = check_labels(y, x.shape[0], params.sizes[-1])
    if validation is not None:
        xv = check_inputs(params, validation[0])
        yv = check_labels(validation[1], xv.shape[0], params.sizes[-1])
    nan = _f64(math.nan)

    def run_epoch(state: TrainState[S], epoch: int) -> tuple[TrainState[S], EpochMetrics]:
        start = time.perf_counter()
        state, steps = _train_epoch_unchecked(
            state,
            x,
            y,
            optimizer=optimizer,
            batch_size=batch_size,
            seed=seed,
            epoch=epoch,
            shuffle=shuffle,
            donate=True,
            sgd_in_gemm=sgd_in_gemm,
        )
        weights = steps.count / steps.count.sum()
        diverged = state.diverged
        running_loss = _f64(float(np.sum(steps.loss * weights))) if not diverged else nan
        running_acc = _f64(float(np.sum(steps.accuracy * weights))) if not diverged else nan
        train_eval = val_eval = None
        if not diverged and eval_train:
            train_eval = _evaluate_unchecked(state.params, x, y, 2048)
        if not diverged and validation is not None:
            val_eval = _evaluate_unchecked(state.params, xv, yv, 2048)
        metrics = EpochMetrics(
            train_loss=_f64(train_eval.loss) if train_eval else nan,
            train_accuracy=_f64(train_eval.accuracy) if train_eval else nan,
            running_loss=running_loss,
            running_accuracy=running_acc,
            val_loss=_f64(val_eval.loss) if val_eval else nan,
            val_accuracy=_f64(val_eval.accuracy) if val_eval else nan,
            diverged=np.asarray(diverged),
            seconds=_f64(time.perf_counter() - start),
        )
        if callback is not None:
            callback(epoch, metrics)
        if params_callback is not None:
            params_callback(epoch, tree_copy(state.params))
        return state, metrics

    # Private copies of the parameters and the optimizer state, which the steps then
    # update in place (the caller's state is never written).
    own: TrainState[S] = attrs.evolve(
        state, params=tree_copy(params), opt_state=tree_copy(state.opt_state)
    )
    with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported, not warned
        return scan(run_epoch, own, range(start_epoch, epochs))
