"""Tree algebra over fmlp's records: structure, static fields, paths and algebraic laws."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

import fmlp
from fmlp.optim import ScaleByAdamState, ScaleByLearningRateState
from fmlp.tree import (
    static_field,
    tree_copy,
    tree_flatten_with_paths,
    tree_stack,
    tree_structure,
    tree_unflatten_with_paths,
)
from fmlp.types import ActivationName

DTYPES: tuple[Any, ...] = (np.float32, np.float64)
ACTIVATIONS: tuple[ActivationName, ...] = ("relu", "tanh", "sigmoid")
SETTINGS = settings(max_examples=30, deadline=None)


@st.composite
def mlps(draw: st.DrawFn) -> fmlp.MLP:
    """Random MLPs: 1 to 3 hidden layers, widths 1..6, float32 or float64, random weights
    and biases (biases non-zero so every leaf matters)."""
    sizes = tuple(draw(st.lists(st.integers(1, 6), min_size=2, max_size=5)))
    dtype = draw(st.sampled_from(DTYPES))
    activation = draw(st.sampled_from(ACTIVATIONS))
    seed = draw(st.integers(0, 2**16))
    params = fmlp.init(sizes, scheme="normal", activation=activation, seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed + 1)
    return fmlp.tree_map(lambda p: p + rng.standard_normal(p.shape).astype(p.dtype), params)


def random_like(params: fmlp.MLP, seed: int) -> fmlp.MLP:
    rng = np.random.default_rng(seed)
    return fmlp.tree_map(lambda p: rng.standard_normal(p.shape).astype(p.dtype), params)


def tols(dtype: Any) -> dict[str, float]:
    return (
        {"rtol": 1e-5, "atol": 1e-5}
        if np.dtype(dtype) == np.float32
        else {"rtol": 1e-12, "atol": 1e-12}
    )


# ------------------------------------------------------------------ structure


def test_tree_leaves_order_and_static_field_skipped() -> None:
    params = fmlp.init((3, 4, 2), activation="tanh", seed=0)
    leaves = fmlp.tree_leaves(params)
    expected = [params.layers[0].w, params.layers[0].b, params.layers[1].w, params.layers[1].b]
    assert len(leaves) == 4
    assert all(a is b for a, b in zip(leaves, expected))
    assert fmlp.tree_leaves(np.ones(3))[0].shape == (3,)
    assert len(fmlp.tree_leaves((np.ones(1), (np.ones(2), np.ones(3))))) == 3


def test_tree_map_rebuilds_and_keeps_static_fields() -> None:
    params = fmlp.init((3, 4, 4, 2), activation="sigmoid", seed=0)
    doubled = fmlp.tree_map(lambda p: 2 * p, params)
    assert type(doubled) is fmlp.MLP
    assert doubled.activation == "sigmoid"
    assert doubled is not params
    for a, b in zip(fmlp.tree_leaves(doubled), fmlp.tree_leaves(params)):
        np.testing.assert_array_equal(a, 2 * b)
    # the input is untouched
    assert float(np.abs(params.layers[0].w).sum()) > 0
    np.testing.assert_array_equal(
        fmlp.tree_leaves(fmlp.tree_map(lambda p: p / 2, doubled))[0], params.layers[0].w
    )


def test_tree_map_over_optimizer_state_keeps_count() -> None:
    params = fmlp.init((2, 3, 2), seed=0)
    zeros = fmlp.tree_zeros_like(params)
    state = ScaleByAdamState(mu=zeros, nu=zeros, count=7)
    ones = fmlp.tree_map(lambda v: v + 1, state)
    assert ones.count == 7
    assert all(np.all(leaf == 1) for leaf in fmlp.tree_leaves(ones))
    assert len(fmlp.tree_leaves(ones)) == 2 * len(fmlp.tree_leaves(params))
    assert fmlp.tree_leaves(ScaleByLearningRateState(count=3)) == []
    assert fmlp.tree_map(lambda v: v, ScaleByLearningRateState(count=3)).count == 3


def test_tree_map_multiple_trees() -> None:
    a = fmlp.init((3, 4, 2), seed=0)
    b = fmlp.init((3, 4, 2), seed=1)
    c = fmlp.init((3, 4, 2), seed=2)
    out = fmlp.tree_map(lambda x, y, z: x + 2 * y - z, a, b, c)
    for o, x, y, z in zip(*(fmlp.tree_leaves(t) for t in (out, a, b, c))):
        np.testing.assert_array_equal(o, x + 2 * y - z)


@attrs.frozen(eq=False)
class _Record:
    value: NDArray[Any]
    label: str = static_field(default="tag")


def test_tree_functions_on_a_custom_record() -> None:
    rec = _Record(value=np.arange(3.0), label="x")
    out = fmlp.tree_map(lambda v: v * 3, rec)
    assert out.label == "x"
    np.testing.assert_array_equal(out.value, [0.0, 3.0, 6.0])
    assert fmlp.tree_vdot(rec, rec) == 5.0


@pytest.mark.parametrize("bad", [{"w": np.ones(2)}, [np.ones(2)], 3.0, "text", None])
def test_tree_map_rejects_non_trees(bad: Any) -> None:
    with pytest.raises(TypeError, match="not a tree"):
        fmlp.tree_map(lambda p: p, bad)
    with pytest.raises(TypeError, match="not a tree"):
        fmlp.tree_leaves(bad)


def test_tree_map_rejects_mismatched_structures() -> None:
    a = fmlp.init((3, 4, 2), seed=0)
    deeper = fmlp.init((3, 4, 4, 2), seed=0)
    with pytest.raises(TypeError, match="tree structures differ"):
        fmlp.tree_map(np.add, a, deeper)
    with pytest.raises(TypeError, match="tree structures differ"):
        fmlp.tree_map(np.add, a, a.layers[0])
    with pytest.raises(TypeError, match="tree structures differ"):
        fmlp.tree_map(np.add, np.ones(2), (np.ones(2),))
    with pytest.raises(TypeError, match="tree structures differ"):
        fmlp.tree_vdot(a, deeper)


def test_tree_allclose() -> None:
    a = fmlp.init((3, 4, 2), seed=0)
    assert fmlp.tree_allclose(a, a)
    assert fmlp.tree_allclose(a, tree_copy(a), rtol=0.0)
    nudged = fmlp.tree_map(lambda p: p + 1e-3, a)
    assert not fmlp.tree_allclose(a, nudged)
    assert fmlp.tree_allclose(a, nudged, atol=2e-3)
    # different structure, shapes or record types are never close
    assert not fmlp.tree_allclose(a, fmlp.init((3, 4, 4, 2), seed=0))
    assert not fmlp.tree_allclose(a, fmlp.init((3, 5, 2), seed=0))
    assert not fmlp.tree_allclose(a, a.layers)
    assert not fmlp.tree_allclose(a, "not a tree")


def test_tree_scale_and_zeros_keep_dtype() -> None:
    for dtype in DTYPES:
        a = fmlp.init((3, 4, 2), seed=0, dtype=dtype)
        scaled = fmlp.tree_scale(0.5, a)
        zeros = fmlp.tree_zeros_like(a)
        for s, z, p in zip(fmlp.tree_leaves(scaled), fmlp.tree_leaves(zeros), fmlp.tree_leaves(a)):
            assert s.dtype == z.dtype == p.dtype == np.dtype(dtype)
            np.testing.assert_array_equal(s, p * p.dtype.type(0.5))
            assert z.shape == p.shape and not z.any()


def test_tree_copy_is_deep_and_tree_stack_stacks() -> None:
    a = fmlp.init((2, 3, 2), seed=0)
    c = tree_copy(a)
    c.layers[0].w[0, 0] = 123.0
    assert a.layers[0].w[0, 0] != 123.0
    stacked = tree_stack([a.layers[0], c.layers[0], a.layers[0]])
    assert stacked.w.shape == (3, 2, 3) and stacked.b.shape == (3, 3)
    np.testing.assert_array_equal(stacked.w[1], c.layers[0].w)
    record = tree_stack([_Record(np.ones(2), "a"), _Record(np.zeros(2), "b")])
    assert record.label == "a" and record.value.shape == (2, 2)
    with pytest.raises(ValueError, match="at least one"):
        tree_stack([])


def test_tree_vdot_accumulates_in_float64() -> None:
    big = (np.full(4, 1e20, dtype=np.float32),)
    small = (np.full(4, 1.0, dtype=np.float32),)
    assert fmlp.tree_vdot(big, big) == pytest.approx(4e40)  # would overflow float32
    assert fmlp.tree_vdot(small, small) == 4.0
    assert isinstance(fmlp.tree_vdot(small, small), float)


# ------------------------------------------------------------------ properties


@SETTINGS
@given(mlps())
def test_tree_map_identity(params: fmlp.MLP) -> None:
    same = fmlp.tree_map(lambda p: p, params)
    assert same.activation == params.activation
    assert same.sizes == params.sizes
    assert fmlp.tree_allclose(same, params, rtol=0.0)
    assert all(a is b for a, b in zip(fmlp.tree_leaves(same), fmlp.tree_leaves(params)))


@SETTINGS
@given(mlps(), st.integers(0, 1000))
def test_tree_add_sub_inverse(params: fmlp.MLP, seed: int) -> None:
    other = random_like(params, seed)
    back = fmlp.tree_sub(fmlp.tree_add(params, other), other)
    assert back.activation == params.activation
    assert fmlp.tree_allclose(back, params, **tols(params.dtype))
    assert all(leaf.dtype == params.dtype for leaf in fmlp.tree_leaves(back))
    assert fmlp.tree_allclose(fmlp.tree_sub(params, params), fmlp.tree_zeros_like(params), rtol=0.0)


@SETTINGS
@given(mlps(), st.integers(0, 1000), st.floats(-3, 3), st.floats(-3, 3))
def test_tree_vdot_symmetric_and_linear(
    params: fmlp.MLP, seed: int, alpha: float, beta: float
) -> None:
    u = random_like(params, seed)
    v = random_like(params, seed + 1)
    tol = 1e-4 if params.dtype == np.float32 else 1e-10
    assert fmlp.tree_vdot(u, v) == pytest.approx(fmlp.tree_vdot(v, u), rel=1e-12, abs=1e-12)
    combo = fmlp.tree_add(fmlp.tree_scale(alpha, u), fmlp.tree_scale(beta, v))
    lhs = fmlp.tree_vdot(combo, params)
    rhs = alpha * fmlp.tree_vdot(u, params) + beta * fmlp.tree_vdot(v, params)
    scale = abs(alpha) * np.sqrt(fmlp.tree_vdot(u, u)) + abs(beta) * np.sqrt(fmlp.tree_vdot(v, v))
    assert abs(lhs - rhs) <= tol * (1 + scale * np.sqrt(fmlp.tree_vdot(params, params)))
    # the squared norm equals the sum of squares of the flattened leaves
    flat = np.concatenate([leaf.ravel().astype(np.float64) for leaf in fmlp.tree_leaves(u)])
    assert fmlp.tree_vdot(u, u) == pytest.approx(float(flat @ flat), rel=1e-12)
    assert fmlp.tree_vdot(u, u) > 0


@SETTINGS
@given(mlps(), st.integers(0, 1000))
def test_tree_allclose_detects_any_changed_leaf(params: fmlp.MLP, which: int) -> None:
    leaves = fmlp.tree_leaves(params)
    target = which % len(leaves)
    counter = iter(range(len(leaves)))

    def nudge(p: NDArray[Any]) -> NDArray[Any]:
        i = next(counter)
        if i != target:
            return p
        q = p.copy()
        q.flat[which % p.size] += 1
        return q

    changed = fmlp.tree_map(nudge, params)
    assert changed.activation == params.activation
    assert fmlp.tree_allclose(params, params)
    assert not fmlp.tree_allclose(params, changed)


# ------------------------------------------------------------------ paths


OPTIMIZERS: dict[str, Callable[[], fmlp.Optimizer[Any]]] = {
    "sgd": lambda: fmlp.sgd(0.1),
    "momentum": lambda: fmlp.momentum(0.1),
    "adamw": lambda: fmlp.adamw(0.1),
    "nested": lambda: fmlp.chain(fmlp.chain(fmlp.add_decayed_weights(0.1)), fmlp.adam(0.1)),
}


def test_paths_name_every_leaf_and_static_field() -> None:
    params = fmlp.init((3, 4, 2), activation="tanh", seed=0)
    state = fmlp.TrainState(params=params, opt_state=fmlp.momentum(0.1).init(params), step=7)
    leaves, statics = tree_flatten_with_paths(state)
    assert [p for p, _ in leaves] == [
        "params.layers.0.w",
        "params.layers.0.b",
        "params.layers.1.w",
        "params.layers.1.b",
        "opt_state.0.trace.layers.0.w",
        "opt_state.0.trace.layers.0.b",
        "opt_state.0.trace.layers.1.w",
        "opt_state.0.trace.layers.1.b",
    ]
    assert all(a is b for (_, a), b in zip(leaves, fmlp.tree_leaves(state), strict=True))
    assert statics == [
        ("params.activation", "tanh"),
        ("opt_state.0.trace.activation", "tanh"),
        ("opt_state.1.count", 0),
        ("step", 7),
        ("diverged", False),
    ]
    assert tree_structure(state.opt_state) == (
        "(TraceState(trace=MLP(layers=(Dense(w=*, b=*), Dense(w=*, b=*)), activation=#)), "
        "ScaleByLearningRateState(count=#))"
    )
    assert tree_structure((np.ones(1),)) == "(*,)" and tree_structure(()) == "()"
    assert tree_flatten_with_paths(np.ones(2))[0][0][0] == ""


@SETTINGS
@given(mlps(), st.sampled_from(sorted(OPTIMIZERS)), st.integers(0, 100), st.booleans())
def test_unflatten_with_paths_inverts_flatten(
    params: fmlp.MLP, name: str, step: int, diverged: bool
) -> None:
    opt = OPTIMIZERS[name]()
    state = fmlp.TrainState(params=params, opt_state=opt.init(params), step=step, diverged=diverged)
    leaves, statics = tree_flatten_with_paths(state)
    assert len({p for p, _ in leaves + statics}) == len(leaves) + len(statics)  # unique
    like = fmlp.init_state(fmlp.tree_map(np.zeros_like, params), opt)
    rebuilt = tree_unflatten_with_paths(like, dict(leaves), dict(statics))
    assert type(rebuilt.opt_state) is type(state.opt_state)
    assert tree_structure(rebuilt) == tree_structure(state)
    assert tree_flatten_with_paths(rebuilt)[1] == statics
    assert all(a is b for a, b in zip(fmlp.tree_leaves(rebuilt), fmlp.tree_leaves(state)))
    with pytest.raises(KeyError, match="step"):
        tree_unflatten_with_paths(like, dict(leaves), dict(statics[:-2]))


def test_structure_tells_optimizer_states_apart() -> None:
    params = fmlp.init((3, 4, 2), seed=0)
    shapes = {tree_structure(OPTIMIZERS[n]().init(params)) for n in OPTIMIZERS}
    assert len(shapes) == len(OPTIMIZERS)
    with pytest.raises(TypeError, match="not a tree: dict"):
        tree_structure({"w": np.ones(1)})
    with pytest.raises(TypeError, match="not a tree: list"):
        tree_flatten_with_paths([np.ones(1)])
