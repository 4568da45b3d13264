"""numpy's own BLAS asked for ``C <- alpha A^T B + beta C``: found and checked against
numpy's bits, close to the unfused rule, the same bits on every thread count and every
call, and refused (nothing written) for arrays it does not take."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from fmlp import blas

pytestmark = pytest.mark.skipif(not blas.available(), reason="numpy's BLAS was not found")

DType = type[np.float32] | type[np.float64]
DTYPES: tuple[DType, ...] = (np.float32, np.float64)


def _arrays(
    n: int, m: int, k: int, dtype: DType, seed: int = 0
) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any]]:
    rng = np.random.default_rng(seed)
    a = np.asarray(rng.standard_normal((n, m)), dtype=dtype)
    b = np.asarray(rng.standard_normal((n, k)), dtype=dtype)
    c = np.asarray(rng.standard_normal((m, k)), dtype=dtype)
    return a, b, c


@pytest.mark.parametrize("dtype", DTYPES)
def test_alpha_one_beta_zero_is_numpys_product_bit_for_bit(
    dtype: DType,
) -> None:
    a, b, c = _arrays(96, 50, 30, dtype)
    assert blas.gemm_at_b(c, a, b, alpha=1.0, beta=0.0)
    assert np.array_equal(c, a.T @ b)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 80),
    m=st.integers(1, 60),
    k=st.integers(1, 40),
    lr=st.floats(1e-4, 1.0),
    wd=st.floats(0.0, 0.1),
    dtype=st.sampled_from(DTYPES),
)
def test_the_fused_step_is_the_unfused_rule_up_to_the_last_bits(
    n: int, m: int, k: int, lr: float, wd: float, dtype: DType
) -> None:
    a, b, w = _arrays(n, m, k, dtype)
    t = np.dtype(dtype).type
    g = a.T @ b
    unfused = t(1.0 - lr * wd) * w + t(-lr) * g
    c = w.copy()
    assert blas.gemm_at_b(c, a, b, alpha=-lr, beta=1.0 - lr * wd)
    # the gradient is not rounded before it is scaled: a few units in the last place of
    # the largest term at most
    scale = np.abs(t(1.0 - lr * wd) * w) + np.abs(t(lr) * np.abs(a.T) @ np.abs(b))
    assert np.all(np.abs(c - unfused) <= 4 * np.finfo(dtype).eps * scale)


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_same_bits_on_every_call_and_thread_count(dtype: DType) -> None:
    threadpoolctl = pytest.importorskip("threadpoolctl")
    a, b, w = _arrays(128, 300, 200, dtype, seed=3)
    results = []
    for threads in (1, 2, 1):
        c = w.copy()
        with threadpoolctl.threadpool_limits(limits=threads):
            assert blas.gemm_at_b(c, a, b, alpha=-0.05, beta=0.999)
        results.append(c)
    assert all(np.array_equal(results[0], r) for r in results[1:])


def test_arrays_it_does_not_take_are_left_untouched() -> None:
    a, b, c = _arrays(8, 5, 4, np.float32)
    before = c.copy()
    refused = [
        (c.astype(np.float64), a, b),  # mixed dtypes
        (np.asfortranarray(c), a, b),  # not C-contiguous
        (c[:, :3], a, b[:, :3].copy()),  # a view that is not contiguous
        (c.T.copy(), a, b),  # wrong shape
        (c, a[:4], b),  # a and b disagree on N
        (c.astype(np.int32), a.astype(np.int32), b.astype(np.int32)),  # not floats
    ]
    for cc, aa, bb in refused:
        saved = cc.copy()
        assert not blas.gemm_at_b(cc, aa, bb, alpha=1.0, beta=1.0)
        assert np.array_equal(cc, saved)
    frozen = c.copy()
    frozen.flags.writeable = False
    assert not blas.gemm_at_b(frozen, a, b, alpha=1.0, beta=1.0)
    assert np.array_equal(c, before)


def test_the_library_is_numpys() -> None:
    path = blas.library()
    assert path is not None and "blas" in path.lower()
