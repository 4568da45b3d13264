"""Parameter records and initialization: shapes, schemes, determinism, validation."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fmlp
from fmlp.params import check_sizes

DTYPES: tuple[Any, ...] = (np.float32, np.float64)
SCHEMES = ("zero", "normal", "glorot", "he")


def test_mnist_sized_mlp_has_669706_parameters() -> None:
    sizes = (784, 512, 512, 10)
    assert fmlp.count_params(sizes) == 669_706
    params = fmlp.init(sizes, seed=0, dtype=np.float32)
    assert fmlp.n_params(params) == 669_706
    assert params.sizes == sizes


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scheme", SCHEMES)
def test_init_shapes_dtypes_and_zero_biases(scheme: Any, dtype: Any) -> None:
    sizes = (7, 5, 4, 3)
    params = fmlp.init(sizes, scheme=scheme, activation="tanh", seed=1, dtype=dtype)
    assert params.activation == "tanh"
    assert params.sizes == sizes
    assert params.dtype == np.dtype(dtype)
    assert len(params.layers) == 3
    for layer, (a, b) in zip(params.layers, itertools.pairwise(sizes)):
        assert layer.w.shape == (a, b) and layer.b.shape == (b,)
        assert layer.fan_in == a and layer.fan_out == b
        assert layer.w.dtype == layer.b.dtype == np.dtype(dtype)
        assert layer.w.flags.c_contiguous
        assert not layer.b.any()
        assert np.isfinite(layer.w).all()


def test_zero_scheme_is_all_zero() -> None:
    params = fmlp.init((6, 5, 3), scheme="zero", seed=0)
    assert all(not leaf.any() for leaf in fmlp.tree_leaves(params))


def test_scheme_statistics() -> None:
    fan_in, fan_out = 400, 300
    normal = fmlp.init((fan_in, fan_out), scheme="normal", seed=0).layers[0].w
    assert abs(normal.mean()) < 0.01
    assert normal.std() == pytest.approx(1.0, rel=0.02)

    glorot = fmlp.init((fan_in, fan_out), scheme="glorot", seed=0).layers[0].w
    d = math.sqrt(6.0 / (fan_in + fan_out))
    assert np.abs(glorot).max() <= d
    assert np.abs(glorot).max() > 0.99 * d  # fills the interval
    assert glorot.std() == pytest.approx(d / math.sqrt(3.0), rel=0.02)  # uniform on [-d, d]

    he = fmlp.init((fan_in, fan_out), scheme="he", seed=0).layers[0].w
    assert he.std() == pytest.approx(math.sqrt(2.0 / fan_in), rel=0.02)
    assert abs(he.mean()) < 0.01 * math.sqrt(2.0 / fan_in) * 10


# ------------------------------------------------------------------ determinism


@pytest.mark.parametrize("scheme", SCHEMES)
def test_same_seed_bit_identical(scheme: Any) -> None:
    a = fmlp.init((20, 16, 16, 4), scheme=scheme, seed=42)
    b = fmlp.init((20, 16, 16, 4), scheme=scheme, seed=42)
    assert all(np.array_equal(x, y) for x, y in zip(fmlp.tree_leaves(a), fmlp.tree_leaves(b)))
    g1 = fmlp.init((20, 16, 4), scheme=scheme, seed=np.random.default_rng(42))
    g2 = fmlp.init((20, 16, 4), scheme=scheme, seed=np.random.default_rng(42))
    assert all(np.array_equal(x, y) for x, y in zip(fmlp.tree_leaves(g1), fmlp.tree_leaves(g2)))


@pytest.mark.parametrize("scheme", ["normal", "glorot", "he"])
def test_different_seed_differs(scheme: Any) -> None:
    a = fmlp.init((20, 16, 4), scheme=scheme, seed=0)
    b = fmlp.init((20, 16, 4), scheme=scheme, seed=1)
    assert not np.array_equal(a.layers[0].w, b.layers[0].w)
    assert not np.array_equal(a.layers[1].w, b.layers[1].w)


def test_seed_does_not_touch_the_global_rng() -> None:
    np.random.seed(123)
    expected = np.random.random()
    np.random.seed(123)
    fmlp.init((10, 10, 3), scheme="normal", seed=5)
    assert np.random.random() == expected


def test_generator_seed_advances() -> None:
    rng = np.random.default_rng(0)
    a = fmlp.init((5, 4, 3), seed=rng)
    b = fmlp.init((5, 4, 3), seed=rng)
    assert not np.array_equal(a.layers[0].w, b.layers[0].w)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_float32_and_float64_from_one_seed_agree(scheme: Any) -> None:
    p32 = fmlp.init((30, 20, 20, 10), scheme=scheme, seed=7, dtype=np.float32)
    p64 = fmlp.init((30, 20, 20, 10), scheme=scheme, seed=7, dtype=np.float64)
    for x32, x64 in zip(fmlp.tree_leaves(p32), fmlp.tree_leaves(p64)):
        assert x32.dtype == np.float32 and x64.dtype == np.float64
        np.testing.assert_array_equal(x32, x64.astype(np.float32))


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize("sizes", [(), (784,), [10]])
def test_sizes_need_two_entries(sizes: Any) -> None:
    with pytest.raises(ValueError, match="at least the input and output"):
        fmlp.init(sizes, seed=0)
    with pytest.raises(ValueError, match="at least the input and output"):
        fmlp.count_params(sizes)


@pytest.mark.parametrize(
    "sizes",
    [
        (784, 0, 10),
        (784, -5, 10),
        (0, 10),
        (784, 10, 0),
        (784, 2.5, 10),
        (784, True, 10),
        (784, "512", 10),
    ],
)
def test_widths_must_be_positive_integers(sizes: Any) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        fmlp.init(sizes, seed=0)


def test_numpy_integer_widths_are_accepted() -> None:
    assert check_sizes((np.int64(4), np.int32(3))) == (4, 3)  # type: ignore[arg-type]  # numpy integers are accepted at runtime
    assert fmlp.init(np.array([4, 3, 2]), seed=0).sizes == (4, 3, 2)  # type: ignore[arg-type]  # an array of widths is a Sequence at runtime


def test_unknown_scheme() -> None:
    with pytest.raises(ValueError, match=r"unknown init scheme 'xavier'.*glorot"):
        fmlp.init((4, 3), scheme="xavier", seed=0)  # type: ignore[arg-type]  # the point of the test


def test_unknown_activation() -> None:
    with pytest.raises(ValueError, match=r"unknown activation 'gelu'.*relu, tanh, sigmoid"):
        fmlp.init((4, 3), activation="gelu", seed=0)  # type: ignore[arg-type]  # the point of the test
    layer = fmlp.Dense(w=np.zeros((4, 3)), b=np.zeros(3))
    with pytest.raises(ValueError, match="unknown activation 'softplus'"):
        fmlp.MLP(layers=(layer,), activation="softplus")  # type: ignore[arg-type]  # the point of the test


@pytest.mark.parametrize("dtype", [np.float16, np.int64, "complex128"])
def test_unsupported_dtype(dtype: Any) -> None:
    with pytest.raises(TypeError, match="float32 or float64"):
        fmlp.init((4, 3), seed=0, dtype=dtype)


@pytest.mark.parametrize("seed", [1.5, "0", None, True])
def test_bad_seed_type(seed: Any) -> None:
    with pytest.raises(TypeError, match="seed must be an int or a numpy Generator"):
        fmlp.init((4, 3), seed=seed)


def test_mlp_record_validation() -> None:
    w43, b3 = np.zeros((4, 3)), np.zeros(3)
    with pytest.raises(ValueError, match="at least one layer"):
        fmlp.MLP(layers=())
    with pytest.raises(ValueError, match=r"layer 0: w must be \(fan_in, fan_out\)"):
        fmlp.MLP(layers=(fmlp.Dense(w=w43, b=np.zeros(4)),))
    with pytest.raises(ValueError, match="layer 1 takes 5 inputs but layer 0 gives 3"):
        fmlp.MLP(layers=(fmlp.Dense(w=w43, b=b3), fmlp.Dense(w=np.zeros((5, 2)), b=np.zeros(2))))
    with pytest.raises(TypeError, match="share one dtype"):
        fmlp.MLP(layers=(fmlp.Dense(w=w43, b=b3.astype(np.float32)),))
    with pytest.raises(TypeError, match="share one dtype"):
        fmlp.MLP(
            layers=(
                fmlp.Dense(w=w43, b=b3),
                fmlp.Dense(w=np.zeros((3, 2), np.float32), b=np.zeros(2, np.float32)),
            )
        )


# ------------------------------------------------------------------ properties


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 12), min_size=2, max_size=5),
    scheme=st.sampled_from(SCHEMES),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**31 - 1),
)
def test_init_properties(sizes: list[int], scheme: Any, dtype: Any, seed: int) -> None:
    params = fmlp.init(sizes, scheme=scheme, seed=seed, dtype=dtype)
    assert params.sizes == tuple(sizes)
    assert (
        fmlp.n_params(params)
        == fmlp.count_params(sizes)
        == sum(leaf.size for leaf in fmlp.tree_leaves(params))
    )
    assert all(leaf.dtype == np.dtype(dtype) for leaf in fmlp.tree_leaves(params))
    if scheme == "glorot":
        for layer in params.layers:
            assert np.abs(layer.w).max() <= math.sqrt(6.0 / (layer.fan_in + layer.fan_out)) * (
                1 + 1e-6
            )
    again = fmlp.init(sizes, scheme=scheme, seed=seed, dtype=dtype)
    assert all(
        np.array_equal(a, b) for a, b in zip(fmlp.tree_leaves(params), fmlp.tree_leaves(again))
    )
