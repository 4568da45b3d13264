"""Plain SGD folded into the weight gradient's product (``sgd_in_gemm``): opt-in, the
default step's biases and state bit for bit, its weights to the last bits, the same
bits on every run and thread count, and no effect on other chains."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import fmlp
from fmlp import blas
from fmlp.train import TrainState, make_step
from fmlp.tree import tree_copy

pytestmark = pytest.mark.skipif(not blas.available(), reason="numpy's BLAS was not found")

SIZES = (20, 16, 12, 5)


def _problem(
    make_params: Callable[..., fmlp.MLP], dtype: type[np.floating[Any]], activation: str = "relu"
) -> tuple[fmlp.MLP, np.ndarray, np.ndarray]:
    params = make_params(SIZES, activation, seed=1, dtype=dtype)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((64, SIZES[0])).astype(dtype)
    y = rng.integers(0, SIZES[-1], 64)
    return params, x, y


def _steps(
    params: fmlp.MLP,
    x: np.ndarray,
    y: np.ndarray,
    opt: fmlp.Optimizer[Any],
    *,
    in_gemm: bool,
    n: int = 1,
) -> TrainState[Any]:
    state = fmlp.init_state(tree_copy(params), opt)
    step = make_step(opt, donate=True, sgd_in_gemm=in_gemm)
    for i in range(n):
        rows = slice(16 * (i % 4), 16 * (i % 4) + 16)
        state, _ = step(state, (np.ascontiguousarray(x[rows]), y[rows]))
    return state


OPTIMIZERS: dict[str, Callable[[], fmlp.Optimizer[Any]]] = {
    "sgd": lambda: fmlp.sgd(0.1),
    "sgd scheduled": lambda: fmlp.sgd(fmlp.cosine_decay(0.2, total_steps=10)),
    "sgd l2": lambda: fmlp.chain(fmlp.add_decayed_weights(0.01), fmlp.sgd(0.1)),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("kernels", ["numba", "numpy"])
def test_one_step_is_the_default_step_to_the_last_bits(
    make_params: Callable[..., fmlp.MLP],
    monkeypatch: pytest.MonkeyPatch,
    dtype: type[np.floating[Any]],
    name: str,
    kernels: str,
) -> None:
    if kernels == "numpy":
        monkeypatch.setenv("FMLP_FUSED", "0")
    else:
        monkeypatch.delenv("FMLP_FUSED", raising=False)
    params, x, y = _problem(make_params, dtype)
    opt = OPTIMIZERS[name]()
    fused = _steps(params, x, y, opt, in_gemm=True)
    default = _steps(params, x, y, opt, in_gemm=False)
    eps = np.finfo(dtype).eps
    for f, d in zip(fused.params.layers, default.params.layers, strict=True):
        assert np.array_equal(f.b, d.b)  # the bias by the rule itself
        assert np.allclose(f.w, d.w, rtol=8 * eps, atol=8 * eps)
    assert fmlp.tree_allclose(fused.opt_state, default.opt_state, rtol=0, atol=0)
    assert fused.step == default.step == 1
    # something did change, and the weights are not merely copied
    assert not np.array_equal(fused.params.layers[0].w, params.layers[0].w)


def test_a_fit_with_it_stays_close_to_the_default_and_repeats_bit_for_bit(
    make_params: Callable[..., fmlp.MLP],
) -> None:
    params, x, y = _problem(make_params, np.float32)
    kw: dict[str, Any] = {"epochs": 3, "batch_size": 16, "lr": 0.05, "seed": 2}
    a, ma = fmlp.fit(params, x, y, sgd_in_gemm=True, **kw)
    b, _ = fmlp.fit(params, x, y, sgd_in_gemm=True, **kw)
    c, mc = fmlp.fit(params, x, y, **kw)
    assert fmlp.tree_allclose(a.params, b.params, rtol=0, atol=0)
    assert fmlp.tree_allclose(a.params, c.params, rtol=1e-4, atol=1e-5)
    assert np.allclose(ma.train_loss, mc.train_loss, rtol=1e-4)


def test_the_same_bits_on_one_thread_and_two(make_params: Callable[..., fmlp.MLP]) -> None:
    threadpoolctl = pytest.importorskip("threadpoolctl")
    params, x, y = _problem(make_params, np.float32)
    opt = fmlp.sgd(0.1)
    with threadpoolctl.threadpool_limits(limits=1):
        one = _steps(params, x, y, opt, in_gemm=True, n=4)
    with threadpoolctl.threadpool_limits(limits=2):
        two = _steps(params, x, y, opt, in_gemm=True, n=4)
    assert fmlp.tree_allclose(one.params, two.params, rtol=0, atol=0)


@pytest.mark.parametrize(
    "opt",
    [fmlp.momentum(0.1, 0.9), fmlp.adam(1e-3), fmlp.adamw(1e-3, weight_decay=0.01)],
    ids=["momentum", "adam", "adamw"],
)
def test_other_chains_run_as_without_it(
    make_params: Callable[..., fmlp.MLP], opt: fmlp.Optimizer[Any]
) -> None:
    params, x, y = _problem(make_params, np.float32)
    fused = _steps(params, x, y, opt, in_gemm=True, n=3)
    default = _steps(params, x, y, opt, in_gemm=False, n=3)
    assert fmlp.tree_allclose(fused.params, default.params, rtol=0, atol=0)


def test_tanh_carries_its_own_derivative_down(make_params: Callable[..., fmlp.MLP]) -> None:
    params, x, y = _problem(make_params, np.float64, activation="tanh")
    fused = _steps(params, x, y, fmlp.sgd(0.1), in_gemm=True)
    default = _steps(params, x, y, fmlp.sgd(0.1), in_gemm=False)
    assert fmlp.tree_allclose(fused.params, default.params, rtol=1e-14, atol=1e-14)


def test_it_needs_donated_buffers_and_a_bool() -> None:
    with pytest.raises(ValueError, match="give donate=True too"):
        make_step(fmlp.sgd(0.1), sgd_in_gemm=True)
    with pytest.raises(TypeError, match="sgd_in_gemm must be True or False, got str 'yes'"):
        make_step(fmlp.sgd(0.1), donate=True, sgd_in_gemm="yes")  # type: ignore[arg-type]  # wrong on purpose


def test_the_callers_parameters_are_not_written(make_params: Callable[..., fmlp.MLP]) -> None:
    params, x, y = _problem(make_params, np.float32)
    before = tree_copy(params)
    fmlp.fit(params, x, y, epochs=1, batch_size=16, lr=0.1, sgd_in_gemm=True)
    assert fmlp.tree_allclose(params, before, rtol=0, atol=0)
