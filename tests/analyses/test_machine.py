"""The machine record names numpy's BLAS, not the scipy OpenBLAS that numba loads."""

from __future__ import annotations

from analyses import machine


def test_scipys_blas_is_told_apart_from_numpys() -> None:
    site = "/venv/lib/python3.11/site-packages"
    assert machine._is_scipys(f"{site}/scipy.libs/libscipy_openblas-6cdc3b4a.so")
    assert machine._is_scipys(f"{site}/scipy_openblas32/lib/libscipy_openblas.so")
    assert not machine._is_scipys(f"{site}/numpy.libs/libscipy_openblas64_-32a4b2a6.so")
    assert not machine._is_scipys("/usr/lib/x86_64-linux-gnu/libopenblas.so.0")
    assert not machine._is_scipys(None)


def test_the_record_is_the_same_before_and_after_numba_starts() -> None:
    before = machine.machine_info().blas
    from fmlp import kernels

    if kernels.numba_available():  # starting numba's compiler loads scipy's BLAS, if any
        import numpy as np

        kernels.bias_relu_(np.zeros((1, 1)), np.zeros(1))
    assert machine.machine_info().blas == before
