"""The template class ``fmlp.template.NN``: the original interface over the functional core.

Oracles: the core (forward, backward, one SGD step on the same weights), central finite
differences of ``loss(forward(x)["Z{m}"], labels)`` in float64, torch autograd for the
per-row gradients ``dA{l}``, ``dZ{l}``, and ``np.random`` recomputations of the seeded
weights and of the random data. A script written against the original template runs
unchanged. The template uses numpy's global RNG by contract, so every test here gets
the global RNG's state restored afterwards.
"""

from __future__ import annotations

import math
import runpy
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

import fmlp
from fmlp.template import INIT_METHODS, NN, Pair, load_mnist, one_hot

ACTIVATIONS = ("relu", "sigmoid", "tanh")
F64 = NDArray[np.float64]


@pytest.fixture(autouse=True)
def _restore_global_rng() -> Iterator[None]:
    state = np.random.get_state()
    yield
    np.random.set_state(state)


def small_data(
    n: int = 13, n_features: int = 8, n_classes: int = 4, *, seed: int = 0
) -> tuple[Pair, Pair, Pair]:
    """Three splits (x (n, D) standard normal, one-hot y (n, C)) from an explicit Generator."""
    rng = np.random.default_rng(seed)

    def split() -> Pair:
        return rng.standard_normal((n, n_features)), one_hot(
            rng.integers(0, n_classes, n), n_classes
        )

    return split(), split(), split()


def small_nn(
    activation: str = "tanh",
    hidden_dims: tuple[int, ...] = (6, 5),
    *,
    n: int = 13,
    n_features: int = 8,
    n_classes: int = 4,
    seed: int = 0,
    bias_scale: float = 0.1,
    **kwargs: Any,
) -> NN:
    """A small NN with initialized weights and small non-zero biases (so bias gradients are
    exercised away from zero)."""
    nn = NN(hidden_dims=hidden_dims, seed=seed, activation=activation,
            data=small_data(n, n_features, n_classes, seed=seed), **kwargs)  # fmt: skip
    nn.initialize_weights([n_features, n_classes])
    rng = np.random.default_rng((seed, 1))
    for key in list(nn.weights):
        if key.startswith("b"):
            nn.weights[key] = bias_scale * rng.standard_normal(nn.weights[key].shape)
    return nn


def core_params(nn: NN) -> fmlp.MLP:
    """The NN's weights as the core's MLP, built independently of the adapter."""
    m = nn.n_hidden + 1
    layers = tuple(
        fmlp.Dense(w=nn.weights[f"W{l}"], b=nn.weights[f"b{l}"].reshape(-1))
        for l in range(1, m + 1)
    )
    return fmlp.MLP(layers=layers, activation=nn.activation_str)  # type: ignore[arg-type]  # a checked name


def expected_grad_keys(m: int) -> list[str]:
    keys = [f"dA{m}", f"dW{m}", f"db{m}"]
    for l in range(m - 1, 0, -1):
        keys += [f"dZ{l}", f"dA{l}", f"dW{l}", f"db{l}"]
    return keys


# ---------------------------------------------------------------------------
# one_hot and the data


def test_one_hot_is_the_template_eye_indexing() -> None:
    y = np.array([2, 0, 9, 9])
    out = one_hot(y)
    assert out.dtype == np.float64 and out.shape == (4, 10)
    assert np.array_equal(out, np.eye(10)[y])
    assert np.array_equal(one_hot(3, 5), np.array([0.0, 0.0, 0.0, 1.0, 0.0]))
    assert np.array_equal(
        one_hot(np.array([1, 0]), n_classes=2), np.array([[0.0, 1.0], [1.0, 0.0]])
    )


def test_one_hot_rejects_bad_labels() -> None:
    with pytest.raises(TypeError, match="integer class labels, got dtype float64"):
        one_hot(np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\), got values in \[-1, 3\]"):
        one_hot(np.array([-1, 3]))
    with pytest.raises(ValueError, match=r"in \[0, 3\), got values in \[0, 3\]"):
        one_hot(np.array([0, 3]), 3)
    with pytest.raises(ValueError, match="n_classes must be a positive integer"):
        one_hot(np.array([0]), 0)


def test_random_data_is_the_templates_draws_from_the_global_rng() -> None:
    np.random.seed(123)
    nn = NN()
    np.random.seed(123)
    expected = [
        (np.random.rand(400, 784), np.eye(10)[np.random.randint(0, 10, 400)]) for _ in range(3)
    ]
    for (x, y), (ex, ey) in zip((nn.train, nn.valid, nn.test), expected):
        assert x.shape == (400, 784) and y.shape == (400, 10)
        assert np.array_equal(x, ex) and np.array_equal(y, ey)


def test_attributes_are_the_templates() -> None:
    data = small_data()
    nn = NN(hidden_dims=(7, 3), epsilon=1e-5, lr=0.5, batch_size=4, seed=9, activation="tanh",
            data=data, init_method="normal")  # fmt: skip
    assert nn.hidden_dims == (7, 3) and nn.n_hidden == 2
    assert (nn.lr, nn.batch_size, nn.seed, nn.activation_str, nn.epsilon, nn.init_method) == (
        0.5, 4, 9, "tanh", 1e-5, "normal",
    )  # fmt: skip
    assert nn.train_logs == {
        "train_accuracy": [],
        "validation_accuracy": [],
        "train_loss": [],
        "validation_loss": [],
    }
    assert nn.train[0] is data[0][0] and nn.valid[1] is data[1][1] and nn.test[0] is data[2][0]
    assert not hasattr(nn, "weights")
    defaults = NN()
    assert (defaults.hidden_dims, defaults.epsilon, defaults.lr, defaults.batch_size) == (
        (784, 256),
        1e-6,
        7e-4,
        64,
    )
    assert (defaults.seed, defaults.activation_str, defaults.init_method) == (
        None,
        "relu",
        "glorot",
    )


# ---------------------------------------------------------------------------
# initialize_weights


@pytest.mark.parametrize("init_method", INIT_METHODS)
def test_seeded_weights_equal_the_np_random_recomputation(init_method: str) -> None:
    nn = NN(
        hidden_dims=(20, 12, 7), seed=42, init_method=init_method, data=small_data(n_features=30)
    )
    np.random.seed(999)  # initialize_weights must reseed, whatever the global state
    nn.initialize_weights([30, 4])
    all_dims = [30, 20, 12, 7, 4]
    np.random.seed(42)
    assert list(nn.weights) == [k for l in range(1, 5) for k in (f"W{l}", f"b{l}")]
    for l in range(1, 5):
        shape = (all_dims[l - 1], all_dims[l])
        if init_method == "glorot":
            d = np.sqrt(6.0 / (shape[0] + shape[1]))
            expected = np.random.uniform(-d, d, shape)
        elif init_method == "normal":
            expected = np.random.normal(0, 1, shape)
        else:
            expected = np.zeros(shape)
        w, b = nn.weights[f"W{l}"], nn.weights[f"b{l}"]
        assert w.dtype == np.float64 and np.array_equal(w, expected)
        assert b.shape == (1, all_dims[l]) and b.dtype == np.float64 and not b.any()
    if init_method != "zero":
        assert np.abs(nn.weights["W1"]).max() > 0


def test_unseeded_weights_come_from_the_global_rng_as_it_stands() -> None:
    nn = NN(hidden_dims=(5,), data=small_data())
    np.random.seed(7)
    nn.initialize_weights([8, 4])
    np.random.seed(7)
    d1, d2 = math.sqrt(6.0 / 13), math.sqrt(6.0 / 9)
    assert np.array_equal(nn.weights["W1"], np.random.uniform(-d1, d1, (8, 5)))
    assert np.array_equal(nn.weights["W2"], np.random.uniform(-d2, d2, (5, 4)))


def test_initialize_weights_rejects_bad_dims() -> None:
    nn = NN(hidden_dims=(5,), data=small_data())
    with pytest.raises(ValueError, match=r"dims must be \[n_features, n_classes\]"):
        nn.initialize_weights([8])
    with pytest.raises(ValueError, match=r"dims must be \[n_features, n_classes\]"):
        nn.initialize_weights([8, 0])


# ---------------------------------------------------------------------------
# activations and softmax


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activations_and_their_derivatives(name: str) -> None:
    nn = NN(activation=name, data=small_data())
    x = np.linspace(-6.0, 6.0, 25).reshape(5, 5)
    x_before = x.copy()
    textbook: dict[str, tuple[F64, F64]] = {
        "relu": (np.maximum(x, 0.0), (x > 0).astype(np.float64)),
        "sigmoid": (1 / (1 + np.exp(-x)), np.exp(-x) / (1 + np.exp(-x)) ** 2),
        "tanh": (np.tanh(x), 1 / np.cosh(x) ** 2),
    }
    value, derivative = textbook[name]
    method = getattr(nn, name)
    for got_value, got_derivative in (
        (method(x), method(x, grad=True)),
        (nn.activation(x), nn.activation(x, grad=True)),
    ):
        assert got_value.shape == x.shape
        np.testing.assert_allclose(got_value, value, rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(got_derivative, derivative, rtol=1e-12, atol=1e-15)
    assert np.array_equal(x, x_before)
    # Integer input is accepted, as numpy code in the template would accept it.
    np.testing.assert_allclose(
        nn.activation(np.array([-2, 0, 3])), method(np.array([-2.0, 0.0, 3.0]))
    )


def test_activation_dispatch_raises_on_an_unknown_name() -> None:
    nn = NN(data=small_data())
    nn.activation_str = "swish"
    with pytest.raises(
        ValueError, match="unknown activation 'swish': expected one of relu, tanh, sigmoid"
    ):
        nn.activation(np.zeros(3))


def test_softmax_one_and_two_dimensional_and_stable() -> None:
    nn = NN(data=small_data())
    rng = np.random.default_rng(0)
    z = rng.standard_normal((6, 10))
    p = nn.softmax(z)
    np.testing.assert_allclose(p, np.exp(z) / np.exp(z).sum(axis=1, keepdims=True), rtol=1e-14)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-15)
    p1 = nn.softmax(z[0])
    assert p1.shape == (10,)
    np.testing.assert_allclose(p1, p[0], rtol=1e-15)
    big = nn.softmax(
        np.array([[1000.0, 1000.0, -1000.0], [-1e300, 0.0, 1e300]])
    )  # no overflow warning
    np.testing.assert_allclose(big, [[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(nn.softmax(z + 123.0), p, rtol=1e-12)
    with pytest.raises(
        ValueError, match=r"softmax takes \(C,\) or \(N, C\) inputs, got shape \(2, 2, 2\)"
    ):
        nn.softmax(np.zeros((2, 2, 2)))


# ---------------------------------------------------------------------------
# forward, backward, update against the core


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_forward_equals_the_core(name: str) -> None:
    nn = small_nn(name, (6, 5, 3))
    x = nn.train[0]
    cache = nn.forward(x)
    m = nn.n_hidden + 1
    assert list(cache) == ["Z0"] + [k for l in range(1, m + 1) for k in (f"A{l}", f"Z{l}")]
    assert cache["Z0"] is x
    probs, core = fmlp.forward_with_cache(core_params(nn), x)
    for l in range(1, m + 1):
        assert np.array_equal(cache[f"A{l}"], core.pre_activations[l - 1])
    for l in range(1, m):
        assert np.array_equal(cache[f"Z{l}"], core.activations[l])
    assert np.array_equal(cache[f"Z{m}"], probs)
    np.testing.assert_allclose(cache[f"Z{m}"].sum(axis=1), 1.0, rtol=1e-14)
    # One sample as a 1-D vector is one row.
    one = nn.forward(x[0])
    assert one[f"Z{m}"].shape == (1, 4)
    np.testing.assert_allclose(one[f"Z{m}"], probs[:1], rtol=1e-14)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_backward_equals_the_core(name: str) -> None:
    nn = small_nn(name, (6, 5, 3))
    x, y = nn.train
    cache = nn.forward(x)
    grads = nn.backward(cache, y)
    m = nn.n_hidden + 1
    assert list(grads) == expected_grad_keys(m)
    params = core_params(nn)
    _, core_cache = fmlp.forward_with_cache(params, x)
    core_grads = fmlp.backward(params, core_cache, y.argmax(axis=1))
    _, core_grads2 = fmlp.grad(params, x, y.argmax(axis=1))
    for l in range(1, m + 1):
        for core_g in (core_grads, core_grads2):
            np.testing.assert_allclose(
                grads[f"dW{l}"], core_g.layers[l - 1].w, rtol=1e-12, atol=1e-17
            )
            np.testing.assert_allclose(
                grads[f"db{l}"][0], core_g.layers[l - 1].b, rtol=1e-12, atol=1e-17
            )
        assert grads[f"dW{l}"].shape == nn.weights[f"W{l}"].shape
        assert grads[f"db{l}"].shape == nn.weights[f"b{l}"].shape
    assert np.array_equal(grads[f"dA{m}"], cache[f"Z{m}"] - y)
    # The chain rule between the reported per-row gradients and the averaged ones.
    n = x.shape[0]
    for l in range(1, m + 1):
        np.testing.assert_allclose(
            grads[f"dW{l}"], cache[f"Z{l - 1}"].T @ grads[f"dA{l}"] / n, rtol=1e-12, atol=1e-17
        )
        np.testing.assert_allclose(
            grads[f"db{l}"], grads[f"dA{l}"].mean(axis=0, keepdims=True), rtol=1e-12, atol=1e-17
        )
    for l in range(1, m):
        np.testing.assert_allclose(
            grads[f"dZ{l}"], grads[f"dA{l + 1}"] @ nn.weights[f"W{l + 1}"].T, rtol=1e-12, atol=1e-17
        )
        np.testing.assert_allclose(
            grads[f"dA{l}"],
            grads[f"dZ{l}"] * nn.activation(cache[f"A{l}"], grad=True),
            rtol=1e-12,
            atol=1e-17,
        )


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_per_row_gradients_equal_torch_autograd(name: str) -> None:
    torch = pytest.importorskip("torch")
    nn = small_nn(name, (6, 5, 3))
    x, y = nn.train
    m = nn.n_hidden + 1
    grads = nn.backward(nn.forward(x), y)

    weights = {
        k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in nn.weights.items()
    }
    f = {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh}[name]
    z = torch.tensor(x, dtype=torch.float64)
    pre, post = {}, {}
    for l in range(1, m + 1):
        a = z @ weights[f"W{l}"] + weights[f"b{l}"]
        a.retain_grad()
        pre[l] = a
        if l < m:
            z = f(a)
            z.retain_grad()
            post[l] = z
    labels = torch.tensor(y, dtype=torch.float64)
    summed = -(labels * torch.log_softmax(pre[m], dim=1)).sum()
    (summed / x.shape[0]).backward()
    n = x.shape[0]
    for l in range(1, m + 1):
        # The reported dA, dZ are per-row gradients of the summed loss: n times torch's of the mean.
        np.testing.assert_allclose(grads[f"dA{l}"], n * pre[l].grad.numpy(), rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(
            grads[f"dW{l}"], weights[f"W{l}"].grad.numpy(), rtol=1e-10, atol=1e-15
        )
        np.testing.assert_allclose(
            grads[f"db{l}"], weights[f"b{l}"].grad.numpy(), rtol=1e-10, atol=1e-15
        )
    for l in range(1, m):
        np.testing.assert_allclose(
            grads[f"dZ{l}"], n * post[l].grad.numpy(), rtol=1e-10, atol=1e-14
        )


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_backward_matches_finite_differences_of_the_loss(name: str) -> None:
    nn = small_nn(name, (6, 5))
    x, y = nn.train
    m = nn.n_hidden + 1
    grads = nn.backward(nn.forward(x), y)
    base = {k: v.copy() for k, v in nn.weights.items()}

    def loss_at(key: str, delta: F64) -> float:
        nn.weights = {**base, key: base[key] + delta}
        return nn.loss(nn.forward(x)[f"Z{m}"], y)

    h = 1e-6
    rng = np.random.default_rng(5)
    for l in range(1, m + 1):
        for kind in ("W", "b"):
            key = f"{kind}{l}"
            g = grads[f"d{kind}{l}"]
            # Along a random direction ...
            v = rng.standard_normal(base[key].shape)
            fd = (loss_at(key, h * v) - loss_at(key, -h * v)) / (2 * h)
            assert fd == pytest.approx(float(np.sum(g * v)), rel=1e-6, abs=1e-9)
            # ... and entry by entry for the first few entries, as the assignment's study does.
            for i in range(min(4, g.size)):
                flat = np.zeros(g.size)
                flat[i] = h
                e = flat.reshape(g.shape)
                fd_i = (loss_at(key, e) - loss_at(key, -e)) / (2 * h)
                assert fd_i == pytest.approx(float(g.flat[i]), rel=1e-5, abs=1e-9)
    nn.weights = base


def test_one_update_equals_the_core_sgd_step() -> None:
    nn = small_nn("relu", (6, 5), lr=0.3)
    x, y = nn.train
    before = {k: v.copy() for k, v in nn.weights.items()}
    held = dict(nn.weights)
    params = core_params(nn)
    grads = nn.backward(nn.forward(x), y)
    nn.update(grads)
    _, core_grads = fmlp.grad(params, x, y.argmax(axis=1))
    opt = fmlp.sgd(0.3)
    updates, _ = opt.update(core_grads, opt.init(params), params)
    stepped = fmlp.apply_updates(params, updates)
    for l in range(1, nn.n_hidden + 2):
        w, b = nn.weights[f"W{l}"], nn.weights[f"b{l}"]
        assert w.shape == before[f"W{l}"].shape and b.shape == before[f"b{l}"].shape
        # Exactly the template's rule on the template's gradients ...
        assert np.array_equal(w, before[f"W{l}"] - 0.3 * grads[f"dW{l}"])
        assert np.array_equal(b, before[f"b{l}"] - 0.3 * grads[f"db{l}"])
        # ... and the core's step on the core's gradients.
        np.testing.assert_allclose(w, stepped.layers[l - 1].w, rtol=1e-12, atol=1e-16)
        np.testing.assert_allclose(b[0], stepped.layers[l - 1].b, rtol=1e-12, atol=1e-16)
        assert not np.array_equal(w, before[f"W{l}"])
    for k, v in held.items():  # arrays taken out of nn.weights before the update are unchanged
        assert np.array_equal(v, before[k])


# ---------------------------------------------------------------------------
# loss, accuracy, evaluation


def test_loss_equals_the_core_cross_entropy_and_clips_like_the_template() -> None:
    nn = small_nn("tanh", (6, 5))
    x, y = nn.train
    probs = nn.forward(x)[f"Z{nn.n_hidden + 1}"]
    assert nn.loss(probs, y) == pytest.approx(
        fmlp.loss(core_params(nn), x, y.argmax(axis=1)), rel=1e-12
    )
    # Clipping: a zero probability on the true class costs -log(epsilon), not inf.
    p = np.array([[0.0, 1.0], [0.5, 0.5]])
    labels = np.array([[1.0, 0.0], [1.0, 0.0]])
    p_before = p.copy()
    assert nn.loss(p, labels) == pytest.approx((-math.log(1e-6) - math.log(0.5)) / 2, rel=1e-15)
    assert np.array_equal(p, p_before)  # clipped on a copy
    with pytest.raises(ValueError, match="labels must be one-hot with the prediction's shape"):
        nn.loss(p, np.array([0, 0]))


def test_compute_loss_and_accuracy_and_evaluate() -> None:
    nn = small_nn("relu", (6, 5), n=40)
    x, y = nn.valid
    loss, accuracy, predictions = nn.compute_loss_and_accuracy(x, y)
    params = core_params(nn)
    assert np.array_equal(predictions, fmlp.predict(params, x))
    assert accuracy == pytest.approx(float(np.mean(predictions == y.argmax(axis=1))))
    assert loss == pytest.approx(fmlp.loss(params, x, y.argmax(axis=1)), rel=1e-12)
    assert type(loss) is float
    assert type(accuracy) is float
    test_loss, test_accuracy = nn.evaluate()
    assert (test_loss, test_accuracy) == nn.compute_loss_and_accuracy(*nn.test)[:2]
    assert test_loss == pytest.approx(
        fmlp.evaluate(params, nn.test[0], nn.test[1].argmax(axis=1)).loss, rel=1e-12
    )


# ---------------------------------------------------------------------------
# train_loop


def test_train_loop_on_the_templates_random_data_returns_four_logs_of_length_two() -> None:
    np.random.seed(0)
    nn = NN(seed=0)  # the template's defaults: hidden (784, 256), lr 7e-4, batches of 64
    logs = nn.train_loop(2)
    assert logs is nn.train_logs
    assert set(logs) == {"train_accuracy", "validation_accuracy", "train_loss", "validation_loss"}
    for key, values in logs.items():
        assert len(values) == 2, key
        assert all(type(v) is float for v in values), key
        assert all(math.isfinite(v) for v in values), key
    assert all(0.0 <= a <= 1.0 for a in logs["train_accuracy"] + logs["validation_accuracy"])
    assert logs["train_loss"][1] < logs["train_loss"][0]  # 400 samples, 784 + 256 units: it fits


def test_train_loop_uses_the_templates_batches_and_methods() -> None:
    seen: list[int] = []

    class Recording(NN):
        def backward(self, cache: dict[str, Any], labels: Any) -> dict[str, Any]:
            seen.append(labels.shape[0])
            grads = super().backward(cache, labels)
            for l in range(1, self.n_hidden + 2):
                assert grads[f"dW{l}"].shape == self.weights[f"W{l}"].shape
                assert grads[f"db{l}"].shape == self.weights[f"b{l}"].shape
            return grads

    nn = Recording(hidden_dims=(6,), batch_size=5, seed=1, lr=0.1, data=small_data(n=13))
    nn.train_loop(2)
    assert seen == [5, 5, 3, 5, 5, 3]


def test_last_partial_batch_gradients_are_averaged_over_its_rows() -> None:
    nn = small_nn("sigmoid", (6, 5), n=13)
    x, y = nn.train[0][10:], nn.train[1][10:]  # the last batch of 5: 3 rows
    grads = nn.backward(nn.forward(x), y)
    _, core_grads = fmlp.grad(core_params(nn), x, y.argmax(axis=1))
    for l in range(1, nn.n_hidden + 2):
        assert grads[f"dW{l}"].shape == nn.weights[f"W{l}"].shape
        assert grads[f"db{l}"].shape == nn.weights[f"b{l}"].shape
        np.testing.assert_allclose(
            grads[f"dW{l}"], core_grads.layers[l - 1].w, rtol=1e-12, atol=1e-17
        )


def test_train_loop_is_deterministic_and_equals_the_core_without_shuffling() -> None:
    data = small_data(n=30)
    runs = [NN(hidden_dims=(6, 5), seed=3, lr=0.2, batch_size=8, data=data) for _ in range(2)]
    logs = [nn.train_loop(3) for nn in runs]
    assert logs[0] == logs[1]
    for k in runs[0].weights:
        assert np.array_equal(runs[0].weights[k], runs[1].weights[k])
    # The core's fit in the stored order from the same initial weights lands on the same weights.
    start = NN(hidden_dims=(6, 5), seed=3, data=data)
    start.initialize_weights([8, 4])
    x, y = data[0]
    validation = (data[1][0], data[1][1].argmax(axis=1))
    state, metrics = fmlp.fit(core_params(start), x, y.argmax(axis=1), epochs=3, batch_size=8,
                              lr=0.2, shuffle=False, validation=validation)  # fmt: skip
    for l, layer in enumerate(state.params.layers, start=1):
        np.testing.assert_allclose(runs[0].weights[f"W{l}"], layer.w, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(logs[0]["validation_accuracy"], metrics.val_accuracy)
    np.testing.assert_allclose(logs[0]["train_loss"], metrics.train_loss, rtol=1e-9)


@settings(max_examples=25, deadline=None)
@given(
    hidden=st.lists(st.integers(1, 6), min_size=0, max_size=3),
    n=st.integers(1, 9),
    features=st.integers(1, 5),
    classes=st.integers(2, 5),
    name=st.sampled_from(ACTIVATIONS),
)
def test_shapes_for_any_depth_and_batch(
    hidden: list[int], n: int, features: int, classes: int, name: str
) -> None:
    nn = NN(
        hidden_dims=tuple(hidden), seed=0, activation=name, data=small_data(n, features, classes)
    )
    nn.initialize_weights([features, classes])
    m = len(hidden) + 1
    cache = nn.forward(nn.train[0])
    widths = [features, *hidden, classes]
    for l in range(1, m + 1):
        assert cache[f"A{l}"].shape == cache[f"Z{l}"].shape == (n, widths[l])
    grads = nn.backward(cache, nn.train[1])
    assert list(grads) == expected_grad_keys(m)
    for l in range(1, m + 1):
        assert grads[f"dW{l}"].shape == nn.weights[f"W{l}"].shape == (widths[l - 1], widths[l])
        assert grads[f"db{l}"].shape == nn.weights[f"b{l}"].shape == (1, widths[l])
        assert grads[f"dA{l}"].shape == (n, widths[l])
    for l in range(1, m):
        assert grads[f"dZ{l}"].shape == (n, widths[l])
    nn.update(grads)


# ---------------------------------------------------------------------------
# Bad input


def test_unknown_activation_or_init_method_is_a_clear_error() -> None:
    with pytest.raises(
        ValueError, match="unknown activation 'softplus': expected one of relu, tanh, sigmoid"
    ):
        NN(activation="softplus", data=small_data())
    with pytest.raises(
        ValueError, match="unknown init_method 'he': expected one of glorot, normal, zero"
    ):
        NN(init_method="he", data=small_data())
    nn = small_nn()
    nn.init_method = "uniform"
    with pytest.raises(ValueError, match="unknown init_method 'uniform'"):
        nn.initialize_weights([8, 4])
    nn.activation_str = "elu"
    with pytest.raises(ValueError, match="unknown activation 'elu'"):
        nn.forward(nn.train[0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hidden_dims": (5, 0)}, "hidden_dims must list the hidden widths as positive integers"),
        ({"hidden_dims": 5}, "hidden_dims must list the hidden widths"),
        ({"lr": 0.0}, "lr must be a positive finite number"),
        ({"lr": float("nan")}, "lr must be a positive finite number"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"epsilon": 0.7}, r"epsilon must be a number in \[0, 0.5\)"),
        ({"seed": 1.5}, "seed must be an integer or None"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        NN(data=small_data(), **kwargs)


def test_bad_data_is_a_clear_error() -> None:
    (x, y), valid, test = small_data()
    with pytest.raises(ValueError, match=r"data must be \(train, valid, test\)"):
        NN(data=((x, y), valid))
    with pytest.raises(
        ValueError, match=r"train labels must be one-hot with shape \(N, C\), got \(13,\); convert"
    ):
        NN(data=((x, y.argmax(axis=1)), valid, test))
    with pytest.raises(ValueError, match="valid split has 13 inputs but 12 labels"):
        NN(data=((x, y), (valid[0], valid[1][:12]), test))
    with pytest.raises(ValueError, match=r"test inputs must have shape \(N, D\)"):
        NN(data=((x, y), valid, (test[0][0], test[1])))


def test_misuse_of_the_methods_is_a_clear_error() -> None:
    nn = NN(hidden_dims=(6,), data=small_data())
    with pytest.raises(
        AttributeError,
        match=r"no weights yet: call initialize_weights\(\[n_features, n_classes\]\)",
    ):
        nn.forward(nn.train[0])
    nn.initialize_weights([8, 4])
    x, y = nn.train
    cache = nn.forward(x)
    with pytest.raises(
        ValueError, match=r"labels must be one-hot with the output's shape \(13, 4\), got \(13,\)"
    ):
        nn.backward(cache, y.argmax(axis=1))
    with pytest.raises(KeyError, match="cache lacks Z2"):
        nn.backward({"Z0": x}, y)
    grads = nn.backward(cache, y)
    with pytest.raises(KeyError, match="grads lack dW2"):
        nn.update({k: v for k, v in grads.items() if k != "dW2"})
    with pytest.raises(ValueError, match="does not match the first layer, which takes 8"):
        nn.forward(x[:, :5])
    with pytest.raises(ValueError, match=r"y must be one-hot with shape \(N, C\)"):
        nn.compute_loss_and_accuracy(x, y.argmax(axis=1))
    with pytest.raises(ValueError, match="n_epochs must be a non-negative integer"):
        nn.train_loop(-1)


# ---------------------------------------------------------------------------
# A script written against the original template runs unchanged

TEMPLATE_SCRIPT = """
import numpy as np
from fmlp.template import NN  # was: from solution import NN


def check_initialize_weights():
    np.random.seed(0)
    nn = NN(hidden_dims=(32, 16), seed=1)
    X_train, y_train = nn.train
    nn.initialize_weights([X_train.shape[1], y_train.shape[1]])
    assert sorted(nn.weights) == ["W1", "W2", "W3", "b1", "b2", "b3"]
    assert nn.weights["W1"].shape == (784, 32) and nn.weights["b1"].shape == (1, 32)
    assert nn.weights["W3"].shape == (16, 10) and np.all(nn.weights["b3"] == 0)
    np.random.seed(1)
    d = np.sqrt(6 / (784 + 32))
    assert np.allclose(nn.weights["W1"], np.random.uniform(-d, d, (784, 32)))


def check_activations():
    nn = NN(seed=0)
    x = np.random.randn(4, 7)
    assert np.allclose(nn.relu(x), np.maximum(0, x))
    assert np.allclose(nn.relu(x, grad=True), x > 0)
    s = 1 / (1 + np.exp(-x))
    assert np.allclose(nn.sigmoid(x), s)
    assert np.allclose(nn.sigmoid(x, grad=True), s * (1 - s))
    assert np.allclose(nn.tanh(x), np.tanh(x))
    assert np.allclose(nn.tanh(x, grad=True), 1 - np.tanh(x) ** 2)
    for name, f in (("relu", nn.relu), ("sigmoid", nn.sigmoid), ("tanh", nn.tanh)):
        nn.activation_str = name
        assert np.allclose(nn.activation(x), f(x))
        assert np.allclose(nn.activation(x, grad=True), f(x, grad=True))
    nn.activation_str = "invalid"
    try:
        nn.activation(x)
    except Exception:
        pass
    else:
        raise AssertionError("an unknown activation must raise")
    y = nn.softmax(x)
    assert np.allclose(y.sum(axis=1), 1) and np.allclose(nn.softmax(x[0]).sum(), 1)
    assert np.allclose(nn.softmax(x + 1000), y)


def check_forward_backward_update_loss():
    nn = NN(hidden_dims=(20, 10), seed=2, lr=0.05)
    X, y = nn.train
    nn.initialize_weights([X.shape[1], y.shape[1]])
    cache = nn.forward(X[:16])
    m = nn.n_hidden + 1
    assert all(f"A{i}" in cache and f"Z{i}" in cache for i in range(1, m + 1))
    assert np.allclose(cache["Z0"], X[:16])
    assert np.allclose(cache[f"Z{m}"].sum(axis=1), 1)
    grads = nn.backward(cache, y[:16])
    for key in ("dA3", "dW3", "db3", "dZ2", "dA2", "dW2", "db2", "dZ1", "dA1", "dW1", "db1"):
        assert key in grads, key
    assert np.allclose(grads["dA3"], cache["Z3"] - y[:16])
    assert np.allclose(grads["dW3"], cache["Z2"].T @ grads["dA3"] / 16)
    old = {k: v.copy() for k, v in nn.weights.items()}
    nn.update(grads)
    for i in range(1, m + 1):
        assert np.allclose(nn.weights[f"W{i}"], old[f"W{i}"] - nn.lr * grads[f"dW{i}"])
        assert np.allclose(nn.weights[f"b{i}"], old[f"b{i}"] - nn.lr * grads[f"db{i}"])
    loss = nn.loss(cache[f"Z{m}"], y[:16])
    assert np.isscalar(loss) and loss > 0


def check_training():
    nn = NN(hidden_dims=(64, 32), seed=0, lr=0.01, batch_size=100)
    logs = nn.train_loop(2)
    assert all(len(v) == 2 for v in logs.values())
    test_loss, test_accuracy = nn.evaluate()
    loss, accuracy, predictions = nn.compute_loss_and_accuracy(*nn.valid)
    assert predictions.shape == (400,) and 0 <= test_accuracy <= 1 and test_loss > 0


class InitStudy(NN):  # "create another class object that inherits from the NN template"
    def __init__(self, init_method, **kwargs):
        super().__init__(**kwargs)
        self.init_method = init_method


for method in ("zero", "normal", "glorot"):
    InitStudy(method, hidden_dims=(8,), seed=0).train_loop(1)

check_initialize_weights()
check_activations()
check_forward_backward_update_loss()
check_training()
RESULT = "ok"
"""


def test_a_script_written_against_the_original_template_runs_unchanged(tmp_path: Path) -> None:
    script = tmp_path / "grader.py"
    script.write_text(textwrap.dedent(TEMPLATE_SCRIPT))
    namespace = runpy.run_path(str(script), run_name="__main__")
    assert namespace["RESULT"] == "ok"


# ---------------------------------------------------------------------------
# Real MNIST


@pytest.mark.real_data
@pytest.mark.slow
def test_one_epoch_on_real_mnist() -> None:
    from fmlp import data as fdata

    try:
        data = load_mnist()
    except fdata.DataNotFoundError as exc:
        pytest.skip(
            f"real MNIST not cached ({exc}); fetch it with `python -m fmlp.data fetch mnist`"
        )
    (xt, yt), (xv, yv), (xs, ys) = data
    assert xt.shape == (50_000, 784) and yt.shape == (50_000, 10)
    assert xv.shape == xs.shape == (10_000, 784) and yv.shape == ys.shape == (10_000, 10)
    assert xt.dtype == yt.dtype == np.float64 and xt.min() >= 0.0 and xt.max() < 1.0
    assert np.array_equal(yt.sum(axis=1), np.ones(50_000))
    nn = NN(hidden_dims=(512, 512), lr=0.1, batch_size=64, data=data, seed=0)
    logs = nn.train_loop(1)
    assert all(len(v) == 1 for v in logs.values())
    # One epoch in the template's fixed batch order (no shuffling) from seed 0 measured
    # 94.80% here, the same as fmlp.fit(shuffle=False) from the same weights; shuffled
    # batches (fmlp.fit's default, held above 95% in tests/test_train.py) measured 95.43%.
    assert logs["validation_accuracy"][0] > 0.94
    test_loss, test_accuracy = nn.evaluate()
    assert test_accuracy > 0.94 and test_loss < 0.25
