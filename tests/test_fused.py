"""fmlp.fused: the one-pass optimizer updates give the numpy rules' bits, for single steps
over random shapes, dtypes, hyper-parameters, schedules and step counts, and over whole
fits; chains of other shapes, and ``FMLP_FUSED=0``, run the numpy rules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

import fmlp
from fmlp import fused, kernels
from fmlp.optim import Optimizer, Schedule, apply_updates
from fmlp.tree import tree_copy, tree_flatten_with_paths, tree_leaves, tree_structure

pytest.importorskip("numba")

MakeParams = Callable[..., fmlp.MLP]
MakeBatch = Callable[..., tuple[NDArray[Any], NDArray[np.int64]]]


def same_bits(a: Any, b: Any) -> bool:
    """The same leaves, equal bit for bit (so -0 differs from +0 and NaNs are compared by
    their bits), of the same dtypes and shapes."""
    la, lb = tree_leaves(a), tree_leaves(b)
    return len(la) == len(lb) and all(
        x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
        for x, y in zip(la, lb)
    )


pytestmark = pytest.mark.usefixtures("fused_on")  # the kernels on, whatever the environment says


KINDS = (
    "sgd",
    "momentum",
    "nesterov",
    "adam",
    "adamw",
    "l2-sgd",
    "l2-nesterov",
    "l2-adamw",
    "decay-twice",
)


def make_optimizer(kind: str, lr: float | Schedule, wd: float, beta: float) -> Optimizer[Any]:
    """One optimizer of each shape the kernels implement."""
    if kind == "sgd":
        return fmlp.sgd(lr)
    if kind == "momentum":
        return fmlp.momentum(lr, beta)
    if kind == "nesterov":
        return fmlp.momentum(lr, beta, nesterov=True)
    if kind == "adam":
        return fmlp.adam(lr, b1=beta, b2=0.999, eps=1e-8)
    if kind == "adamw":
        return fmlp.adamw(lr, b1=beta, weight_decay=wd)
    if kind == "l2-sgd":
        return fmlp.chain(fmlp.add_decayed_weights(wd), fmlp.sgd(lr))
    if kind == "l2-nesterov":
        return fmlp.chain(fmlp.add_decayed_weights(wd), fmlp.momentum(lr, beta, nesterov=True))
    if kind == "l2-adamw":  # both decays around Adam, in nested chains
        return fmlp.chain(
            fmlp.add_decayed_weights(wd),
            fmlp.chain(fmlp.scale_by_adam(beta, 0.99), fmlp.add_decayed_weights(wd / 3)),
            fmlp.scale_by_learning_rate(lr),
        )
    if kind == "decay-twice":  # one transformation at two places of the chain
        d = fmlp.add_decayed_weights(wd)
        return fmlp.chain(d, fmlp.trace(beta), d, fmlp.scale_by_learning_rate(lr))
    raise AssertionError(kind)


def make_lr(kind: str, lr: float) -> float | Schedule:
    if kind == "constant":
        return lr
    if kind == "step":
        return fmlp.step_decay(lr, every=2, factor=0.3)
    return fmlp.cosine_decay(lr, total_steps=5, floor=lr / 10)


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(KINDS),
    schedule=st.sampled_from(("constant", "step", "cosine")),
    lr=st.floats(1e-4, 1.0),
    wd=st.floats(0.0, 0.5),
    beta=st.floats(0.0, 0.99),
    dtype=st.sampled_from((np.float32, np.float64)),
    hidden=st.lists(st.integers(1, 9), min_size=0, max_size=2),
    steps_before=st.integers(0, 4),
    seed=st.integers(0, 2**16),
)
def test_one_fused_step_has_the_bits_of_the_numpy_rules(
    kind: str,
    schedule: str,
    lr: float,
    wd: float,
    beta: float,
    dtype: Any,
    hidden: list[int],
    steps_before: int,
    seed: int,
) -> None:
    """After ``steps_before`` numpy steps (non-zero moments, a count that moves the
    schedule and Adam's bias corrections), one fused step writes the parameters and the
    state that ``update`` + ``apply_updates`` return, bit for bit."""
    opt = make_optimizer(kind, make_lr(schedule, lr), wd, beta)
    plan = fused.plan(opt)
    assert plan is not None
    rng = np.random.default_rng(seed)
    sizes = (3, *hidden, 2)
    params = fmlp.init(sizes, seed=seed, dtype=dtype)
    params = fmlp.tree_map(lambda p: p + rng.standard_normal(p.shape).astype(dtype), params)
    state = opt.init(params)

    def gradient() -> fmlp.MLP:
        return fmlp.tree_map(
            lambda p: (rng.standard_normal(p.shape) * 10.0 ** rng.integers(-4, 2)).astype(dtype),
            params,
        )

    for _ in range(steps_before):
        u, state = opt.update(gradient(), state, params)
        params = apply_updates(params, u)
    grads = gradient()
    grads_before = tree_copy(grads)
    updates, expected_state = opt.update(grads, state, params)
    expected = apply_updates(params, updates)
    own_params, own_state = tree_copy(params), tree_copy(state)
    got_state = plan.step(own_params, grads, own_state)
    assert got_state is not None
    assert same_bits(own_params, expected)
    assert same_bits(got_state, expected_state)
    assert tree_structure(got_state) == tree_structure(expected_state)
    counts = tree_flatten_with_paths(got_state)[1]
    assert counts == tree_flatten_with_paths(expected_state)[1]
    assert same_bits(grads, grads_before)  # the gradients are only read


@settings(max_examples=12, deadline=None)
@given(
    kind=st.sampled_from(KINDS),
    dtype=st.sampled_from((np.float32, np.float64)),
    batch=st.integers(1, 17),
    activation=st.sampled_from(("relu", "tanh")),
    seed=st.integers(0, 1000),
)
def test_fit_gives_the_same_bits_with_and_without_the_kernels(
    kind: str, dtype: Any, batch: int, activation: str, seed: int
) -> None:
    """Two epochs of ``fit`` (one-pass updates, and for ReLU the fused bias add and
    backward) against ``fit`` with ``FMLP_FUSED=0``: the same parameters, optimizer
    state and metrics, bit for bit."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((40, 6)).astype(dtype)
    y = rng.integers(0, 3, 40)
    params = fmlp.init((6, 8, 5, 3), activation=activation, seed=seed, dtype=dtype)  # type: ignore[arg-type]  # a name hypothesis drew from the known ones
    opt = make_optimizer(kind, fmlp.cosine_decay(0.05, total_steps=6), 0.01, 0.9)
    results = []
    with pytest.MonkeyPatch.context() as mp:
        for flag in ("1", "0"):
            mp.setenv(kernels.ENV_VAR, flag)
            results.append(
                fmlp.fit(params, x, y, epochs=2, batch_size=batch, optimizer=opt, seed=seed)
            )
    (s1, m1), (s0, m0) = results
    assert same_bits(s1, s0)
    assert same_bits(m1.running_loss, m0.running_loss)
    assert same_bits(m1.train_loss, m0.train_loss)
    assert s1.step == s0.step


def test_the_shapes_the_kernels_implement_and_those_they_leave_to_numpy() -> None:
    lr = 0.1
    for kind in KINDS:
        assert fused.plan(make_optimizer(kind, lr, 0.01, 0.9)) is not None, kind
    by_hand = Optimizer(init=fmlp.sgd(lr).init, update=fmlp.sgd(lr).update)
    d = fmlp.add_decayed_weights(0.1)
    for opt in (
        fmlp.trace(0.9),  # no learning rate
        fmlp.chain(fmlp.sgd(lr), fmlp.sgd(lr)),  # two
        fmlp.chain(fmlp.trace(0.9), fmlp.scale_by_adam(), fmlp.sgd(lr)),  # two cores
        fmlp.chain(fmlp.sgd(lr), fmlp.add_decayed_weights(0.1)),  # lr not last
        fmlp.chain(d, fmlp.add_decayed_weights(0.2), fmlp.trace(0.9), fmlp.sgd(lr)),
        fmlp.chain(by_hand),
        by_hand,
    ):
        assert fused.plan(opt) is None, opt.name


def test_fmlp_fused_0_turns_the_kernels_off(monkeypatch: pytest.MonkeyPatch) -> None:
    assert kernels.enabled() and fused.plan(fmlp.adam(0.1)) is not None
    for off in ("0", "off", "False", " no "):
        monkeypatch.setenv(kernels.ENV_VAR, off)
        assert not kernels.enabled()
        assert fused.plan(fmlp.adam(0.1)) is None
        z = np.ones((2, 3))
        assert not kernels.bias_relu_(z, np.ones(3))
        assert not kernels.relu_backprop_(z, z)


def test_make_step_without_donation_stays_pure_and_numpy(
    make_params: MakeParams, make_batch: MakeBatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without donate=True no fused update runs: the caller's state is never written."""
    calls: list[int] = []
    real = fused.FusedUpdate.step

    def counting(self: fused.FusedUpdate, *args: Any) -> Any:
        calls.append(1)
        return real(self, *args)

    monkeypatch.setattr(fused.FusedUpdate, "step", counting)
    opt = fmlp.adam(0.01)
    params = make_params((5, 4, 3), "relu", dtype=np.float32)
    x, y = make_batch(8, 5, 3, dtype=np.float32)
    state = fmlp.init_state(params, opt)
    before = tree_copy(state)
    new, _ = fmlp.make_step(opt)(state, (x, y))
    assert not calls and same_bits(state, before) and not same_bits(new.params, params)
    fmlp.fit(params, x, y, epochs=1, batch_size=4, optimizer=opt)
    assert calls  # fit does use it
    assert same_bits(state, before)


def test_arrays_that_do_not_fit_the_kernels_fall_back_without_writing(
    make_params: MakeParams,
) -> None:
    opt = fmlp.momentum(0.1, 0.9)
    plan = fused.plan(opt)
    assert plan is not None
    params = make_params((4, 3, 2), "relu", dtype=np.float64)
    state = opt.init(params)
    grads = fmlp.tree_map(lambda p: np.asfortranarray(np.ones_like(p)), params)
    assert not grads.layers[0].w.flags.c_contiguous
    own = tree_copy(params)
    assert plan.step(own, grads, state) is None
    assert same_bits(own, params)
    mixed = fmlp.tree_map(lambda p: np.ones_like(p, dtype=np.float32), params)
    assert plan.step(own, mixed, state) is None
    assert same_bits(own, params)
    frozen = tree_copy(state)
    assert isinstance(frozen[0], fmlp.TraceState)  # momentum: (TraceState, lr state)
    frozen[0].trace.layers[1].b.flags.writeable = False
    assert plan.step(own, tree_copy(params), frozen) is None
    assert same_bits(own, params)
    readonly_grads = tree_copy(params)
    for leaf in tree_leaves(readonly_grads):
        leaf.flags.writeable = False
    assert plan.step(own, readonly_grads, tree_copy(state)) is not None  # only read


def test_a_state_of_the_wrong_shape_is_a_clear_error(make_params: MakeParams) -> None:
    plan = fused.plan(fmlp.adam(0.1))
    assert plan is not None
    params = make_params((4, 3, 2), "relu", dtype=np.float64)
    with pytest.raises(TypeError, match="a chain of 2 takes a tuple of 2 states"):
        plan.step(tree_copy(params), params, fmlp.sgd(0.1).init(params))


def test_division_by_zero_gives_numpys_nan_and_inf(make_params: MakeParams) -> None:
    """Adam with eps = 0 and zero gradients divides 0 by 0: NaN on both paths (the
    kernels follow numpy's error model, they do not raise)."""
    opt = fmlp.adam(0.1, eps=0.0)
    plan = fused.plan(opt)
    assert plan is not None
    params = make_params((4, 3, 2), "relu", dtype=np.float32)
    grads = fmlp.tree_map(np.zeros_like, params)
    state = opt.init(params)
    with np.errstate(invalid="ignore", divide="ignore"):
        updates, expected_state = opt.update(grads, state, params)
        expected = apply_updates(params, updates)
    own = tree_copy(params)
    got_state = plan.step(own, grads, tree_copy(state))
    assert np.isnan(own.layers[0].w).all()
    assert same_bits(own, expected) and same_bits(got_state, expected_state)
