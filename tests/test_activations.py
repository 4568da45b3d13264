"""Activations and their derivatives: values, finite differences, in-place forms."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fmlp
from fmlp.activations import ACTIVATIONS, get_activation

NAMES = ("relu", "tanh", "sigmoid")
DTYPES: tuple[Any, ...] = (np.float32, np.float64)


def reference(name: str, z: Any) -> Any:
    """Textbook formulas, in float64."""
    z = np.asarray(z, dtype=np.float64)
    if name == "relu":
        return np.where(z > 0, z, 0.0)
    if name == "tanh":
        return (np.exp(z) - np.exp(-z)) / (np.exp(z) + np.exp(-z))
    return 1.0 / (1.0 + np.exp(-z))


@pytest.mark.parametrize("name", NAMES)
def test_values_match_textbook_formulas(name: str) -> None:
    z = np.linspace(-6, 6, 101)
    act = get_activation(name)
    np.testing.assert_allclose(act.fn(z), reference(name, z), rtol=1e-12, atol=1e-15)


def test_exported_functions_are_the_registered_ones() -> None:
    assert ACTIVATIONS["relu"].fn is fmlp.relu and ACTIVATIONS["relu"].grad is fmlp.relu_grad
    assert ACTIVATIONS["tanh"].fn is fmlp.tanh and ACTIVATIONS["tanh"].grad is fmlp.tanh_grad
    assert (
        ACTIVATIONS["sigmoid"].fn is fmlp.sigmoid
        and ACTIVATIONS["sigmoid"].grad is fmlp.sigmoid_grad
    )
    assert all(ACTIVATIONS[n].name == n for n in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_derivative_against_central_differences(name: str) -> None:
    rng = np.random.default_rng(0)
    z = rng.uniform(-4, 4, 500)
    z = z[np.abs(z) > 1e-3]  # away from relu's kink
    act = get_activation(name)
    h = 1e-6
    numeric = (act.fn(z + h) - act.fn(z - h)) / (2 * h)
    np.testing.assert_allclose(act.grad(z), numeric, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_grad_from_output_agrees_with_grad(name: str, dtype: Any) -> None:
    z = np.linspace(-5, 5, 77).astype(dtype)
    act = get_activation(name)
    a = act.fn(z)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(act.grad_from_output(a), act.grad(z), rtol=rtol, atol=rtol)
    assert act.fn(z).dtype == act.grad(z).dtype == act.grad_from_output(a).dtype == np.dtype(dtype)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_inplace_matches_out_of_place(name: str, dtype: Any) -> None:
    z = np.random.default_rng(1).standard_normal((6, 5)).astype(dtype) * 3
    act = get_activation(name)
    expected = act.fn(z)
    buf = z.copy()
    act.inplace(buf)
    np.testing.assert_array_equal(buf, expected)
    # the out-of-place form leaves its input alone
    original = z.copy()
    act.fn(z)
    act.grad(z)
    np.testing.assert_array_equal(z, original)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_backprop_inplace_is_the_product_with_grad_from_output(name: str, dtype: Any) -> None:
    """The in-place step of backpropagation through the activation equals, bit for bit,
    the upstream gradient times the derivative written from the output."""
    rng = np.random.default_rng(2)
    z = (rng.standard_normal((6, 5)) * 3).astype(dtype)
    z[0, :2] = 0.0  # relu's kink
    a = get_activation(name).fn(z)
    g = rng.standard_normal((6, 5)).astype(dtype)
    a0, expected = a.copy(), g * get_activation(name).grad_from_output(a)
    get_activation(name).backprop_inplace(g, a)
    np.testing.assert_array_equal(g, expected)
    assert g.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(a, a0)  # the cached activation is left alone


def test_relu_subgradient_at_zero_is_zero() -> None:
    z = np.array([-1.0, 0.0, 1.0])
    np.testing.assert_array_equal(fmlp.relu_grad(z), [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(fmlp.relu(z), [0.0, 0.0, 1.0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_extreme_inputs_stay_finite(dtype: Any) -> None:
    z = np.array([-1e4, -100.0, 0.0, 100.0, 1e4], dtype=dtype)
    s = fmlp.sigmoid(z)
    assert np.isfinite(s).all()
    np.testing.assert_allclose(s, [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-30)
    assert np.isfinite(fmlp.sigmoid_grad(z)).all()
    np.testing.assert_array_equal(fmlp.tanh(z)[[0, -1]], [-1.0, 1.0])
    assert np.isfinite(fmlp.tanh_grad(z)).all()
    np.testing.assert_array_equal(fmlp.relu(z), [0.0, 0.0, 0.0, 100.0, 1e4])


def test_unknown_activation_name() -> None:
    with pytest.raises(
        ValueError, match=r"unknown activation 'swish': expected one of relu, tanh, sigmoid"
    ):
        get_activation("swish")


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(NAMES),
    z=hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=1, max_dims=3, max_side=5),
        elements=st.floats(-50, 50, allow_nan=False),
    ),
)
def test_activation_properties(name: str, z: Any) -> None:
    act = get_activation(name)
    a, g = act.fn(z), act.grad(z)
    assert a.shape == g.shape == z.shape
    assert np.isfinite(a).all() and np.isfinite(g).all()
    assert (g >= 0).all()  # all three are non-decreasing
    bound = {"relu": 1.0, "tanh": 1.0, "sigmoid": 0.25}[name]
    assert (g <= bound).all()
    if name == "sigmoid":
        assert ((a >= 0) & (a <= 1)).all()
        np.testing.assert_allclose(a + act.fn(-z), 1.0, rtol=1e-12)
    if name == "tanh":
        np.testing.assert_allclose(act.fn(-z), -a, rtol=1e-12, atol=0)
