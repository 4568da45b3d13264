"""Compiled kernels for the training step, used when numba is installed (the optional
``fast`` extra: ``pip install 'fmlp[fast]'``), each an implementation of a numpy
expression of fmlp that gives the same bits.

The numpy code stays the definition and the fallback: without numba, or with the
environment variable ``FMLP_FUSED=0`` (read whenever a training step is made, and on
each call here), fmlp runs numpy alone. What is compiled:

- the optimizer updates of ``fmlp.fused`` (one pass per parameter array);
- the hidden layers' bias add and ReLU (``z += b; relu_(z)``) in one pass, and ReLU's
  backward (``g *= a > 0``).

What is not, because numba's results could differ from numpy's in the last bit: tanh and
sigmoid (numpy's vectorized ``tanh`` is not libm's), the softmax cross-entropy (its
``exp`` likewise, and numpy sums rows pairwise) and the bias gradients (numpy's column
sums). numba is imported on the first call that needs it, not when fmlp is imported.
"""

from __future__ import annotations

import functools
import importlib
import os
from types import ModuleType
from typing import Final

import numpy as np

from fmlp.types import FloatArray

ENV_VAR: Final = "FMLP_FUSED"
"""Set to 0 (or off, false, no) to run the numpy path even where numba is installed."""

_OFF: Final = frozenset({"0", "off", "false", "no"})


@functools.cache
def _load() -> ModuleType | None:
    try:
        return importlib.import_module("fmlp._numba_kernels")
    except ImportError:
        return None


def numba_available() -> bool:
    """True when numba can be imported (the kernels compile on first use)."""
    return _load() is not None


def enabled() -> bool:
    """True when the compiled kernels are used: numba is installed and ``FMLP_FUSED``
    does not turn them off."""
    if os.environ.get(ENV_VAR, "").strip().lower() in _OFF:
        return False
    return numba_available()


def module() -> ModuleType | None:
    """The kernels' module when they are enabled, else None."""
    return _load() if enabled() else None


def fits(dtype: np.dtype[np.generic], *arrays: FloatArray, written: int = 0) -> bool:
    """All ``arrays`` C-contiguous and of ``dtype``, float32 or float64, and the first
    ``written`` of them writeable: what a kernel takes."""
    if dtype != np.float32 and dtype != np.float64:
        return False
    return all(a.dtype == dtype and a.flags.c_contiguous for a in arrays) and all(
        a.flags.writeable for a in arrays[:written]
    )


def bias_relu_(z: FloatArray, b: FloatArray) -> bool:
    """z = relu(z + b) in place, bit for bit as ``z += b; np.maximum(z, 0, out=z)``, when
    the kernels are enabled and the arrays fit ((N, h) and (h,), C-contiguous, one float
    dtype); returns False, having done nothing, otherwise."""
    k = module()
    if k is None or z.ndim != 2 or b.shape != (z.shape[1],) or not fits(z.dtype, z, b, written=1):
        return False
    k.bias_relu(z, b, z.dtype.type(0))
    return True


def relu_backprop_(g: FloatArray, a: FloatArray) -> bool:
    """g *= relu'(z) in place from a = relu(z), bit for bit as
    ``np.multiply(g, a > 0, out=g)``, when the kernels are enabled and the arrays fit (one
    shape, C-contiguous, one float dtype); returns False, having done nothing, otherwise."""
    k = module()
    if k is None or g.shape != a.shape or not fits(g.dtype, g, a, written=1):
        return False
    t = g.dtype.type
    k.relu_backprop(g.reshape(-1), a.reshape(-1), t(0), t(1))
    return True
