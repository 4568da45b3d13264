"""The classic assignment's template class ``NN``, as a thin adapter over fmlp's core.

The IFT6135 assignment graded a fixed ``solution.py`` whose ``NN`` class keeps its
parameters in a string-keyed dict and exchanges dicts of arrays (``cache``, ``grads``).
This module offers that interface exactly (``from fmlp.template import NN`` in place of
``from solution import NN``), and every piece of maths in it is the core's:

- ``relu``, ``sigmoid``, ``tanh`` and their derivatives: ``fmlp.activations``;
- ``softmax``: ``fmlp.losses.softmax``;
- ``forward``: ``fmlp.model.forward_with_cache``;
- ``backward``: ``fmlp.model.backprop``, whose ``trace`` reports the per-row gradients
  the template names ``dA{l}`` and ``dZ{l}``;
- ``update``: ``fmlp.optim.sgd`` and ``fmlp.optim.apply_updates``;
- ``initialize_weights``: ``fmlp.params.init_weight``.

The formulas written here are the template's own, on probabilities and one-hot labels,
which no core function takes: ``loss`` on clipped probabilities, and the gradient of
the summed loss with respect to the logits, ``dA{m} = output - labels``, from which
``backprop`` takes over.

Conventions of the template, kept as they were:

- ``hidden_dims`` lists the hidden widths only: the default ``(784, 256)`` means two
  hidden layers of 784 and 256 units between the 784 inputs and the 10 classes.
- Weights ``W{l}`` are (h_{l-1}, h_l) and biases ``b{l}`` are (1, h_l).
- Cache keys: ``Z0`` the input, then ``A{l}`` (pre-activation) and ``Z{l}`` (activation)
  for l = 1 .. m, m = n_hidden + 1, ``Z{m}`` being the softmax output.
- Gradient keys: ``dA{m}, dW{m}, db{m}, dZ{m-1}, dA{m-1}, dW{m-1}, db{m-1}, ..., dW1,
  db1``. ``dA{m} = output - labels``; ``dZ{l}`` and ``dA{l}`` are the per-row gradients
  of the summed loss; ``dW{l}`` and ``db{l}`` are averaged over the rows of the batch.
- Mini-batches are taken in the stored order, without shuffling.

Randomness: by contract with the graders this class is the one place in fmlp that uses
numpy's *global* RNG. ``NN(data=None)`` draws its random data from it, and
``initialize_weights`` calls ``np.random.seed(seed)`` when ``seed`` is not None (with
``seed=None`` it draws from the global RNG as it stands), then draws each layer in order
with ``np.random.uniform(-d, d, shape)`` (Glorot) or ``np.random.normal(0, 1, shape)``
(normal), so a grader that seeds numpy and recomputes the weights gets the same arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, TypeAlias, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fmlp import activations as act
from fmlp.checks import invalid, is_real, nonnegative_int, positive_finite, positive_int
from fmlp.losses import softmax as core_softmax
from fmlp.model import backprop, forward_with_cache
from fmlp.optim import apply_updates, sgd
from fmlp.params import MLP, Dense, init_weight
from fmlp.types import (
    ACTIVATION_NAMES,
    Array,
    FloatArray,
    IntArray,
    SchemeName,
    check_activation,
    is_int,
)

__all__ = ["INIT_METHODS", "NN", "Pair", "load_mnist", "one_hot"]

INIT_METHODS: Final[tuple[str, ...]] = ("glorot", "normal", "zero")
"""The weight initializations the template's ``init_method`` accepts."""

Pair: TypeAlias = tuple[Array, Array]
"""One split as the template keeps it: inputs (N, D) and one-hot labels (N, C)."""

N_RANDOM: Final = 400
"""Samples in each split of the template's random test data (``data=None``)."""


def one_hot(y: ArrayLike, n_classes: int = 10) -> NDArray[np.float64]:
    """``np.eye(n_classes)[y]``: integer labels of any shape to float one-hot rows.

    y (N,) gives (N, n_classes); a scalar label gives (n_classes,).
    """
    labels = np.asarray(y)
    positive_int("n_classes", n_classes)
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(
            f"one_hot needs integer class labels, got dtype {labels.dtype}; "
            f"for labels that are already one-hot, use them as they are"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(
            f"labels must lie in [0, {n_classes}), got values in [{labels.min()}, {labels.max()}]"
        )
    out: NDArray[np.float64] = np.eye(n_classes)[labels]
    return out


def load_mnist() -> tuple[Pair, Pair, Pair]:
    """MNIST as the template's ``(train, valid, test)``: each ``(x (N, 784) float64 in
    [0, 1], one-hot y (N, 10) float64)``, 50,000 / 10,000 / 10,000 samples.

    Reads the fmlp data cache (``fmlp.data.load``); if it is absent the error says how
    to fill it (``python -m fmlp.data fetch mnist``).
    """
    from fmlp import data as fdata

    ds = fdata.load("mnist", dtype=np.float64)

    def pair(split: fdata.Split[np.float64]) -> Pair:
        return split.x, one_hot(split.y, 10)

    return pair(ds.train), pair(ds.valid), pair(ds.test)


class _GlobalRNG:
    """numpy's global RNG through the two ``Generator`` methods ``init_weight`` draws
    with, so the core's schemes draw exactly what ``np.random.uniform(-d, d, shape)``
    and ``np.random.normal(0, 1, shape)`` draw (``normal(0, 1)`` is ``0 + 1 *
    standard_normal``, the same numbers)."""

    def uniform(self, low: float, high: float, size: tuple[int, int]) -> NDArray[np.float64]:
        return np.random.uniform(low, high, size)

    def standard_normal(self, size: tuple[int, int]) -> NDArray[np.float64]:
        return np.random.standard_normal(size)


def _check_pair(pair: object, name: str) -> Pair:
    """A split given in ``data``: (inputs (N, D), one-hot labels (N, C)), N equal."""
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise ValueError(
            f"data's {name} split must be a pair (x (N, D), one-hot y (N, C)), "
            f"got {type(pair).__name__}"
        )
    x, y = np.asarray(pair[0]), np.asarray(pair[1])
    if x.ndim != 2:
        raise ValueError(f"data's {name} inputs must have shape (N, D), got {x.shape}")
    if y.ndim != 2:
        raise ValueError(
            f"data's {name} labels must be one-hot with shape (N, C), got {y.shape}; "
            f"convert integer labels with fmlp.template.one_hot(y)"
        )
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"data's {name} split has {x.shape[0]} inputs but {y.shape[0]} labels")
    return x, y


class NN:
    """The assignment's MLP with softmax output, trained by plain mini-batch SGD.

    ``NN(hidden_dims=(784, 256), epsilon=1e-6, lr=7e-4, batch_size=64, seed=None,
    activation="relu", data=None, init_method="glorot")``. ``data`` is ``(train, valid,
    test)``, each ``(x (N, D), one-hot y (N, C))`` (``load_mnist()`` returns it); without
    it, each split is the template's random test data: 400 uniform inputs of 784 features
    and random one-hot labels, drawn from numpy's global RNG.

    ``forward`` and ``backward`` run the core with the activation named by
    ``activation_str``; overriding ``relu`` (or the others) in a subclass changes what
    those methods return, not the network's forward pass.
    """

    weights: dict[str, Array]
    """``W1, b1, ..., W{m}, b{m}``; set by ``initialize_weights`` (absent before)."""

    def __init__(
        self,
        hidden_dims: Sequence[int] = (784, 256),
        epsilon: float = 1e-6,
        lr: float = 7e-4,
        batch_size: int = 64,
        seed: int | None = None,
        activation: str = "relu",
        data: Sequence[Pair] | None = None,
        init_method: str = "glorot",
    ) -> None:
        try:
            widths = tuple(hidden_dims)
        except TypeError:
            widths = ("not a sequence",)  # type: ignore[assignment]  # reported just below
        if not all(is_int(h) and h > 0 for h in widths):
            raise ValueError(
                "hidden_dims must list the hidden widths as positive integers, "
                f"e.g. (512, 512), got {hidden_dims!r}"
            )
        if not (is_real(epsilon) and 0.0 <= epsilon < 0.5):
            raise invalid("epsilon", epsilon, must="be a number in [0, 0.5)")
        positive_finite("lr", lr)
        positive_int("batch_size", batch_size)
        if seed is not None and not is_int(seed):
            raise invalid("seed", seed, must="be an integer or None")
        check_activation(activation)
        if init_method not in INIT_METHODS:
            raise ValueError(
                f"unknown init_method {init_method!r}: expected one of {', '.join(INIT_METHODS)}"
            )

        self.hidden_dims: Sequence[int] = (
            hidden_dims if isinstance(hidden_dims, (tuple, list)) else widths
        )
        self.n_hidden: int = len(widths)
        self.lr: float = lr
        self.batch_size: int = batch_size
        self.init_method: str = init_method
        self.seed: int | None = seed
        self.activation_str: str = activation
        self.epsilon: float = epsilon

        self.train_logs: dict[str, list[float]] = {
            "train_accuracy": [], "validation_accuracy": [],
            "train_loss": [], "validation_loss": [],
        }  # fmt: skip

        self.train: Pair
        self.valid: Pair
        self.test: Pair
        if data is None:
            # The template's random test data, drawn in its order from the global RNG.
            self.train, self.valid, self.test = (
                (np.random.rand(N_RANDOM, 784), one_hot(np.random.randint(0, 10, N_RANDOM))),
                (np.random.rand(N_RANDOM, 784), one_hot(np.random.randint(0, 10, N_RANDOM))),
                (np.random.rand(N_RANDOM, 784), one_hot(np.random.randint(0, 10, N_RANDOM))),
            )
        else:
            if not isinstance(data, (tuple, list)) or len(data) != 3:
                raise ValueError(
                    "data must be (train, valid, test), each (x (N, D), one-hot y (N, C)), "
                    "as fmlp.template.load_mnist() returns"
                )
            self.train = _check_pair(data[0], "train")
            self.valid = _check_pair(data[1], "valid")
            self.test = _check_pair(data[2], "test")

    # ------------------------------------------------------------------ parameters

    def initialize_weights(self, dims: Sequence[int]) -> None:
        """``self.weights``: ``W{l}`` (h_{l-1}, h_l) drawn by ``init_method``, ``b{l}``
        (1, h_l) zeros, for the widths ``[dims[0], *hidden_dims, dims[1]]``.

        Seeds numpy's global RNG with ``seed`` first when it is not None, as the template.
        """
        if len(dims) != 2 or not all(is_int(d) and d > 0 for d in dims):
            raise ValueError(
                f"dims must be [n_features, n_classes], two positive integers, got {dims!r}"
            )
        if self.init_method not in INIT_METHODS:
            raise ValueError(
                f"unknown init_method {self.init_method!r}: "
                f"expected one of {', '.join(INIT_METHODS)}"
            )
        if self.seed is not None:
            np.random.seed(self.seed)
        rng = cast(
            np.random.Generator, _GlobalRNG()
        )  # duck-typed: init_weight calls only its two methods
        scheme = cast(SchemeName, self.init_method)
        self.weights = {}
        all_dims = [int(dims[0])] + [int(h) for h in self.hidden_dims] + [int(dims[1])]
        for layer_n in range(1, self.n_hidden + 2):
            fan_in, fan_out = all_dims[layer_n - 1], all_dims[layer_n]
            self.weights[f"W{layer_n}"] = init_weight(scheme, fan_in, fan_out, rng, np.float64)
            self.weights[f"b{layer_n}"] = np.zeros((1, fan_out))

    def _params(self) -> MLP:
        """``self.weights`` as the core's MLP: the same W arrays, each b seen as (h,)."""
        weights: dict[str, Array] | None = getattr(self, "weights", None)
        if weights is None:
            raise AttributeError(
                "NN has no weights yet: call initialize_weights([n_features, n_classes]) "
                "or train_loop(n_epochs) first"
            )
        layers = []
        for layer_n in range(1, self.n_hidden + 2):
            w, b = weights.get(f"W{layer_n}"), weights.get(f"b{layer_n}")
            if w is None or b is None:
                raise KeyError(
                    f"weights lack W{layer_n} or b{layer_n}: an NN with {self.n_hidden} "
                    f"hidden layers needs W1, b1, ..., W{self.n_hidden + 1}, b{self.n_hidden + 1}"
                )
            layers.append(Dense(w=np.asarray(w), b=np.asarray(b).reshape(-1)))
        return MLP(layers=tuple(layers), activation=check_activation(self.activation_str))

    # ------------------------------------------------------------------ activations

    def relu(self, x: ArrayLike, grad: bool = False) -> FloatArray:
        """max(x, 0); with ``grad``, its derivative: 1 where x > 0, else 0."""
        z = _as_float(x)
        return act.relu_grad(z) if grad else act.relu(z)

    def sigmoid(self, x: ArrayLike, grad: bool = False) -> FloatArray:
        """1 / (1 + exp(-x)); with ``grad``, s(x) (1 - s(x))."""
        z = _as_float(x)
        return act.sigmoid_grad(z) if grad else act.sigmoid(z)

    def tanh(self, x: ArrayLike, grad: bool = False) -> FloatArray:
        """tanh(x); with ``grad``, 1 - tanh(x)^2."""
        z = _as_float(x)
        return act.tanh_grad(z) if grad else act.tanh(z)

    def activation(self, x: ArrayLike, grad: bool = False) -> FloatArray:
        """The activation named by ``activation_str`` (or its derivative with ``grad``)."""
        if self.activation_str == "relu":
            return self.relu(x, grad)
        if self.activation_str == "sigmoid":
            return self.sigmoid(x, grad)
        if self.activation_str == "tanh":
            return self.tanh(x, grad)
        raise ValueError(
            f"unknown activation {self.activation_str!r}: "
            f"expected one of {', '.join(ACTIVATION_NAMES)}"
        )

    def softmax(self, x: ArrayLike) -> FloatArray:
        """Softmax along the last axis, for (C,) or (N, C); stable for any finite x."""
        z = _as_float(x)
        if z.ndim not in (1, 2):
            raise ValueError(f"softmax takes (C,) or (N, C) inputs, got shape {z.shape}")
        return core_softmax(z)

    # ------------------------------------------------------------------ passes

    def forward(self, x: ArrayLike) -> dict[str, FloatArray]:
        """The cache ``{"Z0": x, "A1": ..., "Z1": ..., ..., "A{m}": logits, "Z{m}": probs}``.

        x: (N, D), or (D,) for one sample (treated as (1, D)); cast to the weights' dtype.
        """
        params = self._params()
        x2 = np.asarray(x, dtype=params.dtype)
        if x2.ndim == 1:
            x2 = x2.reshape(1, -1)
        probs, core_cache = forward_with_cache(params, x2)
        m = self.n_hidden + 1
        cache: dict[str, FloatArray] = {"Z0": x2}
        for layer_n in range(1, m + 1):
            cache[f"A{layer_n}"] = core_cache.pre_activations[layer_n - 1]
            cache[f"Z{layer_n}"] = core_cache.activations[layer_n] if layer_n < m else probs
        return cache

    def backward(self, cache: dict[str, FloatArray], labels: ArrayLike) -> dict[str, FloatArray]:
        """Gradients of the mean cross-entropy from a ``forward`` cache and one-hot labels.

        Keys ``dA{m}, dW{m}, db{m}, dZ{m-1}, dA{m-1}, ..., dW1, db1``; ``dW{l}``, ``db{l}``
        have the shapes of ``W{l}``, ``b{l}`` and are averaged over the batch's N rows.
        """
        params = self._params()
        m = self.n_hidden + 1
        try:
            output = cache[f"Z{m}"]
            acts = tuple(np.asarray(cache[f"Z{layer_n}"]) for layer_n in range(m))
        except KeyError as exc:
            raise KeyError(
                f"cache lacks {exc.args[0]}: pass the dict that forward(x) returned"
            ) from None
        y = np.asarray(labels)
        if y.shape != output.shape:
            raise ValueError(
                f"labels must be one-hot with the output's shape {output.shape}, got {y.shape}; "
                f"convert integer labels with fmlp.template.one_hot(y)"
            )
        n = output.shape[0]
        trace: list[FloatArray] = []
        sums = backprop(params, acts, np.asarray(output - y, dtype=params.dtype), trace=trace)
        grads: dict[str, FloatArray] = {}
        for layer_n in range(m, 0, -1):
            if layer_n < m:
                grads[f"dZ{layer_n}"] = trace[2 * (m - layer_n) - 1]
            grads[f"dA{layer_n}"] = trace[2 * (m - layer_n)]
            g = sums.layers[layer_n - 1]
            grads[f"dW{layer_n}"] = g.w / n
            grads[f"db{layer_n}"] = (g.b / n).reshape(np.shape(self.weights[f"b{layer_n}"]))
        return grads

    def update(self, grads: dict[str, FloatArray]) -> None:
        """Plain SGD on every layer: ``W{l} - lr * dW{l}``, ``b{l} - lr * db{l}``.

        Stores new arrays in ``self.weights`` (arrays taken from it before are unchanged).
        """
        params = self._params()
        try:
            g = MLP(
                layers=tuple(
                    Dense(w=np.asarray(grads[f"dW{n}"]), b=np.asarray(grads[f"db{n}"]).reshape(-1))
                    for n in range(1, self.n_hidden + 2)
                ),
                activation=params.activation,
            )
        except KeyError as exc:
            raise KeyError(
                f"grads lack {exc.args[0]}: pass the dict that backward(cache, labels) returned"
            ) from None
        for mine, theirs in zip(params.layers, g.layers):
            if mine.w.shape != theirs.w.shape or mine.b.shape != theirs.b.shape:
                raise ValueError(
                    f"gradient shapes {theirs.w.shape}, {theirs.b.shape} do not match the weights' "
                    f"{mine.w.shape}, {mine.b.shape}"
                )
        opt = sgd(self.lr)
        updates, _ = opt.update(g, opt.init(params), params)
        new = apply_updates(params, updates)
        for layer_n, layer in enumerate(new.layers, start=1):
            self.weights[f"W{layer_n}"] = layer.w
            self.weights[f"b{layer_n}"] = layer.b.reshape(np.shape(self.weights[f"b{layer_n}"]))

    # ------------------------------------------------------------------ loss and training

    def loss(self, prediction: ArrayLike, labels: ArrayLike) -> float:
        """Mean over the batch of -sum(labels * log(p)), p = prediction clipped to
        [epsilon, 1 - epsilon] as the template does (on a copy: ``prediction`` is not
        modified, where the template clipped it in place)."""
        p = np.clip(_as_float(prediction), self.epsilon, 1.0 - self.epsilon)
        y = np.asarray(labels)
        if y.shape != p.shape:
            raise ValueError(
                f"labels must be one-hot with the prediction's shape {p.shape}, got {y.shape}; "
                f"convert integer labels with fmlp.template.one_hot(y)"
            )
        return float(-np.mean(np.sum(y * np.log(p), axis=-1)))

    def compute_loss_and_accuracy(
        self, X: ArrayLike, y: ArrayLike
    ) -> tuple[float, float, IntArray]:
        """(mean loss, accuracy, predicted classes (N,)) on inputs X and one-hot labels y."""
        one_y = np.asarray(y)
        if one_y.ndim != 2:
            raise ValueError(
                f"y must be one-hot with shape (N, C), got {one_y.shape}; "
                f"convert integer labels with fmlp.template.one_hot(y)"
            )
        cache = self.forward(X)
        output = cache[f"Z{self.n_hidden + 1}"]
        predictions: IntArray = np.argmax(output, axis=1)
        accuracy = float(np.mean(np.argmax(one_y, axis=1) == predictions))
        return self.loss(output, one_y), accuracy, predictions

    def train_loop(self, n_epochs: int) -> dict[str, list[float]]:
        """Initialize the weights, then ``n_epochs`` epochs of mini-batch SGD in the stored
        order (``forward``, ``backward``, ``update`` per batch; the last batch holds the
        remaining rows). After each epoch, append train and validation loss and accuracy
        to ``train_logs``, which is returned."""
        nonnegative_int("n_epochs", n_epochs)
        X_train, y_train = self.train
        y_onehot = y_train
        dims = [X_train.shape[1], y_onehot.shape[1]]
        self.initialize_weights(dims)

        n_batches = int(np.ceil(X_train.shape[0] / self.batch_size))

        for _epoch in range(n_epochs):
            for batch in range(n_batches):
                rows = slice(self.batch_size * batch, self.batch_size * (batch + 1))
                minibatchX = X_train[rows, :]
                minibatchY = y_onehot[rows, :]
                cache = self.forward(minibatchX)
                grads = self.backward(cache, minibatchY)
                self.update(grads)

            X_train, y_train = self.train
            train_loss, train_accuracy, _ = self.compute_loss_and_accuracy(X_train, y_train)
            X_valid, y_valid = self.valid
            valid_loss, valid_accuracy, _ = self.compute_loss_and_accuracy(X_valid, y_valid)

            self.train_logs["train_accuracy"].append(train_accuracy)
            self.train_logs["validation_accuracy"].append(valid_accuracy)
            self.train_logs["train_loss"].append(train_loss)
            self.train_logs["validation_loss"].append(valid_loss)

        return self.train_logs

    def evaluate(self) -> tuple[float, float]:
        """(test loss, test accuracy) of the current weights on ``self.test``."""
        X_test, y_test = self.test
        test_loss, test_accuracy, _ = self.compute_loss_and_accuracy(X_test, y_test)
        return test_loss, test_accuracy


def _as_float(x: ArrayLike) -> FloatArray:
    """x as an array; integer or boolean input becomes float64 (the activations need floats)."""
    a = np.asarray(x)
    if not np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float64)
    return a
