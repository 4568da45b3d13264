"""The numba kernels behind ``fmlp.kernels``: imported only through it, and only when
numba is installed.

Each kernel is a loop over contiguous arrays that performs, element by element, exactly
the operations of the numpy path in the same order and in the arrays' own dtype (every
scalar argument is passed already cast to it), so each intermediate is rounded as numpy
rounds it. The kernels are compiled without ``fastmath`` (LLVM neither contracts
a * b + c into a fused multiply-add nor reassociates) and with numpy's error model (a
division by zero gives inf or NaN, it does not raise); IEEE division and square root are
correctly rounded on both sides. One thing IEEE 754 leaves open may differ: which NaN
(its sign and payload) comes out where two NaNs meet in one operation. What numpy
computes with its own vectorized transcendental functions (``exp``, ``tanh``) or with
pairwise sums is not done here: those bits could differ.

Compiled kernels are cached on disk (numba's ``cache=True``: next to this file, or in
numba's user-wide cache folder, or ``NUMBA_CACHE_DIR``, when that is not writable); where
no cache folder can be used at all they are compiled in memory, once per process.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import numba

from fmlp.types import FloatArray, Floating

if TYPE_CHECKING:
    from numba.core.dispatcher import Dispatcher

K = TypeVar("K", bound=Callable[..., None])
"""A kernel: a function of arrays and scalars (in the arrays' dtype) that writes in place."""


def _jit(f: K) -> Dispatcher[K]:
    """``numba.njit`` with the on-disk cache, or without it where no cache folder can be
    used (numba refuses ``cache=True`` at decoration time then)."""
    try:
        return numba.njit(cache=True, fastmath=False, nogil=True, error_model="numpy")(f)
    except RuntimeError:
        return numba.njit(cache=False, fastmath=False, nogil=True, error_model="numpy")(f)


# ------------------------------------------------------------------ optimizer updates
#
# One pass per parameter array (flattened): x starts as the gradient; an optional L2 term
# before the core rule (x + p * pre_wd), the core rule, an optional decoupled decay after
# it (x + p * post_wd), then p + x * neg_rate. These are ``add_decayed_weights``,
# ``trace`` / ``scale_by_adam``, ``add_decayed_weights``, ``scale_by_learning_rate`` and
# ``apply_updates`` of ``fmlp.optim``, in that order.


@_jit
def sgd_update(
    p: FloatArray,
    g: FloatArray,
    pre_wd: Floating,
    has_pre: bool,
    post_wd: Floating,
    has_post: bool,
    neg_rate: Floating,
) -> None:
    for i in range(p.size):
        pi = p[i]
        x = g[i]
        if has_pre:
            x = x + pi * pre_wd
        if has_post:
            x = x + pi * post_wd
        p[i] = pi + x * neg_rate


@_jit
def trace_update(
    p: FloatArray,
    g: FloatArray,
    v: FloatArray,
    decay: Floating,
    nesterov: bool,
    pre_wd: Floating,
    has_pre: bool,
    post_wd: Floating,
    has_post: bool,
    neg_rate: Floating,
) -> None:
    for i in range(p.size):
        pi = p[i]
        x = g[i]
        if has_pre:
            x = x + pi * pre_wd
        vi = v[i] * decay + x
        v[i] = vi
        x = x + vi * decay if nesterov else vi
        if has_post:
            x = x + pi * post_wd
        p[i] = pi + x * neg_rate


@_jit
def adam_update(
    p: FloatArray,
    g: FloatArray,
    m: FloatArray,
    v: FloatArray,
    b1: Floating,
    one_minus_b1: Floating,
    b2: Floating,
    one_minus_b2: Floating,
    bias2_sqrt: Floating,
    eps: Floating,
    bias1: Floating,
    pre_wd: Floating,
    has_pre: bool,
    post_wd: Floating,
    has_post: bool,
    neg_rate: Floating,
) -> None:
    for i in range(p.size):
        pi = p[i]
        x = g[i]
        if has_pre:
            x = x + pi * pre_wd
        mi = m[i] * b1 + x * one_minus_b1
        vi = v[i] * b2 + (x * x) * one_minus_b2
        m[i] = mi
        v[i] = vi
        o: float | Floating = math.sqrt(vi)  # a local annotation: no bytecode, numba sees none
        o = o / bias2_sqrt
        o = o + eps
        o = mi / o
        o = o / bias1
        if has_post:
            o = o + pi * post_wd
        p[i] = pi + o * neg_rate


# ------------------------------------------------------------------ the step's elementwise work


@_jit
def bias_relu(z: FloatArray, b: FloatArray, zero: Floating) -> None:
    """z = max(z + b, 0) row by row, in place, as ``z += b; np.maximum(z, zero, out=z)``
    does it: NaN stays NaN and -0 becomes +0 (numpy's maximum gives its second operand
    when the two compare equal). ``zero`` is 0 in z's dtype."""
    n, h = z.shape
    for r in range(n):
        for j in range(h):
            s = z[r, j] + b[j]
            z[r, j] = s if (s > zero or s != s) else zero


@_jit
def relu_backprop(g: FloatArray, a: FloatArray, zero: Floating, one: Floating) -> None:
    """g *= (a > 0) in place over flattened arrays of one shape, as
    ``np.multiply(g, a > 0, out=g)`` does it (the mask cast to 0 or 1 in g's dtype, so
    g * 0 keeps its sign and NaN or inf times 0 is NaN). ``zero``, ``one`` in g's dtype."""
    for i in range(g.size):
        g[i] = g[i] * (one if a[i] > zero else zero)
