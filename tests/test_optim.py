"""Optimizers: the (init, update) pairs, schedules, and parity with torch.optim.SGD."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

import fmlp

MakeParams = Callable[..., fmlp.MLP]
MakeBatch = Callable[..., tuple[NDArray[Any], NDArray[np.int64]]]
DTYPES: tuple[Any, ...] = (np.float32, np.float64)


def same_leaves(a: Any, b: Any) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(fmlp.tree_leaves(a), fmlp.tree_leaves(b)))


# ------------------------------------------------------------------ plain SGD


@pytest.mark.parametrize("dtype", DTYPES)
def test_sgd_update_is_minus_lr_times_grad(dtype: Any, make_params: MakeParams) -> None:
    params = make_params((4, 5, 3), dtype=dtype)
    grads = make_params((4, 5, 3), seed=9, dtype=dtype)
    opt = fmlp.sgd(0.25)
    state = opt.init(params)
    assert type(state) is fmlp.SgdState
    assert state.count == 0
    updates, new_state = opt.update(grads, state, params)
    assert new_state.count == 1 and state.count == 0
    for u, g in zip(fmlp.tree_leaves(updates), fmlp.tree_leaves(grads)):
        assert u.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(u, g * g.dtype.type(-0.25))
    stepped = fmlp.apply_updates(params, updates)
    for s, p, u in zip(*(fmlp.tree_leaves(t) for t in (stepped, params, updates))):
        np.testing.assert_array_equal(s, p + u)
    assert stepped.activation == params.activation


def test_update_and_apply_updates_are_pure(make_params: MakeParams) -> None:
    params = make_params((4, 5, 3))
    grads = make_params((4, 5, 3), seed=9)
    params0, grads0 = fmlp.tree_map(np.copy, params), fmlp.tree_map(np.copy, grads)
    for opt in (fmlp.sgd(0.1), fmlp.momentum(0.1), fmlp.momentum(0.1, nesterov=True)):
        state: Any = opt.init(params)
        for _ in range(2):
            before = fmlp.tree_map(np.copy, state)
            updates, new_state = opt.update(grads, state, params)
            assert same_leaves(state, before)  # the old state is not modified
            fmlp.apply_updates(params, updates)
            state = new_state
    assert same_leaves(params, params0) and same_leaves(grads, grads0)


def test_apply_updates_donate_writes_in_place(make_params: MakeParams) -> None:
    params = make_params((4, 5, 3))
    updates = fmlp.tree_map(np.ones_like, params)
    expected = fmlp.apply_updates(params, updates)
    w_buffer = params.layers[0].w
    donated = fmlp.apply_updates(params, updates, donate=True)
    assert donated.layers[0].w is w_buffer
    assert same_leaves(donated, expected)


def test_schedules() -> None:
    decay = fmlp.step_decay(1.0, every=3, factor=0.5)
    assert [decay(k) for k in range(7)] == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]
    cos = fmlp.cosine_decay(1.0, total_steps=10, floor=0.1)
    assert cos(0) == pytest.approx(1.0)
    assert cos(5) == pytest.approx(0.55)
    assert cos(10) == pytest.approx(0.1)
    assert cos(50) == pytest.approx(0.1)
    assert all(cos(k) >= cos(k + 1) for k in range(12))


def test_sgd_follows_a_schedule(make_params: MakeParams) -> None:
    params = make_params((3, 2))
    ones = fmlp.tree_map(np.ones_like, params)
    opt = fmlp.sgd(fmlp.step_decay(0.4, every=2, factor=0.5))
    state = opt.init(params)
    rates = []
    for _ in range(5):
        updates, state = opt.update(ones, state, params)
        rates.append(-float(updates.layers[0].b[0]))
    assert rates == pytest.approx([0.4, 0.4, 0.2, 0.2, 0.1])
    assert state.count == 5


def test_momentum_by_hand(make_params: MakeParams) -> None:
    params = make_params((3, 2))
    g = fmlp.tree_map(np.ones_like, params)
    heavy = fmlp.momentum(0.1, 0.5)
    state = heavy.init(params)
    assert type(state) is fmlp.MomentumState
    assert not any(v.any() for v in fmlp.tree_leaves(state))
    steps = []
    for _ in range(3):
        u, state = heavy.update(g, state, params)
        steps.append(float(u.layers[0].w[0, 0]))
    # v: 1, 1.5, 1.75; update -lr v
    assert steps == pytest.approx([-0.1, -0.15, -0.175])
    nest = fmlp.momentum(0.1, 0.5, nesterov=True)
    state = nest.init(params)
    steps = []
    for _ in range(3):
        u, state = nest.update(g, state, params)
        steps.append(float(u.layers[0].w[0, 0]))
    # update -lr (g + beta v): v = 1, 1.5, 1.75
    assert steps == pytest.approx([-0.15, -0.175, -0.1875])


def test_momentum_with_beta_zero_is_sgd(make_params: MakeParams) -> None:
    params = make_params((4, 5, 3))
    grads = make_params((4, 5, 3), seed=3)
    u_sgd, _ = fmlp.sgd(0.3).update(grads, fmlp.SgdState(), params)
    m = fmlp.momentum(0.3, 0.0)
    u_mom, _ = m.update(grads, m.init(params), params)
    assert fmlp.tree_allclose(u_sgd, u_mom, rtol=1e-15)


@pytest.mark.parametrize("lr", [0.0, -0.1, math.nan, math.inf])
def test_bad_learning_rate(lr: float) -> None:
    with pytest.raises(ValueError, match="learning rate must be a positive finite number"):
        fmlp.sgd(lr)
    with pytest.raises(ValueError, match="learning rate must be a positive finite number"):
        fmlp.momentum(lr)


@pytest.mark.parametrize("beta", [-0.1, 1.0, 1.5])
def test_bad_momentum(beta: float) -> None:
    with pytest.raises(ValueError, match=r"momentum beta must lie in \[0, 1\)"):
        fmlp.momentum(0.1, beta)


def test_bad_schedule_arguments() -> None:
    with pytest.raises(ValueError, match="every > 0"):
        fmlp.step_decay(0.1, every=0)
    with pytest.raises(ValueError, match="total_steps > 0"):
        fmlp.cosine_decay(0.1, total_steps=0)


# ------------------------------------------------------------------ steps


def test_sgd_step_and_make_step_agree_with_grad(
    make_params: MakeParams, make_batch: MakeBatch
) -> None:
    params = make_params((4, 6, 3), "relu")
    x, y = make_batch(8, 4, 3)
    value, grads = fmlp.grad(params, x, y)
    expected = fmlp.tree_map(lambda p, g: p - 0.1 * g, params, grads)
    state = fmlp.init_state(params, fmlp.sgd(0.1))
    params0 = fmlp.tree_map(np.copy, params)

    new, metrics = fmlp.sgd_step(state, (x, y), lr=0.1)
    assert fmlp.tree_allclose(new.params, expected, rtol=1e-14, atol=1e-15)
    assert new.step == 1 and not new.diverged
    assert float(metrics.loss) == pytest.approx(value, rel=1e-14)
    assert float(metrics.count) == 8
    assert float(metrics.accuracy) == np.mean(fmlp.predict(params, x) == y)

    new2, _ = fmlp.make_step(fmlp.sgd(0.1))(state, (x, y))
    assert same_leaves(new2.params, new.params)
    assert same_leaves(state.params, params0)  # without donation the old state survives


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_sgd_step_matches_torch(
    dtype: Any,
    torch: Any,
    torch_mlp: Callable[[fmlp.MLP], Any],
    make_params: MakeParams,
    make_batch: MakeBatch,
) -> None:
    params = make_params((10, 16, 12, 5), "tanh", dtype=dtype)
    x, y = make_batch(32, 10, 5, dtype=dtype)
    model = torch_mlp(params)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    opt.zero_grad()
    t_loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y))
    t_loss.backward()
    opt.step()

    state, metrics = fmlp.sgd_step(fmlp.init_state(params, fmlp.sgd(0.5)), (x, y), lr=0.5)
    rtol, atol = (1e-5, 1e-6) if dtype == np.float32 else (1e-12, 1e-14)
    assert float(metrics.loss) == pytest.approx(t_loss.item(), rel=rtol)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    for layer, lin in zip(state.params.layers, linears):
        assert layer.w.dtype == np.dtype(dtype)
        np.testing.assert_allclose(layer.w, lin.weight.detach().numpy().T, rtol=rtol, atol=atol)
        np.testing.assert_allclose(layer.b, lin.bias.detach().numpy(), rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("name", ["relu", "sigmoid"])
def test_momentum_steps_match_torch(
    name: Any,
    nesterov: bool,
    dtype: Any,
    torch: Any,
    torch_mlp: Callable[[fmlp.MLP], Any],
    make_params: MakeParams,
    make_batch: MakeBatch,
) -> None:
    params = make_params((10, 16, 12, 5), name, dtype=dtype)
    batches = [make_batch(16, 10, 5, seed=s, dtype=dtype) for s in range(5)]
    model = torch_mlp(params)
    t_opt = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9, nesterov=nesterov)
    step = fmlp.make_step(fmlp.momentum(0.2, 0.9, nesterov=nesterov))
    state: Any = fmlp.init_state(params, fmlp.momentum(0.2, 0.9, nesterov=nesterov))
    rtol, atol = (2e-5, 2e-6) if dtype == np.float32 else (1e-11, 1e-13)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    for x, y in batches:
        t_opt.zero_grad()
        t_loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y))
        t_loss.backward()
        t_opt.step()
        state, metrics = step(state, (x, y))
        assert float(metrics.loss) == pytest.approx(t_loss.item(), rel=rtol)
        for layer, lin in zip(state.params.layers, linears):
            np.testing.assert_allclose(layer.w, lin.weight.detach().numpy().T, rtol=rtol, atol=atol)
            np.testing.assert_allclose(layer.b, lin.bias.detach().numpy(), rtol=rtol, atol=atol)
        for v, lin in zip(state.opt_state.velocity.layers, linears):
            buf = t_opt.state[lin.weight]["momentum_buffer"]
            np.testing.assert_allclose(v.w, buf.numpy().T, rtol=rtol * 10, atol=atol)
    assert state.step == 5 and state.opt_state.count == 5
