"""Softmax, log-softmax and cross-entropy: values, stability at extreme logits, gradients."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fmlp

DTYPES: tuple[Any, ...] = (np.float32, np.float64)


def naive_softmax(z: Any) -> Any:
    e = np.exp(np.asarray(z, dtype=np.float64))
    return e / e.sum(axis=-1, keepdims=True)


def onehot(y: Any, c: int) -> Any:
    out = np.zeros((len(y), c))
    out[np.arange(len(y)), y] = 1.0
    return out


# ------------------------------------------------------------------ softmax


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_1d_and_2d(dtype: Any) -> None:
    rng = np.random.default_rng(0)
    z1 = rng.standard_normal(5).astype(dtype)
    z2 = rng.standard_normal((4, 5)).astype(dtype)
    p1, p2 = fmlp.softmax(z1), fmlp.softmax(z2)
    assert p1.shape == (5,) and p2.shape == (4, 5)
    assert p1.dtype == p2.dtype == np.dtype(dtype)
    rtol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(p1, naive_softmax(z1), rtol=rtol)
    np.testing.assert_allclose(p2, naive_softmax(z2), rtol=rtol)
    np.testing.assert_allclose(p2.sum(axis=1), 1.0, rtol=rtol)
    # each row of a 2-D softmax is the 1-D softmax of that row
    np.testing.assert_allclose(p2[2], fmlp.softmax(z2[2]), rtol=rtol)


def test_softmax_does_not_modify_its_input() -> None:
    z = np.array([[1.0, 2.0, 3.0]])
    fmlp.softmax(z)
    fmlp.log_softmax(z)
    np.testing.assert_array_equal(z, [[1.0, 2.0, 3.0]])


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_extreme_logits(dtype: Any) -> None:
    z = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4]], dtype=dtype)
    p = fmlp.softmax(z)
    assert np.isfinite(p).all()
    np.testing.assert_allclose(
        p, np.array([[1, 0, 0], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0]]), rtol=1e-6
    )
    logp = fmlp.log_softmax(z)
    assert np.isfinite(logp).all()
    np.testing.assert_allclose(logp[0], [0.0, -2e4, -1e4], rtol=1e-6)
    np.testing.assert_allclose(fmlp.softmax(np.array([1e4, -1e4], dtype=dtype)), [1.0, 0.0])


# ------------------------------------------------------------------ cross-entropy


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_matches_definition(dtype: Any) -> None:
    rng = np.random.default_rng(1)
    z = rng.standard_normal((8, 4)).astype(dtype)
    y = rng.integers(0, 4, 8)
    expected = -np.mean(np.log(naive_softmax(z)[np.arange(8), y]))
    value = fmlp.cross_entropy(z, y)
    assert isinstance(value, float)
    assert value == pytest.approx(expected, rel=1e-6 if dtype == np.float32 else 1e-13)
    assert fmlp.softmax_cross_entropy_grad(z, y)[0] == pytest.approx(value, rel=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_extreme_logits(dtype: Any) -> None:
    z = np.array([[1e4, -1e4], [1e4, -1e4], [-1e4, 1e4]], dtype=dtype)
    # right with overwhelming confidence: 0; wrong: the full margin 2e4
    assert fmlp.cross_entropy(z[:1], np.array([0])) == 0.0
    assert fmlp.cross_entropy(z[:1], np.array([1])) == pytest.approx(2e4)
    y = np.array([0, 1, 1])
    value = fmlp.cross_entropy(z, y)
    assert value == pytest.approx(2e4 / 3)
    fused, g = fmlp.softmax_cross_entropy_grad(z, y)
    assert fused == pytest.approx(2e4 / 3)
    assert np.isfinite(g).all()
    np.testing.assert_allclose(g, np.array([[0, 0], [1 / 3, -1 / 3], [0, 0]]), atol=1e-7)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_gradient_is_softmax_minus_onehot_over_n(dtype: Any) -> None:
    rng = np.random.default_rng(2)
    z = (3 * rng.standard_normal((6, 5))).astype(dtype)
    y = rng.integers(0, 5, 6)
    original = z.copy()
    value, g = fmlp.softmax_cross_entropy_grad(z, y)
    np.testing.assert_array_equal(z, original)  # donate=False keeps the logits
    assert g.dtype == np.dtype(dtype) and g.shape == z.shape
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(g, (naive_softmax(z) - onehot(y, 5)) / 6, rtol=rtol, atol=rtol / 10)
    np.testing.assert_allclose(g.sum(axis=1), 0.0, atol=1e-6 if dtype == np.float32 else 1e-15)
    assert value == pytest.approx(fmlp.cross_entropy(z, y), rel=rtol)
    value2, g2 = fmlp.softmax_cross_entropy_grad(z.copy(), y, donate=True)
    assert value2 == value
    np.testing.assert_array_equal(g2, g)


def test_fused_gradient_against_central_differences() -> None:
    rng = np.random.default_rng(3)
    z = rng.standard_normal((5, 4))
    y = rng.integers(0, 4, 5)
    _, g = fmlp.softmax_cross_entropy_grad(z, y)

    def naive_loss(logits: Any) -> float:  # independent of fmlp's log-softmax
        return float(-np.mean(np.log(naive_softmax(logits)[np.arange(5), y])))

    h = 1e-6
    numeric = np.zeros_like(z)
    for idx in np.ndindex(*z.shape):
        zp, zm = z.copy(), z.copy()
        zp[idx] += h
        zm[idx] -= h
        numeric[idx] = (naive_loss(zp) - naive_loss(zm)) / (2 * h)
    np.testing.assert_allclose(g, numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("dtype", DTYPES)
def test_value_and_value_with_gradient_are_one_routine(dtype: Any) -> None:
    """cross_entropy, its summed form and the fused routine compute the value the same way:
    equal bit for bit, whether or not the logits are donated."""
    rng = np.random.default_rng(4)
    z = (5 * rng.standard_normal((9, 6))).astype(dtype)
    y = rng.integers(0, 6, 9)
    value = fmlp.cross_entropy(z, y)
    assert fmlp.softmax_cross_entropy_grad(z, y)[0] == value
    assert fmlp.softmax_cross_entropy_grad(z.copy(), y, donate=True)[0] == value
    total = fmlp.cross_entropy(z, y, reduction="sum")
    halves = fmlp.cross_entropy(z[:4], y[:4], reduction="sum") + fmlp.cross_entropy(
        z[4:], y[4:], reduction="sum"
    )
    assert total == pytest.approx(9 * value, rel=1e-15)
    assert halves == pytest.approx(total, rel=1e-15)
    # float64 accumulation: even float32 logits give the float64 value to ~1e-7
    expected = -np.mean(np.log(naive_softmax(z)[np.arange(9), y]))
    assert value == pytest.approx(expected, rel=1e-7 if dtype == np.float32 else 1e-14)
    with pytest.raises(ValueError, match="unknown reduction 'max'"):
        fmlp.cross_entropy(z, y, reduction="max")  # type: ignore[call-overload]  # a wrong name on purpose


@pytest.mark.parametrize("dtype", DTYPES)
def test_value_and_gradient_match_torch(dtype: Any, torch: Any) -> None:
    rng = np.random.default_rng(5)
    z = (4 * rng.standard_normal((12, 7))).astype(dtype)
    y = rng.integers(0, 7, 12)
    tz = torch.from_numpy(z.copy()).requires_grad_(True)
    t_loss = torch.nn.functional.cross_entropy(tz, torch.from_numpy(y))
    t_loss.backward()
    t_sum = torch.nn.functional.cross_entropy(tz, torch.from_numpy(y), reduction="sum").item()
    value, g = fmlp.softmax_cross_entropy_grad(z, y)
    rtol, atol = (1e-6, 1e-7) if dtype == np.float32 else (1e-14, 1e-16)
    assert value == pytest.approx(t_loss.item(), rel=rtol)
    assert fmlp.cross_entropy(z, y, reduction="sum") == pytest.approx(t_sum, rel=rtol)
    np.testing.assert_allclose(g, tz.grad.numpy(), rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_per_sample_losses(dtype: Any) -> None:
    rng = np.random.default_rng(6)
    z = (5 * rng.standard_normal((11, 5))).astype(dtype)
    y = rng.integers(0, 5, 11)
    losses = fmlp.cross_entropy(z, y, reduction="none")
    assert losses.shape == (11,) and losses.dtype == np.float64
    # the per-sample losses are what the mean and the sum reduce
    assert float(np.mean(losses)) == fmlp.cross_entropy(z, y)
    assert float(np.sum(losses)) == fmlp.cross_entropy(z, y, reduction="sum")
    # the value of log_softmax at each row's label, to the bit in float64
    if dtype == np.float64:
        expected = -fmlp.log_softmax(z)[np.arange(11), y]
        assert np.array_equal(losses, expected)
    with pytest.raises(ValueError, match="expected one of 'mean', 'sum', 'none'"):
        fmlp.cross_entropy(z, y, reduction="None")  # type: ignore[call-overload]  # a wrong name on purpose


def test_per_sample_losses_match_torch(torch: Any) -> None:
    rng = np.random.default_rng(7)
    z = 6 * rng.standard_normal((40, 9))
    y = rng.integers(0, 9, 40)
    expected = torch.nn.functional.cross_entropy(
        torch.from_numpy(z), torch.from_numpy(y), reduction="none"
    ).numpy()
    np.testing.assert_allclose(fmlp.cross_entropy(z, y, reduction="none"), expected, rtol=1e-14)


@settings(max_examples=40, deadline=None)
@given(
    z=hnp.arrays(
        st.sampled_from([np.float32, np.float64]),
        st.tuples(st.integers(1, 6), st.integers(1, 8)),
        elements=st.floats(-1e4, 1e4, width=32),
    ),
    data=st.data(),
)
def test_softmax_cross_entropy_properties(z: Any, data: st.DataObject) -> None:
    n, c = z.shape
    y = np.array(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    p = fmlp.softmax(z)
    assert p.shape == z.shape and p.dtype == z.dtype
    assert np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5 if z.dtype == np.float32 else 1e-12)
    # invariant to shifting each row
    np.testing.assert_allclose(
        fmlp.softmax(z - z.max(axis=1, keepdims=True)), p, rtol=1e-6, atol=1e-7
    )
    value = fmlp.cross_entropy(z, y)
    assert np.isfinite(value) and value >= 0
    fused, g = fmlp.softmax_cross_entropy_grad(z, y)
    assert fused == pytest.approx(value, rel=1e-5, abs=1e-5)
    assert np.isfinite(g).all()
    assert (np.abs(g) <= 1.0 / n * (1 + 1e-6)).all()
