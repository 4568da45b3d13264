"""The training loop: scan, epochs with partial batches, fit, evaluate, divergence,
determinism, validation of arguments, and the real-MNIST acceptance run."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

import fmlp
from fmlp.optim import Optimizer, apply_updates
from fmlp.train import batches, epoch_order
from fmlp.tree import tree_copy, tree_leaves

MakeParams = Callable[..., fmlp.MLP]
MakeBatch = Callable[..., tuple[NDArray[Any], NDArray[np.int64]]]
Optimizers = dict[str, Callable[[], Optimizer[Any]]]
SameLeaves = Callable[[object, object], bool]
StepCounts = Callable[[object], list[int]]

METRIC_FIELDS = (
    "train_loss",
    "train_accuracy",
    "running_loss",
    "running_accuracy",
    "val_loss",
    "val_accuracy",
    "diverged",
)


def blobs(
    n: int, *, seed: int = 0, dtype: Any = np.float64, n_features: int = 8, n_classes: int = 3
) -> tuple[Any, Any]:
    """Separable data: class k is a unit Gaussian around 4 * e_k."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n).astype(np.int64)
    centers = 4.0 * np.eye(n_classes, n_features)
    x = centers[y] + rng.standard_normal((n, n_features))
    return x.astype(dtype), y


# ------------------------------------------------------------------ scan


def test_scan_threads_the_carry_and_stacks_outputs() -> None:
    def step(total: int, x: int) -> tuple[int, tuple[NDArray[Any], NDArray[Any]]]:
        return total + x, (np.asarray(total), np.array([x, -x]))

    final, (before, pairs) = fmlp.scan(step, 0, [1, 2, 3, 4])
    assert final == 10
    np.testing.assert_array_equal(before, [0, 1, 3, 6])
    np.testing.assert_array_equal(pairs, [[1, -1], [2, -2], [3, -3], [4, -4]])


def test_scan_stacks_records() -> None:
    def step(c: float, x: float) -> tuple[float, fmlp.StepMetrics]:
        m = fmlp.StepMetrics(loss=np.asarray(x), accuracy=np.asarray(c), count=np.asarray(1.0))
        return c + 1, m

    final, stacked = fmlp.scan(step, 0.0, [0.5, 0.25, 0.125])
    assert final == 3.0
    assert isinstance(stacked, fmlp.StepMetrics)
    np.testing.assert_array_equal(stacked.loss, [0.5, 0.25, 0.125])
    np.testing.assert_array_equal(stacked.accuracy, [0.0, 1.0, 2.0])


def test_scan_over_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="empty sequence"):
        fmlp.scan(lambda c, x: (c, np.asarray(x)), 0, [])


# ------------------------------------------------------------------ batches and epochs


@pytest.mark.parametrize(
    ("n", "batch_size", "sizes"), [(10, 4, [4, 4, 2]), (8, 4, [4, 4]), (3, 5, [3]), (7, 1, [1] * 7)]
)
def test_batches_cover_every_sample_once(n: int, batch_size: int, sizes: list[int]) -> None:
    x = np.arange(n * 2, dtype=np.float64).reshape(n, 2)
    y = np.arange(n)
    for order in (None, epoch_order(n, 0, 0)):
        got = list(batches(x, y, batch_size, order=order))
        assert [len(b[1]) for b in got] == sizes
        seen = np.concatenate([b[1] for b in got])
        np.testing.assert_array_equal(np.sort(seen), y)
        np.testing.assert_array_equal(seen, y if order is None else order)
        for bx, by in got:
            np.testing.assert_array_equal(bx, x[by])


def test_epoch_order_is_a_derived_permutation() -> None:
    a = epoch_order(100, 3, 0)
    np.testing.assert_array_equal(np.sort(a), np.arange(100))
    np.testing.assert_array_equal(a, epoch_order(100, 3, 0))
    assert not np.array_equal(a, epoch_order(100, 3, 1))
    assert not np.array_equal(a, epoch_order(100, 4, 0))


def reference_epoch(
    params: fmlp.MLP, x: Any, y: Any, *, lr: float, batch_size: int, order: Any
) -> tuple[fmlp.MLP, list[float], list[int]]:
    """One epoch of mini-batch SGD written with fmlp.grad, for comparison."""
    losses, counts = [], []
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        value, g = fmlp.grad(params, x[idx], y[idx])
        params = fmlp.tree_map(lambda p, d: p - p.dtype.type(lr) * d, params, g)
        losses.append(value)
        counts.append(len(idx))
    return params, losses, counts


@pytest.mark.parametrize("shuffle", [True, False])
def test_train_epoch_handles_the_partial_last_batch(
    shuffle: bool, make_params: MakeParams, same_leaves: SameLeaves
) -> None:
    x, y = blobs(23)
    params = make_params((8, 6, 3), "relu")
    params0 = fmlp.tree_map(np.copy, params)
    state = fmlp.init_state(params, fmlp.sgd(0.3))
    new, steps = fmlp.train_epoch(
        state, x, y, optimizer=fmlp.sgd(0.3), batch_size=5, seed=4, epoch=2, shuffle=shuffle
    )
    np.testing.assert_array_equal(steps.count, [5, 5, 5, 5, 3])  # every sample once
    assert float(steps.count.sum()) == 23
    assert new.step == 5
    order = epoch_order(23, 4, 2) if shuffle else np.arange(23)
    expected, losses, counts = reference_epoch(params0, x, y, lr=0.3, batch_size=5, order=order)
    assert counts == [5, 5, 5, 5, 3]
    np.testing.assert_allclose(steps.loss, losses, rtol=1e-12)
    assert fmlp.tree_allclose(new.params, expected, rtol=1e-11, atol=1e-13)
    assert same_leaves(state.params, params0)  # donate=False: the caller's params survive


def test_train_epoch_validates_its_inputs(make_params: MakeParams) -> None:
    state = fmlp.init_state(make_params((8, 6, 3)), fmlp.sgd(0.1))
    x, y = blobs(10)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        fmlp.train_epoch(state, x, y, optimizer=fmlp.sgd(0.1), batch_size=0, seed=0, epoch=0)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        fmlp.train_epoch(state, x, y + 3, optimizer=fmlp.sgd(0.1), batch_size=4, seed=0, epoch=0)
    with pytest.raises(ValueError, match="input feature size"):
        fmlp.train_epoch(state, x[:, :5], y, optimizer=fmlp.sgd(0.1), batch_size=4, seed=0, epoch=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_training_step_equals_the_pure_composition_bit_for_bit(
    optimizer_name: str,
    dtype: Any,
    make_params: MakeParams,
    make_batch: MakeBatch,
    same_leaves: SameLeaves,
    optimizers: Optimizers,
) -> None:
    """make_step (the fast path: update_into, donated parameters) against the reference
    grad -> update -> apply_updates, over an epoch whose last batch is partial
    (50 = 16 + 16 + 16 + 2): the same parameters and optimizer state, bit for bit."""
    opt = optimizers[optimizer_name]()
    params = make_params((20, 16, 12, 10), "relu", seed=3, dtype=dtype)
    x, y = make_batch(50, 20, 10, dtype=dtype)
    order = epoch_order(50, 7, 0)
    state, steps = fmlp.train_epoch(
        fmlp.init_state(params, opt), x, y, optimizer=opt, batch_size=16, seed=7, epoch=0
    )
    p, s = params, opt.init(params)
    losses = []
    for start in range(0, 50, 16):
        idx = order[start : start + 16]
        value, g = fmlp.grad(p, x[idx], y[idx])
        u, s = opt.update(g, s, p)
        p = apply_updates(p, u)
        losses.append(value)
    assert same_leaves(state.params, p)
    assert same_leaves(state.opt_state, s)
    assert state.step == 4
    np.testing.assert_array_equal(steps.loss, losses)
    assert all(q.dtype == dtype for q in tree_leaves(state.params))


@pytest.mark.parametrize("name", ["momentum", "adamw"])
def test_fit_and_train_epoch_do_not_mutate_the_callers_params_or_state(
    name: str,
    make_params: MakeParams,
    make_batch: MakeBatch,
    same_leaves: SameLeaves,
    optimizers: Optimizers,
) -> None:
    opt = optimizers[name]()
    params = make_params((20, 16, 12, 10), "relu", seed=4, dtype=np.float32)
    before = tree_copy(params)
    x, y = make_batch(40, 20, 10, dtype=np.float32)
    # a state with non-zero velocities or moments, so that a write into it would show
    state, _ = fmlp.train_epoch(
        fmlp.init_state(params, opt), x, y, optimizer=opt, batch_size=16, seed=1, epoch=0
    )
    state_before = tree_copy(state)
    new, _ = fmlp.train_epoch(state, x, y, optimizer=opt, batch_size=16, seed=0, epoch=1)
    assert same_leaves(state, state_before)  # params and optimizer state
    assert not same_leaves(new.params, state.params)
    fmlp.fit(params, x, y, epochs=2, batch_size=16, optimizer=opt)
    assert same_leaves(params, before)
    step = fmlp.make_step(fmlp.sgd(0.1))  # donate=False: a pure step
    after, _ = step(fmlp.init_state(params, fmlp.sgd(0.1)), (x[:16], y[:16]))
    assert same_leaves(params, before) and not same_leaves(after.params, before)


# ------------------------------------------------------------------ fit


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fit_learns_separable_data(dtype: Any) -> None:
    x, y = blobs(300, seed=0, dtype=dtype)
    xv, yv = blobs(100, seed=1, dtype=dtype)
    params = fmlp.init((8, 16, 3), seed=0, dtype=dtype)
    before = fmlp.evaluate(params, xv, yv)
    state, m = fmlp.fit(params, x, y, epochs=5, batch_size=32, lr=0.2, seed=0, validation=(xv, yv))
    for name in METRIC_FIELDS:
        assert getattr(m, name).shape == (5,), name
    assert m.seconds.shape == (5,) and (m.seconds >= 0).all()
    assert not m.diverged.any()
    assert state.params.dtype == np.dtype(dtype)
    assert state.step == 5 * math.ceil(300 / 32)
    assert m.train_loss[-1] < 0.5 * m.train_loss[0] or m.train_loss[-1] < 0.1
    assert m.val_loss[-1] < before.loss / 2
    assert m.train_accuracy[-1] > 0.95 and m.val_accuracy[-1] > 0.95
    assert before.accuracy < 0.9
    final = fmlp.evaluate(state.params, xv, yv)
    assert final.loss == pytest.approx(float(m.val_loss[-1]), rel=1e-6)
    assert final.accuracy == float(m.val_accuracy[-1])
    assert fmlp.evaluate(state.params, x, y).accuracy == float(m.train_accuracy[-1])


def test_fit_with_momentum_and_partial_batches() -> None:
    x, y = blobs(101, seed=2)
    params = fmlp.init((8, 10, 10, 3), activation="tanh", seed=1)
    state, m = fmlp.fit(
        params, x, y, epochs=4, batch_size=16, optimizer=fmlp.momentum(0.05, 0.9), seed=3
    )
    assert [type(s) for s in state.opt_state] == [fmlp.TraceState, fmlp.ScaleByLearningRateState]
    assert state.step == 4 * 7 and state.opt_state[1].count == 28
    assert m.train_loss[-1] < m.train_loss[0]
    assert m.train_accuracy[-1] > 0.95
    assert np.isnan(m.val_loss).all() and np.isnan(m.val_accuracy).all()  # no validation data


def test_fit_first_epoch_equals_train_epoch(same_leaves: SameLeaves) -> None:
    x, y = blobs(50, seed=5)
    params = fmlp.init((8, 6, 3), seed=2)
    state, m = fmlp.fit(params, x, y, epochs=1, batch_size=16, lr=0.1, seed=7)
    ref, steps = fmlp.train_epoch(
        fmlp.init_state(params, fmlp.sgd(0.1)),
        x,
        y,
        optimizer=fmlp.sgd(0.1),
        batch_size=16,
        seed=7,
        epoch=0,
    )
    assert same_leaves(state.params, ref.params)
    np.testing.assert_array_equal(steps.count, [16, 16, 16, 2])
    expected_running = float(np.sum(steps.loss * steps.count) / 50)
    assert float(m.running_loss[0]) == pytest.approx(expected_running, rel=1e-12)
    assert float(m.running_accuracy[0]) == pytest.approx(
        float(np.sum(steps.accuracy * steps.count) / 50), rel=1e-12
    )


def test_fit_does_not_mutate_its_inputs(same_leaves: SameLeaves) -> None:
    x, y = blobs(40)
    xv, yv = blobs(20, seed=1)
    params = fmlp.init((8, 6, 3), seed=0)
    copies = fmlp.tree_map(np.copy, params), x.copy(), y.copy(), xv.copy()
    state, _ = fmlp.fit(params, x, y, epochs=2, batch_size=8, lr=0.5, validation=(xv, yv))
    assert same_leaves(params, copies[0])
    assert not same_leaves(state.params, params)  # it did train
    assert all(p is not q for p, q in zip(fmlp.tree_leaves(state.params), fmlp.tree_leaves(params)))
    np.testing.assert_array_equal(x, copies[1])
    np.testing.assert_array_equal(y, copies[2])
    np.testing.assert_array_equal(xv, copies[3])


def test_fit_is_deterministic_bit_for_bit(same_leaves: SameLeaves) -> None:
    x, y = blobs(90, seed=3)
    xv, yv = blobs(30, seed=4)

    def run(seed: int, *, shuffle: bool = True) -> tuple[Any, fmlp.EpochMetrics]:
        params = fmlp.init((8, 12, 3), scheme="he", seed=seed)
        return fmlp.fit(
            params,
            x,
            y,
            epochs=3,
            batch_size=16,
            lr=0.1,
            seed=seed,
            validation=(xv, yv),
            shuffle=shuffle,
        )

    (s1, m1), (s2, m2) = run(11), run(11)
    for name in METRIC_FIELDS:
        assert np.array_equal(getattr(m1, name), getattr(m2, name)), name
    assert same_leaves(s1.params, s2.params)
    s3, m3 = run(12)
    assert not same_leaves(s1.params, s3.params)
    assert not np.array_equal(m1.running_loss, m3.running_loss)


def test_fit_shuffle_seed_changes_the_order_only(same_leaves: SameLeaves) -> None:
    x, y = blobs(60, seed=3)
    params = fmlp.init((8, 6, 3), seed=0)
    a, _ = fmlp.fit(params, x, y, epochs=1, batch_size=8, lr=0.1, seed=1)
    b, _ = fmlp.fit(params, x, y, epochs=1, batch_size=8, lr=0.1, seed=2)
    c, _ = fmlp.fit(params, x, y, epochs=1, batch_size=8, lr=0.1, seed=1, shuffle=False)
    d, _ = fmlp.fit(params, x, y, epochs=1, batch_size=8, lr=0.1, seed=2, shuffle=False)
    assert not same_leaves(a.params, b.params)
    assert same_leaves(c.params, d.params)
    # one full batch: the order cannot matter beyond summation order
    e, _ = fmlp.fit(params, x, y, epochs=1, batch_size=60, lr=0.1, seed=1)
    f, _ = fmlp.fit(params, x, y, epochs=1, batch_size=60, lr=0.1, seed=2)
    assert fmlp.tree_allclose(e.params, f.params, rtol=1e-12, atol=1e-14)


def test_fit_calls_the_callback_once_per_epoch() -> None:
    x, y = blobs(40)
    calls: list[tuple[int, fmlp.EpochMetrics]] = []
    _, m = fmlp.fit(
        fmlp.init((8, 6, 3), seed=0),
        x,
        y,
        epochs=4,
        batch_size=16,
        lr=0.1,
        callback=lambda e, em: calls.append((e, em)),
    )
    assert [e for e, _ in calls] == [0, 1, 2, 3]
    for e, em in calls:
        assert em.train_loss.shape == ()
        assert float(em.train_loss) == float(m.train_loss[e])
        assert float(em.running_accuracy) == float(m.running_accuracy[e])


def test_fit_without_train_evaluation() -> None:
    x, y = blobs(40)
    xv, yv = blobs(20, seed=1)
    _, m = fmlp.fit(
        fmlp.init((8, 6, 3), seed=0),
        x,
        y,
        epochs=2,
        batch_size=16,
        lr=0.1,
        eval_train=False,
        validation=(xv, yv),
    )
    assert np.isnan(m.train_loss).all() and np.isnan(m.train_accuracy).all()
    assert np.isfinite(m.val_loss).all() and np.isfinite(m.running_loss).all()


def test_divergence_is_recorded_not_raised() -> None:
    x, y = blobs(64, seed=0)
    xv, yv = blobs(16, seed=1)
    params = fmlp.init((8, 16, 3), scheme="normal", seed=0)
    state, m = fmlp.fit(params, x, y, epochs=3, batch_size=16, lr=1e300, validation=(xv, yv))
    assert m.diverged.dtype == np.bool_
    assert m.diverged.all()
    for name in ("train_loss", "running_loss", "val_loss", "val_accuracy", "running_accuracy"):
        assert np.isnan(getattr(m, name)).all(), name
    assert state.diverged
    assert all(np.isfinite(leaf).all() for leaf in fmlp.tree_leaves(state.params))


def test_divergence_with_huge_inputs() -> None:
    x, y = blobs(64, seed=0)
    params = fmlp.init((8, 16, 3), scheme="normal", seed=0)
    state, m = fmlp.fit(params, x * 1e150, y, epochs=2, batch_size=16, lr=1.0)
    assert m.diverged.all() and np.isnan(m.running_loss).all()
    assert all(np.isfinite(leaf).all() for leaf in fmlp.tree_leaves(state.params))


def test_divergence_in_a_later_epoch_keeps_the_earlier_metrics() -> None:
    x, y = blobs(64, seed=0)
    params = fmlp.init((8, 16, 3), scheme="normal", seed=0)

    def schedule(step: int) -> float:  # 4 steps per epoch: sane in epoch 0, absurd after
        return 0.1 if step < 4 else 1e300

    state, m = fmlp.fit(params, x, y, epochs=3, batch_size=16, optimizer=fmlp.sgd(schedule))
    np.testing.assert_array_equal(m.diverged, [False, True, True])
    assert np.isfinite(m.train_loss[0]) and np.isfinite(m.running_loss[0])
    assert np.isnan(m.train_loss[1:]).all() and np.isnan(m.running_loss[1:]).all()
    assert state.diverged


def test_make_step_marks_divergence_and_keeps_params(
    make_params: MakeParams, same_leaves: SameLeaves
) -> None:
    params = make_params((8, 6, 3), "relu")
    bad = fmlp.tree_map(lambda p: p * 1e200, params)
    x, y = blobs(8)
    step = fmlp.make_step(fmlp.sgd(0.1))
    with np.errstate(over="ignore", invalid="ignore"):
        state, metrics = step(fmlp.init_state(bad, fmlp.sgd(0.1)), (x * 1e200, y))
    assert state.diverged
    assert not math.isfinite(float(metrics.loss))
    assert same_leaves(state.params, bad)
    again, m2 = step(state, (x, y))
    assert again is state and math.isnan(float(m2.loss)) and float(m2.count) == 8


# ------------------------------------------------------------------ resume


Fit = tuple[fmlp.TrainState[Any], fmlp.EpochMetrics]


@pytest.fixture
def assert_same_fit(same_leaves: SameLeaves, step_counts: StepCounts) -> Callable[[Fit, Fit], None]:
    """``assert_same_fit(a, b)`` for two ``(state, metrics)`` results of ``fit``."""

    def check(a: Fit, b: Fit) -> None:
        """The same parameters, optimizer state (leaves and counts), step count and flag,
        and every per-epoch metric but ``seconds``, bit for bit."""
        (sa, ma), (sb, mb) = a, b
        assert same_leaves(sa.params, sb.params)
        assert same_leaves(sa.opt_state, sb.opt_state)
        assert step_counts(sa.opt_state) == step_counts(sb.opt_state)
        assert (sa.step, sa.diverged) == (sb.step, sb.diverged)
        for name in METRIC_FIELDS:
            np.testing.assert_array_equal(getattr(ma, name), getattr(mb, name), err_msg=name)

    return check


def concat(first: fmlp.EpochMetrics, rest: fmlp.EpochMetrics) -> fmlp.EpochMetrics:
    return fmlp.tree_map(lambda a, b: np.concatenate([a, b]), first, rest)


RESUME_OPTIMIZERS: dict[str, Callable[[int], Optimizer[Any]]] = {
    # the schedule spans the whole 10-epoch horizon, so resuming must keep its step count
    "sgd-cosine": lambda total: fmlp.sgd(fmlp.cosine_decay(0.3, total_steps=total)),
    "momentum": lambda total: fmlp.momentum(0.05, 0.9),
    "adam": lambda total: fmlp.adam(0.01),
}


@pytest.mark.parametrize("name", sorted(RESUME_OPTIMIZERS))
def test_fit_then_resume_equals_the_uninterrupted_fit_bit_for_bit(
    name: str,
    same_leaves: SameLeaves,
    step_counts: StepCounts,
    assert_same_fit: Callable[[Fit, Fit], None],
) -> None:
    x, y = blobs(90, seed=3)
    xv, yv = blobs(30, seed=4)
    opt = RESUME_OPTIMIZERS[name](10 * math.ceil(90 / 16))
    params = fmlp.init((8, 12, 3), activation="tanh", seed=5)
    kwargs: dict[str, Any] = {"batch_size": 16, "seed": 11, "validation": (xv, yv)}
    full = fmlp.fit(params, x, y, epochs=10, optimizer=opt, **kwargs)
    head_state, head = fmlp.fit(params, x, y, epochs=3, optimizer=opt, **kwargs)
    head_copy = tree_copy(head_state)
    calls: list[int] = []
    seen: list[int] = []
    tail_state, tail = fmlp.resume(
        head_state,
        x,
        y,
        optimizer=opt,
        start_epoch=3,
        epochs=10,
        callback=lambda e, m: calls.append(e),
        params_callback=lambda e, p: seen.append(e),
        **kwargs,
    )
    assert calls == seen == list(range(3, 10))
    assert tail.val_loss.shape == (7,)
    assert_same_fit(full, (tail_state, concat(head, tail)))
    assert same_leaves(head_state, head_copy)  # the caller's state is not modified
    assert tail_state.step == 10 * 6 and step_counts(tail_state.opt_state)[-1] == 60


def test_resume_a_diverged_state_stays_diverged(same_leaves: SameLeaves) -> None:
    x, y = blobs(64, seed=0)
    params = fmlp.init((8, 16, 3), scheme="normal", seed=0)
    state, _ = fmlp.fit(params, x, y, epochs=1, batch_size=16, lr=1e300)
    assert state.diverged
    again, m = fmlp.resume(
        state, x, y, optimizer=fmlp.sgd(1e300), start_epoch=1, epochs=3, batch_size=16
    )
    assert again.diverged and again.step == state.step
    np.testing.assert_array_equal(m.diverged, [True, True])
    assert np.isnan(m.running_loss).all() and np.isnan(m.train_loss).all()
    assert same_leaves(again.params, state.params)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"start_epoch": -1}, "start_epoch must be a non-negative integer, got -1"),
        ({"start_epoch": 1.0}, "start_epoch must be a non-negative integer"),
        ({"start_epoch": 3, "epochs": 3}, r"nothing to run: epochs \(3\) must exceed"),
        ({"epochs": 0}, "epochs must be a positive integer"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
    ],
)
def test_resume_rejects_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    x, y = blobs(10)
    state = fmlp.init_state(fmlp.init((8, 4, 3), seed=0), fmlp.sgd(0.1))
    args: dict[str, Any] = {"start_epoch": 0, "epochs": 2, "batch_size": 4}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        fmlp.resume(state, x, y, optimizer=fmlp.sgd(0.1), **args)


# ------------------------------------------------------------------ evaluate


@pytest.mark.parametrize("chunk", [1, 7, 50, 2048])
def test_evaluate_in_chunks_equals_one_shot(
    chunk: int, make_params: MakeParams, make_batch: MakeBatch
) -> None:
    params = make_params((6, 9, 4), "sigmoid")
    x, y = make_batch(50, 6, 4)
    result = fmlp.evaluate(params, x, y, chunk=chunk)
    assert isinstance(result, fmlp.Evaluation)
    assert result.loss == pytest.approx(fmlp.loss(params, x, y), rel=1e-12)
    assert result.accuracy == float(np.mean(fmlp.predict(params, x) == y))
    one_shot = fmlp.evaluate(params, x, y, chunk=len(y))
    assert result.loss == pytest.approx(one_shot.loss, rel=1e-12)
    assert result.accuracy == one_shot.accuracy


def test_evaluate_float32(make_params: MakeParams, make_batch: MakeBatch) -> None:
    params = make_params((6, 9, 4), "relu", dtype=np.float32)
    x, y = make_batch(30, 6, 4, dtype=np.float32)
    result = fmlp.evaluate(params, x, y, chunk=8)
    p64 = fmlp.tree_map(lambda p: p.astype(np.float64), params)
    assert result.loss == pytest.approx(fmlp.loss(p64, x.astype(np.float64), y), rel=1e-5)


@pytest.mark.parametrize("chunk", [0, -5])
def test_evaluate_bad_chunk(chunk: int, make_params: MakeParams, make_batch: MakeBatch) -> None:
    params = make_params((6, 9, 4))
    x, y = make_batch(5, 6, 4)
    with pytest.raises(ValueError, match="chunk must be a positive integer"):
        fmlp.evaluate(params, x, y, chunk=chunk)


# ------------------------------------------------------------------ fit arguments


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epochs": 0}, "epochs must be a positive integer, got 0"),
        ({"epochs": -2}, "epochs must be a positive integer"),
        ({"epochs": 1.5}, "epochs must be a positive integer"),
        ({"epochs": True}, "epochs must be a positive integer"),
        ({"batch_size": 0}, "batch_size must be a positive integer, got 0"),
        ({"batch_size": -1}, "batch_size must be a positive integer"),
        ({"batch_size": 2.0}, "batch_size must be a positive integer"),
        ({"lr": 0.0}, "learning rate must be a positive finite number"),
        ({"lr": -0.1}, "learning rate must be a positive finite number"),
        ({"lr": math.nan}, "learning rate must be a positive finite number"),
        ({"lr": None}, "exactly one of optimizer= or lr="),
        ({"optimizer": fmlp.sgd(0.1)}, "exactly one of optimizer= or lr="),
    ],
)
def test_fit_rejects_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    x, y = blobs(10)
    args: dict[str, Any] = {"epochs": 1, "batch_size": 4, "lr": 0.1}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        fmlp.fit(fmlp.init((8, 4, 3), seed=0), x, y, **args)


# ------------------------------------------------------------------ real MNIST


@pytest.mark.real_data
@pytest.mark.slow
def test_mnist_784_512_512_10_one_epoch_over_95_percent(real_mnist: Any) -> None:
    train, valid = real_mnist.train, real_mnist.valid
    assert train.x.shape[1] == 784 and train.x.dtype == np.float32
    params = fmlp.init((784, 512, 512, 10), activation="relu", seed=0, dtype=np.float32)
    _, m = fmlp.fit(
        params,
        train.x,
        train.y,
        epochs=1,
        batch_size=64,
        lr=0.1,
        seed=0,
        validation=(valid.x, valid.y),
        eval_train=False,
    )
    assert not m.diverged.any()
    assert float(m.val_accuracy[0]) > 0.95, f"validation accuracy {float(m.val_accuracy[0]):.4f}"
