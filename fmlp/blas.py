"""numpy's own BLAS, asked for the one product numpy has no function for: ``C <- alpha
A^T B + beta C`` in place (BLAS's ``gemm`` with its ``alpha`` and ``beta``).

That product is a plain SGD step fused into the weight gradient's matrix product:
``W <- (1 - lr wd) W - lr A^T dZ`` writes W once and no gradient buffer at all. It is
the same sum of products numpy's ``A.T @ dZ`` computes, in the same library, with the
same thread pool (so ``threadpoolctl`` limits hold), but the gradient is not rounded
before it is scaled and added: the result may differ from the unfused rule
``W + (-lr) * (A.T @ dZ)`` in the last bit of some elements. It is therefore opt-in
(``make_step(..., sgd_in_gemm=True)``, ``fit(..., sgd_in_gemm=True)``), never the
default path.

The library is found beside numpy (the OpenBLAS its wheels bundle, already loaded by
numpy). It is used only after a check at first use: ``A^T B`` through this function with
``alpha = 1, beta = 0`` must give the bits of numpy's ``A.T @ B``, which holds only when
both reach the same BLAS. Without it (another build of numpy, another BLAS), ``gemm``
says so (``available()`` is False) and callers keep the numpy path.
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray

DType = type[np.float32] | type[np.float64]

__all__ = ["available", "gemm_at_b", "library"]

ROW_MAJOR: Final = 101
NO_TRANS: Final = 111
TRANS: Final = 112

# (symbol of sgemm, of dgemm, 64-bit integers): OpenBLAS as numpy's wheels bundle it
# (scipy-openblas, 64-bit integers with a prefix and a suffix), then plainer builds
SYMBOLS: Final = (
    ("scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_", True),
    ("cblas_sgemm64_", "cblas_dgemm64_", True),
    ("scipy_cblas_sgemm", "scipy_cblas_dgemm", False),
    ("cblas_sgemm", "cblas_dgemm", False),
)

Gemm = Callable[..., None]


def _candidates() -> list[Path]:
    """The shared libraries numpy's wheels bundle (Linux ``numpy.libs``, macOS
    ``numpy/.dylibs``, Windows ``numpy.libs``), BLAS first."""
    root = Path(np.__file__).resolve().parent
    found: list[Path] = []
    for folder in (root.parent / "numpy.libs", root / ".dylibs"):
        if folder.is_dir():
            found += sorted(p for p in folder.iterdir() if "blas" in p.name.lower())
    return found


@functools.cache
def _gemms() -> tuple[str, Gemm, Gemm] | None:
    """(library path, sgemm, dgemm) of numpy's BLAS, checked, or None."""
    if os.environ.get("FMLP_BLAS_GEMM", "1") == "0":
        return None
    for path in _candidates():
        try:
            lib = ctypes.CDLL(str(path))
        except OSError:
            continue
        for s_name, d_name, ilp64 in SYMBOLS:
            s_fn = getattr(lib, s_name, None)
            d_fn = getattr(lib, d_name, None)
            if s_fn is None or d_fn is None:
                continue
            integer = ctypes.c_int64 if ilp64 else ctypes.c_int
            for fn, real in ((s_fn, ctypes.c_float), (d_fn, ctypes.c_double)):
                fn.restype = None
                fn.argtypes = [
                    ctypes.c_int,
                    ctypes.c_int,
                    ctypes.c_int,
                    integer,
                    integer,
                    integer,
                    real,
                    ctypes.c_void_p,
                    integer,
                    ctypes.c_void_p,
                    integer,
                    real,
                    ctypes.c_void_p,
                    integer,
                ]
            if _same_as_numpy(s_fn, np.float32) and _same_as_numpy(d_fn, np.float64):
                return str(path), s_fn, d_fn
    return None


def _call(
    fn: Gemm,
    c: NDArray[np.generic],
    a: NDArray[np.generic],
    b: NDArray[np.generic],
    alpha: float,
    beta: float,
) -> None:
    n, m = a.shape
    k = b.shape[1]
    fn(
        ROW_MAJOR,
        TRANS,
        NO_TRANS,
        m,
        k,
        n,
        alpha,
        a.ctypes.data,
        m,
        b.ctypes.data,
        k,
        beta,
        c.ctypes.data,
        k,
    )


def _same_as_numpy(fn: Gemm, dtype: DType) -> bool:
    """Whether ``fn`` gives numpy's bits for ``A.T @ B`` on shapes like a layer's."""
    rng = np.random.default_rng(0)
    for n, m, k in ((64, 33, 17), (128, 200, 70)):
        a = np.asarray(rng.standard_normal((n, m)), dtype=dtype)
        b = np.asarray(rng.standard_normal((n, k)), dtype=dtype)
        c = np.full((m, k), np.nan, dtype=dtype)
        _call(fn, c, a, b, 1.0, 0.0)
        if not np.array_equal(c, a.T.dot(b)):
            return False
    return True


def available() -> bool:
    """Whether numpy's BLAS was found and checked (see the module's docstring)."""
    return _gemms() is not None


def library() -> str | None:
    """The path of the library ``gemm_at_b`` calls, or None."""
    found = _gemms()
    return None if found is None else found[0]


def gemm_at_b(
    c: NDArray[np.generic],
    a: NDArray[np.generic],
    b: NDArray[np.generic],
    *,
    alpha: float,
    beta: float,
) -> bool:
    """``c <- alpha * a.T @ b + beta * c`` in place, for C-contiguous ``a`` (N, M), ``b``
    (N, K) and ``c`` (M, K) of one float dtype, ``c`` writeable and apart from ``a`` and
    ``b``. Returns False, having written nothing, when numpy's BLAS is not available or
    the arrays do not fit."""
    found = _gemms()
    if found is None:
        return False
    dtype = c.dtype
    if dtype == np.float32:
        fn = found[1]
    elif dtype == np.float64:
        fn = found[2]
    else:
        return False
    if not (
        a.ndim == 2
        and b.ndim == 2
        and c.ndim == 2
        and a.dtype == dtype
        and b.dtype == dtype
        and a.shape[0] == b.shape[0]
        and c.shape == (a.shape[1], b.shape[1])
        and a.flags.c_contiguous
        and b.flags.c_contiguous
        and c.flags.c_contiguous
        and c.flags.writeable
        and not np.shares_memory(c, a)
        and not np.shares_memory(c, b)
    ):
        return False
    if a.shape[0] == 0 or c.size == 0:
        return False
    _call(fn, c, a, b, alpha, beta)
    return True
