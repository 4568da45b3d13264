"""Forward and backward passes: finite differences, torch parity, shapes, errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

import fmlp
from fmlp.activations import get_activation
from fmlp.model import backprop, forward_unchecked

MakeParams = Callable[..., fmlp.MLP]
MakeBatch = Callable[..., tuple[NDArray[Any], NDArray[np.int64]]]
SameLeaves = Callable[[object, object], bool]

NAMES = ("relu", "tanh", "sigmoid")
DTYPES: tuple[Any, ...] = (np.float32, np.float64)
# tiny nets with 1, 2 and 3 hidden layers
DEPTH_SIZES = {1: (4, 5, 3), 2: (4, 5, 4, 3), 3: (4, 5, 4, 5, 3)}


def leaf_names(params: fmlp.MLP) -> list[str]:
    return [f"{k}{i}" for i in range(len(params.layers)) for k in ("w", "b")]


def with_leaf(params: fmlp.MLP, k: int, leaf: Any) -> fmlp.MLP:
    """``params`` with its k-th leaf (w0, b0, w1, b1, ...) replaced by ``leaf``."""
    layers = list(params.layers)
    i, is_bias = divmod(k, 2)
    old = layers[i]
    layers[i] = fmlp.Dense(w=old.w, b=leaf) if is_bias else fmlp.Dense(w=leaf, b=old.b)
    return fmlp.MLP(layers=tuple(layers), activation=params.activation)


def numeric_grad(params: fmlp.MLP, x: Any, y: Any, h: float = 1e-6) -> list[Any]:
    """Central differences of the mean loss with respect to every parameter, one at a time."""
    out = []
    for k, leaf in enumerate(fmlp.tree_leaves(params)):
        g = np.zeros_like(leaf)
        for idx in np.ndindex(*leaf.shape):
            bump = np.zeros_like(leaf)
            bump[idx] = h
            plus, minus = with_leaf(params, k, leaf + bump), with_leaf(params, k, leaf - bump)
            g[idx] = (fmlp.loss(plus, x, y) - fmlp.loss(minus, x, y)) / (2 * h)
        out.append(g)
    return out


def directional_check(params: fmlp.MLP, x: Any, y: Any, grads: fmlp.MLP, *, seed: int) -> None:
    """JAX check_grads-style: along a random direction v, (L(p + eps v) - L(p - eps v)) / 2 eps
    must equal <grad, v>, with eps and tolerance chosen by dtype."""
    f64 = params.dtype == np.float64
    eps, tol = (1e-6, 1e-6) if f64 else (1e-2, 3e-2)
    rng = np.random.default_rng(seed)
    v = fmlp.tree_map(lambda p: rng.standard_normal(p.shape).astype(p.dtype), params)
    v = fmlp.tree_scale(1.0 / np.sqrt(fmlp.tree_vdot(v, v)), v)  # unit direction
    plus = fmlp.tree_map(lambda p, d: p + p.dtype.type(eps) * d, params, v)
    minus = fmlp.tree_map(lambda p, d: p - p.dtype.type(eps) * d, params, v)
    numeric = (fmlp.loss(plus, x, y) - fmlp.loss(minus, x, y)) / (2 * eps)
    analytic = fmlp.tree_vdot(grads, v)
    assert abs(numeric - analytic) <= tol * max(1.0, abs(analytic)), (numeric, analytic)


# ------------------------------------------------------------------ forward


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_probabilities_and_cache(
    name: Any, dtype: Any, make_params: MakeParams, make_batch: MakeBatch
) -> None:
    params = make_params((4, 6, 5, 3), name, dtype=dtype)
    x, y = make_batch(7, 4, 3, dtype=dtype)
    p = fmlp.forward(params, x)
    assert p.shape == (7, 3) and p.dtype == np.dtype(dtype)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)
    probs, cache = fmlp.forward_with_cache(params, x)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(probs, p, rtol=rtol)
    assert cache.probs is probs
    assert len(cache.pre_activations) == 3 and len(cache.activations) == 3
    assert cache.activations[0] is x
    # the cache holds z_l = a_{l-1} w_l + b_l and a_l = f(z_l)
    act = {"relu": fmlp.relu, "tanh": fmlp.tanh, "sigmoid": fmlp.sigmoid}[name]
    a = x
    for layer, z, a_cached in zip(params.layers, cache.pre_activations, cache.activations):
        np.testing.assert_array_equal(a_cached, a)
        np.testing.assert_allclose(z, a @ layer.w + layer.b, rtol=rtol)
        a = act(z)
    np.testing.assert_allclose(
        fmlp.logits(params, x), cache.pre_activations[-1], rtol=rtol, atol=rtol
    )
    np.testing.assert_allclose(fmlp.softmax(fmlp.logits(params, x)), p, rtol=rtol)
    np.testing.assert_array_equal(fmlp.predict(params, x), p.argmax(axis=1))
    assert fmlp.loss(params, x, y) == pytest.approx(-np.mean(np.log(p[np.arange(7), y])), rel=1e-5)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_one_forward_pass_with_or_without_the_pre_activations(
    name: Any, dtype: Any, make_params: MakeParams, make_batch: MakeBatch
) -> None:
    """forward_unchecked is the one forward pass: keeping the pre-activations or applying
    the activations in place gives the same numbers, bit for bit, and logits, forward and
    forward_with_cache are that pass."""
    params = make_params((4, 6, 5, 3), name, dtype=dtype)
    x, _ = make_batch(7, 4, 3, dtype=dtype)
    z, acts, zs = forward_unchecked(params, x)
    z_kept, acts_kept, zs_kept = forward_unchecked(params, x, keep_pre_activations=True)
    assert zs == () and len(zs_kept) == 3 and zs_kept[-1] is z_kept
    assert len(acts) == len(acts_kept) == 3 and acts[0] is x and acts_kept[0] is x
    np.testing.assert_array_equal(z, z_kept)
    for a, b in zip(acts, acts_kept):
        np.testing.assert_array_equal(a, b)
    act = get_activation(name)
    for z_l, a_l in zip(zs_kept[:-1], acts_kept[1:]):  # z_l is kept, not overwritten by f
        np.testing.assert_array_equal(act.fn(z_l), a_l)
    probs, cache = fmlp.forward_with_cache(params, x)
    np.testing.assert_array_equal(fmlp.logits(params, x), z)
    np.testing.assert_array_equal(fmlp.forward(params, x), probs)
    np.testing.assert_array_equal(probs, fmlp.softmax(z))
    for c, k in zip(cache.pre_activations, zs_kept):
        np.testing.assert_array_equal(c, k)


def test_forward_reference_by_hand() -> None:
    """A 2-2-2 network small enough to compute on paper."""
    params = fmlp.MLP(
        layers=(
            fmlp.Dense(w=np.array([[1.0, -1.0], [2.0, 0.5]]), b=np.array([0.0, 1.0])),
            fmlp.Dense(w=np.array([[1.0, 0.0], [0.0, 1.0]]), b=np.array([0.5, 0.0])),
        ),
        activation="relu",
    )
    x = np.array([[1.0, 1.0]])
    # z1 = [3, 0.5], a1 = [3, 0.5], z2 = [3.5, 0.5]
    np.testing.assert_allclose(fmlp.logits(params, x), [[3.5, 0.5]])
    expected = np.exp([3.5, 0.5]) / np.exp([3.5, 0.5]).sum()
    np.testing.assert_allclose(fmlp.forward(params, x), [expected])
    assert fmlp.loss(params, x, np.array([1])) == pytest.approx(-np.log(expected[1]))


def test_forward_and_grad_do_not_mutate(make_params: MakeParams, make_batch: MakeBatch) -> None:
    params = make_params((4, 6, 3), "relu")
    before = fmlp.tree_map(np.copy, params)
    x, y = make_batch(5, 4, 3)
    x0, y0 = x.copy(), y.copy()
    fmlp.forward(params, x)
    fmlp.grad(params, x, y)
    _, cache = fmlp.forward_with_cache(params, x)
    probs0 = cache.probs.copy()
    fmlp.backward(params, cache, y)
    np.testing.assert_array_equal(cache.probs, probs0)
    assert fmlp.tree_allclose(params, before, rtol=0.0)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(y, y0)


# ------------------------------------------------------------------ gradients: finite differences


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("name", NAMES)
def test_grad_every_element_against_central_differences(
    name: Any, depth: int, make_params: MakeParams, make_batch: MakeBatch
) -> None:
    params = make_params(DEPTH_SIZES[depth], name, seed=depth)
    x, y = make_batch(6, 4, 3, seed=depth)
    value, grads = fmlp.grad(params, x, y)
    assert value == pytest.approx(fmlp.loss(params, x, y), rel=1e-14)
    assert type(grads) is fmlp.MLP and grads.activation == name
    assert grads.sizes == params.sizes
    for label, g, numeric in zip(
        leaf_names(params), fmlp.tree_leaves(grads), numeric_grad(params, x, y)
    ):
        assert g.shape == numeric.shape, label
        np.testing.assert_allclose(g, numeric, rtol=1e-5, atol=1e-8, err_msg=label)
    # backward over the cache of forward_with_cache is the same gradient
    _, cache = fmlp.forward_with_cache(params, x)
    assert fmlp.tree_allclose(fmlp.backward(params, cache, y), grads, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_grad_along_random_directions(
    name: Any, depth: int, dtype: Any, make_params: MakeParams, make_batch: MakeBatch
) -> None:
    sizes = {1: (6, 8, 4), 2: (6, 8, 7, 4), 3: (6, 8, 7, 5, 4)}[depth]
    params = make_params(sizes, name, seed=10 + depth, dtype=dtype)
    x, y = make_batch(16, 6, 4, seed=depth, dtype=dtype)
    _, grads = fmlp.grad(params, x, y)
    _, cache = fmlp.forward_with_cache(params, x)
    via_cache = fmlp.backward(params, cache, y)
    assert all(g.dtype == np.dtype(dtype) for g in fmlp.tree_leaves(grads))
    for seed in range(3):
        directional_check(params, x, y, grads, seed=seed)
        directional_check(params, x, y, via_cache, seed=seed)


@pytest.mark.parametrize("name", NAMES)
def test_float32_grad_agrees_with_float64(
    name: Any, make_params: MakeParams, make_batch: MakeBatch
) -> None:
    p64 = make_params((6, 8, 7, 4), name, seed=3)
    p32 = fmlp.tree_map(lambda p: p.astype(np.float32), p64)
    x64, y = make_batch(16, 6, 4)
    v64, g64 = fmlp.grad(p64, x64, y)
    v32, g32 = fmlp.grad(p32, x64.astype(np.float32), y)
    assert v32 == pytest.approx(v64, rel=1e-5)
    for a, b in zip(fmlp.tree_leaves(g32), fmlp.tree_leaves(g64)):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


def test_gradient_check_detects_a_wrong_gradient(
    make_params: MakeParams, make_batch: MakeBatch
) -> None:
    """The directional check has teeth: a gradient off by 1% in one layer fails it."""
    params = make_params((6, 8, 4), "tanh")
    x, y = make_batch(16, 6, 4)
    _, grads = fmlp.grad(params, x, y)
    wrong = fmlp.MLP(
        layers=(fmlp.Dense(w=grads.layers[0].w * 1.01, b=grads.layers[0].b), grads.layers[1]),
        activation="tanh",
    )
    with pytest.raises(AssertionError):
        for seed in range(3):
            directional_check(params, x, y, wrong, seed=seed)


def test_zero_init_gradients_are_symmetric(make_batch: MakeBatch) -> None:
    """With all weights zero, hidden units stay identical: their weight gradients are equal
    (here all zero for relu and tanh, whose hidden activations vanish)."""
    x, y = make_batch(10, 4, 3)
    for name in ("relu", "tanh"):
        params = fmlp.init((4, 5, 3), scheme="zero", activation=name, seed=0)
        _, g = fmlp.grad(params, x, y)
        assert not g.layers[0].w.any()
        assert not g.layers[1].w.any()
        np.testing.assert_allclose(g.layers[1].b, np.bincount(y, minlength=3) * -1 / 10 + 1 / 3)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_and_grad_are_one_computation(
    name: Any, dtype: Any, make_params: MakeParams, make_batch: MakeBatch
) -> None:
    """backward over a cache and grad run the same routines: equal bit for bit."""
    params = make_params((6, 8, 7, 4), name, dtype=dtype)
    x, y = make_batch(16, 6, 4, dtype=dtype)
    _, grads = fmlp.grad(params, x, y)
    _, cache = fmlp.forward_with_cache(params, x)
    via_cache = fmlp.backward(params, cache, y)
    for a, b in zip(fmlp.tree_leaves(via_cache), fmlp.tree_leaves(grads), strict=True):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ torch parity


@pytest.mark.parametrize("name", NAMES)
def test_backprop_trace_is_the_per_row_gradients_of_torch(
    name: Any, torch: Any, make_params: MakeParams, make_batch: MakeBatch, same_leaves: SameLeaves
) -> None:
    """The trace lists dz_L, da_{L-1}, dz_{L-1}, ..., da_1, dz_1: torch autograd's
    gradients of the mean loss with respect to each intermediate tensor."""
    params = make_params((5, 7, 6, 4), name)
    x, y = make_batch(9, 5, 4)
    f = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}[name]
    a = torch.from_numpy(x)
    retained = []
    for i, layer in enumerate(params.layers):
        w = torch.from_numpy(layer.w).requires_grad_(True)
        z = a @ w + torch.from_numpy(layer.b)
        z.retain_grad()
        retained.append(z)
        if i < len(params.layers) - 1:
            a = f(z)
            a.retain_grad()
            retained.append(a)
    torch.nn.functional.cross_entropy(retained[-1], torch.from_numpy(y)).backward()
    expected = [t.grad.numpy() for t in reversed(retained)]

    _, cache = fmlp.forward_with_cache(params, x)
    _, dz = fmlp.softmax_cross_entropy_grad(cache.pre_activations[-1], y)
    dz0 = dz.copy()
    trace: list[Any] = []
    grads = backprop(params, cache.activations, dz, trace=trace)
    np.testing.assert_array_equal(dz, dz0)  # dlogits is read, not written
    assert trace[0] is dz and len(trace) == len(expected) == 5
    for got, want in zip(trace, expected):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    assert same_leaves(grads, fmlp.backward(params, cache, y, trace=[]))
    assert same_leaves(grads, backprop(params, cache.activations, dz))  # no trace, same numbers


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_parity_forward_loss_and_every_gradient(
    name: Any,
    depth: int,
    dtype: Any,
    torch: Any,
    torch_mlp: Callable[[fmlp.MLP], Any],
    make_params: MakeParams,
    make_batch: MakeBatch,
) -> None:
    sizes = {1: (10, 16, 5), 2: (10, 16, 12, 5), 3: (10, 16, 12, 8, 5)}[depth]
    params = make_params(sizes, name, seed=depth, dtype=dtype)
    x, y = make_batch(32, 10, 5, seed=depth, dtype=dtype)
    model = torch_mlp(params)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    t_logits = model(tx)
    t_loss = torch.nn.functional.cross_entropy(t_logits, ty)
    t_loss.backward()

    rtol, atol = (1e-5, 1e-6) if dtype == np.float32 else (1e-11, 1e-13)
    np.testing.assert_allclose(
        fmlp.logits(params, x), t_logits.detach().numpy(), rtol=rtol, atol=atol
    )
    np.testing.assert_allclose(
        fmlp.forward(params, x),
        torch.softmax(t_logits, dim=1).detach().numpy(),
        rtol=rtol,
        atol=atol,
    )
    value, grads = fmlp.grad(params, x, y)
    assert value == pytest.approx(t_loss.item(), rel=rtol)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    assert len(linears) == len(grads.layers) == depth + 1
    for i, (g, lin) in enumerate(zip(grads.layers, linears)):
        np.testing.assert_allclose(
            g.w, lin.weight.grad.numpy().T, rtol=rtol * 10, atol=atol, err_msg=f"w{i}"
        )
        np.testing.assert_allclose(
            g.b, lin.bias.grad.numpy(), rtol=rtol * 10, atol=atol, err_msg=f"b{i}"
        )


# ------------------------------------------------------------------ properties


@settings(max_examples=30, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 9), min_size=2, max_size=5),
    n=st.integers(1, 12),
    name=st.sampled_from(NAMES),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**16),
)
def test_shapes_and_dtypes_for_any_architecture(
    sizes: list[int], n: int, name: Any, dtype: Any, seed: int
) -> None:
    params = fmlp.init(sizes, activation=name, scheme="glorot", seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, sizes[0])).astype(dtype)
    y = rng.integers(0, sizes[-1], n)
    p = fmlp.forward(params, x)
    assert p.shape == (n, sizes[-1]) and p.dtype == np.dtype(dtype)
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    value, grads = fmlp.grad(params, x, y)
    assert np.isfinite(value) and value >= 0
    assert grads.sizes == params.sizes and grads.activation == name
    for g, q in zip(fmlp.tree_leaves(grads), fmlp.tree_leaves(params)):
        assert g.shape == q.shape and g.dtype == q.dtype and np.isfinite(g).all()
    _, cache = fmlp.forward_with_cache(params, x)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    assert fmlp.tree_allclose(fmlp.backward(params, cache, y), grads, rtol=tol, atol=tol)
    # the bias gradient of the last layer sums to zero (softmax minus one-hot)
    assert abs(float(grads.layers[-1].b.sum())) <= tol


# ------------------------------------------------------------------ errors


def _forward(p: fmlp.MLP, x: Any, y: Any) -> object:
    return fmlp.forward(p, x)


def _forward_with_cache(p: fmlp.MLP, x: Any, y: Any) -> object:
    return fmlp.forward_with_cache(p, x)


def _logits(p: fmlp.MLP, x: Any, y: Any) -> object:
    return fmlp.logits(p, x)


def _predict(p: fmlp.MLP, x: Any, y: Any) -> object:
    return fmlp.predict(p, x)


def _loss(p: fmlp.MLP, x: Any, y: Any) -> object:
    return fmlp.loss(p, x, y)


def _grad(p: fmlp.MLP, x: Any, y: Any) -> object:
    return fmlp.grad(p, x, y)


def _evaluate(p: fmlp.MLP, x: Any, y: Any) -> object:
    return fmlp.evaluate(p, x, y)


def _fit(p: fmlp.MLP, x: Any, y: Any) -> object:
    return fmlp.fit(p, x, y, epochs=1, batch_size=2, lr=0.1)


def _fit_validation(p: fmlp.MLP, x: Any, y: Any) -> object:
    good_x = np.zeros((3, 4), dtype=p.dtype)
    return fmlp.fit(
        p, good_x, np.zeros(3, np.int64), epochs=1, batch_size=2, lr=0.1, validation=(x, y)
    )


INPUT_FNS = [
    _forward,
    _forward_with_cache,
    _logits,
    _predict,
    _loss,
    _grad,
    _evaluate,
    _fit,
    _fit_validation,
]
LABEL_FNS = [_loss, _grad, _evaluate, _fit, _fit_validation]


@pytest.fixture
def small() -> tuple[fmlp.MLP, NDArray[np.float64], NDArray[np.int64]]:
    params = fmlp.init((4, 5, 3), seed=0)
    x = np.random.default_rng(0).standard_normal((6, 4))
    return params, x, np.array([0, 1, 2, 0, 1, 2])


Small = tuple[fmlp.MLP, NDArray[np.float64], NDArray[np.int64]]


@pytest.mark.parametrize("fn", INPUT_FNS)
def test_input_feature_size_mismatch(fn: Callable[..., object], small: Small) -> None:
    params, _, y = small
    with pytest.raises(
        ValueError, match=r"input feature size 5 does not match the first layer, which takes 4"
    ):
        fn(params, np.zeros((6, 5)), y)


@pytest.mark.parametrize("fn", INPUT_FNS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_inputs(fn: Callable[..., object], bad: float, small: Small) -> None:
    params, x, y = small
    x = x.copy()
    x[2, 1] = bad
    with pytest.raises(ValueError, match="inputs contain NaN or inf"):
        fn(params, x, y)


@pytest.mark.parametrize("fn", INPUT_FNS)
def test_empty_batch(fn: Callable[..., object], small: Small) -> None:
    params, x, y = small
    with pytest.raises(ValueError, match="empty batch"):
        fn(params, x[:0], y[:0])


@pytest.mark.parametrize("fn", INPUT_FNS)
def test_dtype_mismatch(fn: Callable[..., object], small: Small) -> None:
    params, x, y = small
    with pytest.raises(
        TypeError, match=r"dtype mismatch: parameters are float64 but inputs are float32"
    ):
        fn(params, x.astype(np.float32), y)
    p32 = fmlp.tree_map(lambda p: p.astype(np.float32), params)
    with pytest.raises(TypeError, match=r"parameters are float32 but inputs are float64.*astype"):
        fn(p32, x, y)
    with pytest.raises(TypeError, match="inputs are int64"):
        fn(params, x.astype(np.int64), y)


@pytest.mark.parametrize("fn", INPUT_FNS)
def test_inputs_must_be_a_2d_array(fn: Callable[..., object], small: Small) -> None:
    params, x, y = small
    with pytest.raises(TypeError, match="inputs must be a numpy array, got list"):
        fn(params, x.tolist(), y)
    with pytest.raises(ValueError, match=r"inputs must have shape \(N, 4\), got \(4,\).*reshape"):
        fn(params, x[0], y[:1])


@pytest.mark.parametrize("fn", LABEL_FNS)
@pytest.mark.parametrize("bad", [-1, 3, 10])
def test_labels_out_of_range(fn: Callable[..., object], bad: int, small: Small) -> None:
    params, x, y = small
    y = y.copy()
    y[3] = bad
    with pytest.raises(
        ValueError,
        match=rf"labels must lie in \[0, 3\), got values in \[{min(bad, 0)}, {max(bad, 2)}\]",
    ):
        fn(params, x, y)


@pytest.mark.parametrize("fn", LABEL_FNS)
def test_labels_not_integers(fn: Callable[..., object], small: Small) -> None:
    params, x, y = small
    with pytest.raises(TypeError, match=r"labels must be integers in \[0, 3\), got dtype float64"):
        fn(params, x, y.astype(np.float64))
    with pytest.raises(TypeError, match=r"labels must be integers.*got dtype bool"):
        fn(params, x, y > 0)
    with pytest.raises(TypeError, match="labels must be a numpy array of integers, got list"):
        fn(params, x, y.tolist())


@pytest.mark.parametrize("fn", LABEL_FNS)
def test_labels_wrong_shape(fn: Callable[..., object], small: Small) -> None:
    params, x, y = small
    with pytest.raises(
        ValueError, match=r"labels must have shape \(6,\) to match the inputs, got \(5,\)"
    ):
        fn(params, x, y[:5])
    onehot = np.eye(3, dtype=np.int64)[y]
    with pytest.raises(ValueError, match=r"labels must have shape \(6,\).*got \(6, 3\)"):
        fn(params, x, onehot)


def test_backward_checks_labels(small: Small) -> None:
    params, x, y = small
    _, cache = fmlp.forward_with_cache(params, x)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        fmlp.backward(params, cache, y + 1)
    with pytest.raises(TypeError, match="labels must be integers"):
        fmlp.backward(params, cache, y.astype(np.float32))
    with pytest.raises(ValueError, match=r"labels must have shape \(6,\)"):
        fmlp.backward(params, cache, y[:2])
