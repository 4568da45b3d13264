"""Optimizers: the gradient transformations and their chains, schedules, the fast path's
bit-identity with the pure update, and parity with torch.optim (SGD, Nesterov, Adam,
AdamW, L2 weight decay) over 25 steps."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

import fmlp
from fmlp.optim import Optimizer, apply_updates
from fmlp.tree import tree_copy, tree_leaves

MakeParams = Callable[..., fmlp.MLP]
MakeBatch = Callable[..., tuple[NDArray[Any], NDArray[np.int64]]]
Optimizers = dict[str, Callable[[], Optimizer[Any]]]
SameLeaves = Callable[[object, object], bool]
StepCounts = Callable[[object], list[int]]
DTYPES: tuple[Any, ...] = (np.float32, np.float64)


# ------------------------------------------------------------------ plain SGD


@pytest.mark.parametrize("dtype", DTYPES)
def test_sgd_update_is_minus_lr_times_grad(dtype: Any, make_params: MakeParams) -> None:
    params = make_params((4, 5, 3), dtype=dtype)
    grads = make_params((4, 5, 3), seed=9, dtype=dtype)
    opt = fmlp.sgd(0.25)
    state = opt.init(params)
    assert type(state) is fmlp.ScaleByLearningRateState
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


def test_update_and_apply_updates_are_pure(
    make_params: MakeParams, same_leaves: SameLeaves, optimizers: Optimizers
) -> None:
    params = make_params((4, 5, 3))
    grads = make_params((4, 5, 3), seed=9)
    params0, grads0 = fmlp.tree_map(np.copy, params), fmlp.tree_map(np.copy, grads)
    for opt in (factory() for factory in optimizers.values()):
        state: Any = opt.init(params)
        for _ in range(2):
            before = fmlp.tree_map(np.copy, state)
            updates, new_state = opt.update(grads, state, params)
            assert same_leaves(state, before)  # the old state is not modified
            fmlp.apply_updates(params, updates)
            state = new_state
    assert same_leaves(params, params0) and same_leaves(grads, grads0)


def test_apply_updates_donate_writes_in_place_and_matches_the_pure_sum(
    make_params: MakeParams, make_batch: MakeBatch, same_leaves: SameLeaves
) -> None:
    params = make_params((20, 16, 12, 10), "relu", seed=2, dtype=np.float32)
    _, grads = fmlp.grad(params, *make_batch(30, 20, 10, dtype=np.float32))
    want = apply_updates(params, grads)
    own = tree_copy(params)
    buffers = tree_leaves(own)
    got = apply_updates(own, grads, donate=True)
    assert same_leaves(got, want)
    assert all(a is b for a, b in zip(tree_leaves(got), buffers, strict=True))
    with pytest.raises(ValueError):  # a tree of another structure is refused, not half-applied
        apply_updates(tree_copy(params), fmlp.MLP(layers=grads.layers[:2]), donate=True)


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
    assert len(state) == 2
    assert type(state[0]) is fmlp.TraceState and type(state[1]) is fmlp.ScaleByLearningRateState
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
    u_sgd, _ = fmlp.sgd(0.3).update(grads, fmlp.ScaleByLearningRateState(), params)
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


def test_adam_first_step_by_hand(make_params: MakeParams) -> None:
    """At t = 1 the bias corrections undo (1 - b1) and (1 - b2): the update is
    -lr g / (|g| + eps); at t = 2 with the same g it is the same again."""
    params = make_params((3, 4, 2))
    grads = make_params((3, 4, 2), seed=5)
    opt = fmlp.adam(0.1, eps=1e-8)
    state = opt.init(params)
    assert type(state[0]) is fmlp.ScaleByAdamState and state[0].count == 0
    for step in (1, 2):
        u, state = opt.update(grads, state, params)
        moments, rate = state
        assert isinstance(moments, fmlp.ScaleByAdamState) and moments.count == step
        assert isinstance(rate, fmlp.ScaleByLearningRateState) and rate.count == step
        for ul, g in zip(fmlp.tree_leaves(u), fmlp.tree_leaves(grads), strict=True):
            np.testing.assert_allclose(ul, -0.1 * g / (np.abs(g) + 1e-8), rtol=1e-12)
    assert isinstance(state[0], fmlp.ScaleByAdamState)
    np.testing.assert_allclose(
        state[0].nu.layers[0].w, (1 - 0.999**2) * grads.layers[0].w ** 2, rtol=1e-12
    )


def test_adamw_decays_the_weights_apart_from_adam(make_params: MakeParams) -> None:
    params = make_params((3, 4, 2))
    grads = make_params((3, 4, 2), seed=5)
    u_adam, _ = fmlp.adam(0.1).update(grads, fmlp.adam(0.1).init(params), params)
    opt = fmlp.adamw(0.1, weight_decay=0.5)
    u, state = opt.update(grads, opt.init(params), params)
    assert [type(s) for s in state] == [
        fmlp.ScaleByAdamState,
        fmlp.EmptyState,
        fmlp.ScaleByLearningRateState,
    ]
    for a, b, p in zip(*(fmlp.tree_leaves(t) for t in (u, u_adam, params)), strict=True):
        np.testing.assert_allclose(a, b - 0.1 * 0.5 * p, rtol=1e-12, atol=1e-15)


def test_add_decayed_weights_adds_wd_times_params(make_params: MakeParams) -> None:
    params = make_params((3, 4, 2))
    grads = make_params((3, 4, 2), seed=5)
    t = fmlp.add_decayed_weights(0.25)
    u, state = t.update(grads, t.init(params), params)
    assert type(state) is fmlp.EmptyState and fmlp.tree_leaves(state) == []
    for a, g, p in zip(*(fmlp.tree_leaves(x) for x in (u, grads, params)), strict=True):
        np.testing.assert_array_equal(a, g + 0.25 * p)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: fmlp.adam(0.1, b1=1.0), r"adam's b1 must lie in \[0, 1\)"),
        (lambda: fmlp.adamw(0.1, b2=-0.1), r"adam's b2 must lie in \[0, 1\)"),
        (lambda: fmlp.scale_by_adam(eps=-1.0), "adam's eps must be a non-negative"),
        (lambda: fmlp.adamw(0.1, weight_decay=-0.1), "weight_decay must be a non-negative"),
        (lambda: fmlp.add_decayed_weights(math.inf), "weight_decay must be a non-negative"),
        (lambda: fmlp.adam(0.0), "learning rate must be a positive finite number"),
        (lambda: fmlp.trace(1.0), r"momentum beta must lie in \[0, 1\)"),
    ],
)
def test_bad_transformation_arguments(make: Callable[[], object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()


# ------------------------------------------------------------------ the fast path


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_update_into_is_bit_identical_to_update_and_leaves_state_alone(
    optimizer_name: str,
    dtype: Any,
    make_params: MakeParams,
    make_batch: MakeBatch,
    same_leaves: SameLeaves,
    step_counts: StepCounts,
    optimizers: Optimizers,
) -> None:
    opt = optimizers[optimizer_name]()
    assert opt.rule is not None  # a real fast path, not the fallback to update
    params = make_params((20, 16, 12, 10), "relu", seed=1, dtype=dtype)
    x, y = make_batch(50, 20, 10, dtype=dtype)
    state = opt.init(params)
    for _ in range(3):  # non-zero velocities and moments from the second step on
        _, grads = fmlp.grad(params, x, y)
        grads_before = tree_copy(grads)
        want, want_state = opt.update(grads, state, params)
        assert same_leaves(grads, grads_before)  # the pure update leaves grads alone
        scratch = tree_copy(grads)
        state_before, params_before = tree_copy(state), tree_copy(params)
        got, got_state = opt.update_into(scratch, state, params)
        assert got is scratch  # written into the gradients' buffers
        assert same_leaves(got, want)
        assert all(g.dtype == dtype for g in tree_leaves(got))
        assert same_leaves(got_state, want_state)
        assert step_counts(got_state) == step_counts(want_state)
        assert same_leaves(state, state_before)  # the old state is not modified
        assert same_leaves(params, params_before)
        # the new state shares no buffer with the updates, which the loop overwrites
        assert not {id(a) for a in tree_leaves(got_state)} & {id(a) for a in tree_leaves(got)}
        params = apply_updates(params, want)
        state = want_state


def test_a_hand_built_pair_has_no_fast_path_and_still_chains(
    make_params: MakeParams, same_leaves: SameLeaves
) -> None:
    """Optimizer(init, update) without a rule: update_into falls back to update, and a
    chain runs its update between the rules of the others."""
    params = make_params((3, 4, 2))
    grads = make_params((3, 4, 2), seed=5)
    double = Optimizer(
        init=lambda p: fmlp.EmptyState(),
        update=lambda g, s, p: (fmlp.tree_scale(2.0, g), s),
        name="double",
    )
    u, _ = double.update_into(grads, double.init(params), params)
    assert same_leaves(u, fmlp.tree_scale(2.0, grads))
    opt = fmlp.chain(double, fmlp.sgd(0.1))
    scratch = tree_copy(grads)
    got, _ = opt.update_into(scratch, opt.init(params), params)
    assert got is scratch
    assert same_leaves(got, fmlp.tree_map(lambda g: (g * 2.0) * -0.1, grads))
    assert same_leaves(got, opt.update(grads, opt.init(params), params)[0])


# ------------------------------------------------------------------ chain


def _transform(kind: str, value: float) -> Optimizer[Any]:
    if kind == "lr":
        return fmlp.scale_by_learning_rate(value)
    if kind == "trace":
        return fmlp.trace(value / 2)
    if kind == "nesterov":
        return fmlp.trace(value / 2, nesterov=True)
    if kind == "decay":
        return fmlp.add_decayed_weights(value)
    if kind == "adam":
        return fmlp.scale_by_adam(b1=value / 2)
    return Optimizer(  # a hand-built pair without a rule
        init=lambda p: fmlp.EmptyState(),
        update=lambda g, s, p: (fmlp.tree_map(np.negative, g), s),
        name="negate",
    )


transforms = st.lists(
    st.tuples(
        st.sampled_from(["lr", "trace", "nesterov", "decay", "adam", "negate"]),
        st.floats(0.01, 1.0),
    ),
    max_size=4,
)


def _run(opt: Optimizer[Any], params: fmlp.MLP, grads_seq: list[fmlp.MLP]) -> list[fmlp.MLP]:
    """The updates of three pure steps."""
    state = opt.init(params)
    out = []
    for g in grads_seq:
        u, state = opt.update(g, state, params)
        out.append(u)
    return out


def _grads(seed: int, dtype: Any) -> tuple[fmlp.MLP, list[fmlp.MLP]]:
    rng = np.random.default_rng(seed)

    def tree() -> fmlp.MLP:
        return fmlp.MLP(
            layers=(
                fmlp.Dense(
                    w=rng.standard_normal((3, 4)).astype(dtype),
                    b=rng.standard_normal(4).astype(dtype),
                ),
                fmlp.Dense(
                    w=rng.standard_normal((4, 2)).astype(dtype),
                    b=rng.standard_normal(2).astype(dtype),
                ),
            )
        )

    return tree(), [tree() for _ in range(3)]


@settings(max_examples=40, deadline=None)
@given(
    specs=transforms,
    seed=st.integers(0, 2**16),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_chain_is_the_transforms_one_after_the_other(
    specs: list[tuple[str, float]],
    seed: int,
    dtype: Any,
    same_leaves: SameLeaves,
    step_counts: StepCounts,
) -> None:
    """chain(t1, ..., tk).update is t1.update, then t2.update on its updates, and so on;
    its state is the tuple of theirs; its fast path is its pure update, bit for bit."""
    params, grads_seq = _grads(seed, dtype)
    ts = [_transform(*spec) for spec in specs]
    opt = fmlp.chain(*ts)
    state = opt.init(params)
    assert len(state) == len(ts)
    assert [type(s) for s in state] == [type(t.init(params)) for t in ts]
    states = [t.init(params) for t in ts]
    fast_state = opt.init(params)
    for g in grads_seq:
        u, new_state = opt.update(g, state, params)
        expected = g
        for i, t in enumerate(ts):
            expected, states[i] = t.update(expected, states[i], params)
        assert same_leaves(u, expected)
        assert same_leaves(new_state, tuple(states))
        assert all(a is not b for a, b in zip(tree_leaves(u), tree_leaves(g)))  # pure: new
        scratch = tree_copy(g)
        got, fast_state = opt.update_into(scratch, fast_state, params)
        assert got is scratch and same_leaves(got, u)
        assert same_leaves(fast_state, new_state) and step_counts(fast_state) == step_counts(
            new_state
        )
        state = new_state


@settings(max_examples=30, deadline=None)
@given(specs=transforms, seed=st.integers(0, 2**16))
def test_chain_of_nothing_is_the_identity_and_of_one_is_the_transform(
    specs: list[tuple[str, float]], seed: int, same_leaves: SameLeaves
) -> None:
    params, grads_seq = _grads(seed, np.float64)
    for u, g in zip(_run(fmlp.chain(), params, grads_seq), grads_seq):
        assert same_leaves(u, g) and u is not g
    assert fmlp.chain().init(params) == ()
    for spec in specs:
        t = _transform(*spec)
        one = fmlp.chain(t)
        assert type(one.init(params)[0]) is type(t.init(params))
        for a, b in zip(_run(one, params, grads_seq), _run(t, params, grads_seq)):
            assert same_leaves(a, b)


@settings(max_examples=30, deadline=None)
@given(
    a=transforms,
    b=transforms,
    c=transforms,
    seed=st.integers(0, 2**16),
)
def test_chain_is_associative(
    a: list[tuple[str, float]],
    b: list[tuple[str, float]],
    c: list[tuple[str, float]],
    seed: int,
    same_leaves: SameLeaves,
    step_counts: StepCounts,
) -> None:
    """chain(chain(A, B), C) = chain(A, chain(B, C)) = chain(A, B, C), bit for bit; the
    states differ only in their nesting (the same leaves in the same order)."""
    params, grads_seq = _grads(seed, np.float64)

    def group(specs: list[tuple[str, float]]) -> Optimizer[Any]:
        return fmlp.chain(*(_transform(*s) for s in specs))

    flat = fmlp.chain(*(_transform(*s) for s in a + b + c))
    left = fmlp.chain(fmlp.chain(group(a), group(b)), group(c))
    right = fmlp.chain(group(a), fmlp.chain(group(b), group(c)))
    runs = [_run(opt, params, grads_seq) for opt in (flat, left, right)]
    for us in zip(*runs):
        assert same_leaves(us[0], us[1]) and same_leaves(us[0], us[2])
    assert len(tree_leaves(left.init(params))) == len(tree_leaves(flat.init(params)))
    assert (
        step_counts(left.init(params))
        == step_counts(right.init(params))
        == step_counts(flat.init(params))
    )


# ------------------------------------------------------------------ steps


def test_sgd_step_and_make_step_agree_with_grad(
    make_params: MakeParams, make_batch: MakeBatch, same_leaves: SameLeaves
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
        for v, lin in zip(state.opt_state[0].trace.layers, linears):
            buf = t_opt.state[lin.weight]["momentum_buffer"]
            np.testing.assert_allclose(v.w, buf.numpy().T, rtol=rtol * 10, atol=atol)
    assert state.step == 5 and state.opt_state[1].count == 5


# ------------------------------------------------------------------ torch.optim parity

TorchCase = tuple[Callable[[], Optimizer[Any]], Callable[[Any, Any], Any], Callable[[int], float]]


def _cosine(step: int) -> float:
    return fmlp.cosine_decay(0.02, total_steps=25, floor=0.002)(step)


TORCH_CASES: dict[str, TorchCase] = {
    "sgd": (
        lambda: fmlp.sgd(0.1),
        lambda torch, ps: torch.optim.SGD(ps, lr=0.1),
        lambda step: 0.1,
    ),
    "momentum": (
        lambda: fmlp.momentum(0.1, 0.8),
        lambda torch, ps: torch.optim.SGD(ps, lr=0.1, momentum=0.8),
        lambda step: 0.1,
    ),
    "nesterov": (
        lambda: fmlp.momentum(0.1, 0.9, nesterov=True),
        lambda torch, ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
        lambda step: 0.1,
    ),
    "adam": (
        lambda: fmlp.adam(0.01, b1=0.8, b2=0.99, eps=1e-7),
        lambda torch, ps: torch.optim.Adam(ps, lr=0.01, betas=(0.8, 0.99), eps=1e-7),
        lambda step: 0.01,
    ),
    "adamw": (
        lambda: fmlp.adamw(0.01, weight_decay=0.1),
        lambda torch, ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1),
        lambda step: 0.01,
    ),
    "adamw-cosine": (
        lambda: fmlp.adamw(_cosine, weight_decay=0.5),
        lambda torch, ps: torch.optim.AdamW(ps, lr=0.02, weight_decay=0.5),
        _cosine,
    ),
    "sgd-weight-decay": (
        lambda: fmlp.chain(fmlp.add_decayed_weights(0.05), fmlp.sgd(0.1)),
        lambda torch, ps: torch.optim.SGD(ps, lr=0.1, weight_decay=0.05),
        lambda step: 0.1,
    ),
    "momentum-weight-decay": (
        lambda: fmlp.chain(fmlp.add_decayed_weights(0.05), fmlp.momentum(0.1, 0.9)),
        lambda torch, ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.05),
        lambda step: 0.1,
    ),
}


def relative_error(got: Any, want: Any) -> float:
    """max |got - want| / max |want| over one array (0 when both are 0)."""
    scale = float(np.max(np.abs(want)))
    return float(np.max(np.abs(got - want))) / scale if scale else float(np.max(np.abs(got)))


def torch_state_leaves(name: str, t_opt: Any, linears: list[Any]) -> list[Any]:
    """torch's optimizer state in fmlp's leaf order (w as (fan_in, fan_out))."""
    keys = {"momentum": ["momentum_buffer"], "nesterov": ["momentum_buffer"]}
    keys["momentum-weight-decay"] = keys["momentum"]
    for adam_name in ("adam", "adamw", "adamw-cosine"):
        keys[adam_name] = ["exp_avg", "exp_avg_sq"]
    out = []
    for key in keys.get(name, []):
        for lin in linears:
            out.append(t_opt.state[lin.weight][key].numpy().T)
            out.append(t_opt.state[lin.bias][key].numpy())
    return out


@pytest.mark.parametrize("name", sorted(TORCH_CASES))
def test_25_steps_match_torch_optim_in_float64(
    name: str,
    torch: Any,
    torch_mlp: Callable[[fmlp.MLP], Any],
    make_params: MakeParams,
    make_batch: MakeBatch,
    step_counts: StepCounts,
) -> None:
    """The same weights in torch and fmlp, 25 steps on the same batches: parameters and
    optimizer state agree to 1e-9 relative (in practice to a few ulps)."""
    make_opt, make_torch_opt, lr_at = TORCH_CASES[name]
    params = make_params((10, 16, 12, 5), "tanh")
    model = torch_mlp(params)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    t_opt = make_torch_opt(torch, model.parameters())
    opt = make_opt()
    step = fmlp.make_step(opt)
    state: Any = fmlp.init_state(params, opt)
    worst = 0.0
    for k in range(25):
        x, y = make_batch(16, 10, 5, seed=k)
        for group in t_opt.param_groups:
            group["lr"] = lr_at(k)
        t_opt.zero_grad()
        t_loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y))
        t_loss.backward()
        t_opt.step()
        state, metrics = step(state, (x, y))
        assert float(metrics.loss) == pytest.approx(t_loss.item(), rel=1e-9)
        want = [
            a for lin in linears for a in (lin.weight.detach().numpy().T, lin.bias.detach().numpy())
        ]
        for got, w in zip(fmlp.tree_leaves(state.params), want, strict=True):
            worst = max(worst, relative_error(got, w))
    assert worst < 1e-9, worst
    t_state = torch_state_leaves(name, t_opt, linears)
    ours = fmlp.tree_leaves(state.opt_state)
    assert len(ours) == len(t_state)
    for got, w in zip(ours, t_state):
        assert relative_error(got, w) < 1e-9
    assert state.step == 25 and max(step_counts(state.opt_state), default=25) == 25
