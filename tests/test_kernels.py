"""fmlp.kernels: the compiled bias add with ReLU and ReLU's backward give numpy's bits,
special values included; the kernels compile without an on-disk cache where none can be
used."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fmlp import kernels
from fmlp.activations import relu_, relu_backprop_

pytest.importorskip("numba")

SPECIAL = (0.0, -0.0, np.nan, -np.nan, np.inf, -np.inf, 1e-310, -1e-310, 1e-40, -1e-40)


pytestmark = pytest.mark.usefixtures("fused_on")  # the kernels on, whatever the environment says


def array(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any) -> Any:
    """Normal values with about a fifth replaced by zeros of both signs, NaNs, infinities
    and subnormals."""
    with np.errstate(over="ignore"):
        a = (rng.standard_normal(shape) * 3).astype(dtype)
        special = np.asarray(SPECIAL).astype(dtype)
    mask = rng.random(shape) < 0.2
    a[mask] = rng.choice(special, size=int(mask.sum()))
    return a


def same_bits(a: Any, b: Any) -> bool:
    """Bit for bit, except that a NaN may be any NaN: where two NaNs meet in one operation,
    which one comes out (its sign and payload) is not fixed by IEEE 754, and LLVM, like
    numpy's own vectorized loops, may swap the operands of a commutative operation."""
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    return bool((nan_a == nan_b).all()) and a[~nan_a].tobytes() == b[~nan_b].tobytes()


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 70),
    h=st.integers(1, 70),
    dtype=st.sampled_from((np.float32, np.float64)),
    seed=st.integers(0, 2**16),
)
def test_bias_relu_and_its_backward_have_numpys_bits(n: int, h: int, dtype: Any, seed: int) -> None:
    rng = np.random.default_rng(seed)
    z, b, g = array(rng, (n, h), dtype), array(rng, (h,), dtype), array(rng, (n, h), dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        expected = z.copy()
        expected += b
        relu_(expected)
        got = z.copy()
        assert kernels.bias_relu_(got, b)
        assert same_bits(got, expected)
        a = expected
        expected_g = g.copy()
        relu_backprop_(expected_g, a)
        got_g = g.copy()
        assert kernels.relu_backprop_(got_g, a)
        assert same_bits(got_g, expected_g)


def test_arrays_that_do_not_fit_are_left_to_numpy() -> None:
    z = np.ones((4, 3))
    assert not kernels.bias_relu_(z, np.ones(4))  # b of the wrong length
    assert not kernels.bias_relu_(z, np.ones(3, dtype=np.float32))  # mixed dtypes
    assert not kernels.bias_relu_(np.asfortranarray(z), np.ones(3))
    assert not kernels.bias_relu_(z.astype(np.int64), np.ones(3, dtype=np.int64))
    assert not kernels.relu_backprop_(z, np.ones((3, 4)))
    assert not kernels.relu_backprop_(z[:, :2], z[:, :2])
    frozen = np.ones((4, 3))
    frozen.flags.writeable = False
    assert not kernels.bias_relu_(frozen, np.ones(3))
    assert not kernels.relu_backprop_(frozen, z)
    assert kernels.relu_backprop_(z, frozen)  # a is only read
    assert (z == 1).all()


def test_no_cache_folder_means_compiling_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where numba refuses ``cache=True`` (no writable cache folder), the kernels are
    compiled without it instead of failing."""
    import numba

    module = importlib.import_module("fmlp._numba_kernels")
    real = numba.njit
    seen: list[bool] = []

    def njit(**options: Any) -> Any:
        seen.append(bool(options.get("cache")))
        if options.get("cache"):
            raise RuntimeError("cannot cache function: no locator available")
        return real(**options)

    monkeypatch.setattr(numba, "njit", njit)

    def double(x: Any) -> None:
        for i in range(x.size):
            x[i] = x[i] * 2

    k = module._jit(double)
    x = np.arange(3.0)
    k(x)
    assert seen == [True, False]
    np.testing.assert_array_equal(x, [0.0, 2.0, 4.0])


@pytest.mark.slow
def test_the_kernels_compile_and_cache_in_a_fresh_folder(tmp_path: Path) -> None:
    """A process with an empty cache folder compiles and saves; a second one loads the
    cache (numba says which, with NUMBA_DEBUG_CACHE: timing the two would be flaky on a
    busy machine)."""
    code = (
        "import numpy as np; from fmlp import kernels; "
        "z = np.ones((2, 3)); kernels.bias_relu_(z, np.ones(3))"
    )
    env = {"NUMBA_CACHE_DIR": str(tmp_path), "NUMBA_DEBUG_CACHE": "1", "PATH": "/usr/bin:/bin"}
    root = Path(__file__).resolve().parents[1]
    said = []
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        said.append(out.stdout + out.stderr)
    assert "data saved to" in said[0] and "data loaded from" not in said[0]
    assert "data loaded from" in said[1] and "data saved to" not in said[1]
    assert str(tmp_path) in said[1]
