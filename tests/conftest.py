"""Shared fixtures of the core test suite.

Helpers are handed out as fixtures (not imported from this module) so that several
``conftest.py`` files can coexist under ``tests/`` without clashing module names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

import fmlp
from fmlp.types import ActivationName


def _make_params(
    sizes: tuple[int, ...],
    activation: ActivationName = "tanh",
    *,
    seed: int = 0,
    dtype: Any = np.float64,
    bias_scale: float = 0.1,
) -> fmlp.MLP:
    """Glorot weights and small random (non-zero) biases, so bias gradients are exercised
    away from the all-zero point."""
    params = fmlp.init(sizes, scheme="glorot", activation=activation, seed=seed, dtype=np.float64)
    rng = np.random.default_rng((seed, 1))
    layers = tuple(
        fmlp.Dense(
            w=layer.w.astype(dtype),
            b=(bias_scale * rng.standard_normal(layer.b.shape)).astype(dtype),
        )
        for layer in params.layers
    )
    return fmlp.MLP(layers=layers, activation=activation)


def _make_batch(
    n: int, n_features: int, n_classes: int, *, seed: int = 0, dtype: Any = np.float64
) -> tuple[NDArray[Any], NDArray[np.int64]]:
    """Standard-normal inputs (N, D) and uniform integer labels (N,)."""
    rng = np.random.default_rng((seed, 2))
    x = rng.standard_normal((n, n_features)).astype(dtype)
    y = rng.integers(0, n_classes, n).astype(np.int64)
    return x, y


_OPTIMIZERS: dict[str, Callable[[], fmlp.Optimizer[Any]]] = {
    "sgd": lambda: fmlp.sgd(0.05),
    "sgd-cosine": lambda: fmlp.sgd(fmlp.cosine_decay(0.05, total_steps=4)),
    "momentum": lambda: fmlp.momentum(0.05, 0.9),
    "nesterov": lambda: fmlp.momentum(0.05, 0.9, nesterov=True),
    "adam": lambda: fmlp.adam(0.01),
    "adamw": lambda: fmlp.adamw(fmlp.step_decay(0.01, every=2), weight_decay=0.1),
    "sgd-l2": lambda: fmlp.chain(fmlp.add_decayed_weights(0.01), fmlp.sgd(0.05)),
    "nesterov-l2": lambda: fmlp.chain(
        fmlp.add_decayed_weights(0.01), fmlp.momentum(0.05, 0.9, nesterov=True)
    ),
}
"""Every optimizer shape the fast paths must get right: stateless, with a schedule, with a
velocity handed on to the next rule, with two moments, and chains of three."""


def _same_leaves(a: object, b: object) -> bool:
    """The same number of leaves, equal bit for bit."""
    la, lb = fmlp.tree_leaves(a), fmlp.tree_leaves(b)
    return len(la) == len(lb) and all(np.array_equal(x, y) for x, y in zip(la, lb))


def _step_counts(state: object) -> list[int]:
    """The static step counts of an optimizer state, in order."""
    if isinstance(state, tuple):
        return [c for s in state for c in _step_counts(s)]
    count = getattr(state, "count", None)
    return [] if count is None else [count]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test that takes ``optimizer_name`` runs once per name of ``optimizers``."""
    if "optimizer_name" in metafunc.fixturenames:
        metafunc.parametrize("optimizer_name", sorted(_OPTIMIZERS))


@pytest.fixture(scope="session")  # stateless: hypothesis tests may use it
def optimizers() -> dict[str, Callable[[], fmlp.Optimizer[Any]]]:
    """``optimizers[name]()``: a fresh optimizer of each shape (see ``optimizer_name``)."""
    return dict(_OPTIMIZERS)


@pytest.fixture(scope="session")  # stateless: hypothesis tests may use it
def same_leaves() -> Callable[[object, object], bool]:
    """``same_leaves(a, b)``: the same number of leaves, equal bit for bit."""
    return _same_leaves


@pytest.fixture(scope="session")  # stateless: hypothesis tests may use it
def step_counts() -> Callable[[object], list[int]]:
    """``step_counts(opt_state)``: the static step counts of an optimizer state, in order."""
    return _step_counts


@pytest.fixture
def fused_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fused kernels on, whatever the environment of the test run says."""
    from fmlp import kernels

    monkeypatch.delenv(kernels.ENV_VAR, raising=False)


@pytest.fixture
def make_params() -> Callable[..., fmlp.MLP]:
    """``make_params(sizes, activation, *, seed, dtype, bias_scale) -> MLP``."""
    return _make_params


@pytest.fixture
def make_batch() -> Callable[..., tuple[NDArray[Any], NDArray[np.int64]]]:
    """``make_batch(n, n_features, n_classes, *, seed, dtype) -> (x, y)``."""
    return _make_batch


@pytest.fixture(scope="session")
def real_mnist() -> Any:
    """The real MNIST (float32) from the data cache; the test is skipped when the cache
    is absent. Imported lazily so the suite runs before ``fmlp.data`` exists."""
    try:
        from fmlp import data as fdata
    except ImportError as exc:
        pytest.skip(f"fmlp.data is not available: {exc}")
    try:
        return fdata.load("mnist", dtype=np.float32)
    except fdata.DataNotFoundError as exc:
        pytest.skip(
            f"real MNIST not cached ({exc}); fetch it with `python -m fmlp.data fetch mnist`"
        )


@pytest.fixture(scope="session")
def torch() -> Any:
    """The torch module; tests that use it are skipped where torch is not installed."""
    return pytest.importorskip("torch")


@pytest.fixture
def torch_mlp(torch: Any) -> Callable[[fmlp.MLP], Any]:
    """``torch_mlp(params) -> torch.nn.Sequential`` holding the same weights, in the same
    dtype: Linear layers (weight = w.T) with the params' activation between them."""
    modules = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid}

    def build(params: fmlp.MLP) -> Any:
        dtype = torch.float64 if params.dtype == np.float64 else torch.float32
        layers: list[Any] = []
        for i, layer in enumerate(params.layers):
            if i:
                layers.append(modules[params.activation]())
            linear = torch.nn.Linear(layer.fan_in, layer.fan_out, dtype=dtype)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(layer.w.T.copy()))
                linear.bias.copy_(torch.from_numpy(layer.b.copy()))
            layers.append(linear)
        return torch.nn.Sequential(*layers)

    return build
