"""The benchmark's training loops behind one interface (``training.make_loop``), fmlp's own
training as the benchmark runs it (``numpy_loops.fit_fmlp``), and torch's thread count
set around a block (``environment.torch_threads_as``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import fmlp
from analyses.benchmark import environment, jax_loop, numpy_loops, spec, training
from fmlp.train import epoch_order

SMALL = (20, 16, 12, 10)


def small_data(n: int, dtype: Any) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rng = np.random.default_rng(0)
    return rng.random((n, SMALL[0])).astype(dtype), rng.integers(0, SMALL[-1], n)


def test_fit_fmlp_evaluates_only_when_given_validation() -> None:
    x, y = small_data(100, np.float64)
    p0 = fmlp.init(SMALL, seed=1, dtype=np.float64)
    timed_state, timed = numpy_loops.fit_fmlp(p0, x, y, epochs=2, batch=32)
    assert np.isnan(timed.train_loss).all() and np.isnan(timed.val_loss).all()
    state, studied = numpy_loops.fit_fmlp(p0, x, y, epochs=2, batch=32, validation=(x[:20], y[:20]))
    assert np.isfinite(studied.train_loss).all() and np.isfinite(studied.val_loss).all()
    assert training.max_abs_diff(timed_state.params, state.params) == 0.0  # same training


@pytest.mark.parametrize("name", ["reference", "torch", "jax"])
def test_make_loop_trains_each_framework_like_fit_fmlp(name: str) -> None:
    if name == "torch":
        pytest.importorskip("torch")
    jax = jax_loop.import_jax()
    if name == "jax" and jax is None:
        pytest.skip("jax is not installed (the optional bench extra)")
    x, y = small_data(300, np.float64)
    p0 = fmlp.init(SMALL, seed=8, dtype=np.float64)
    state, _ = numpy_loops.fit_fmlp(p0, x, y, epochs=2, batch=128)
    with jax_loop.x64_restored(jax), environment.torch_threads_as(1):
        loop = training.make_loop(name, p0, x, y, 128, jax)
        for epoch in range(2):
            loop.epoch(epoch_order(300, spec.SEED, epoch))
    assert training.max_abs_diff(loop.params(), state.params) < 1e-12


def test_make_loop_refuses_fmlp_and_jax_without_jax() -> None:
    x, y = small_data(10, np.float64)
    p0 = fmlp.init(SMALL, seed=0, dtype=np.float64)
    with pytest.raises(ValueError, match="no training loop"):
        training.make_loop("fmlp", p0, x, y, 8, None)
    with pytest.raises(ValueError, match="no training loop"):
        training.make_loop("jax", p0, x, y, 8, None)


def test_torch_threads_as_sets_torch_inside_the_block_only() -> None:
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    with environment.torch_threads_as(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
