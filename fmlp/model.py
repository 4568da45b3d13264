"""Forward and hand-written backward passes of an MLP.

Notation for an MLP of L layers: a_0 = x; z_l = a_{l-1} @ w_l + b_l; a_l = f(z_l) for
l < L; the logits are z_L and the output is p = softmax(z_L). The loss is the mean over
the batch of -log p[y]. Backward: dz_L = (p - onehot(y)) / N; dw_l = a_{l-1}^T dz_l;
db_l = sum over rows of dz_l; dz_{l-1} = (dz_l @ w_l^T) * f'(z_{l-1}).
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from fmlp.activations import get_activation
from fmlp.losses import cross_entropy, softmax, softmax_cross_entropy_grad
from fmlp.params import MLP, Dense
from fmlp.types import FloatArray, IntArray


@attrs.frozen(eq=False)
class Cache:
    """What backward needs from a forward pass.

    pre_activations: z_1 .. z_L, each (N, h_l), the last being the logits.
    activations: a_0 = x, a_1 .. a_{L-1}, each (N, h_l).
    probs: softmax(z_L), (N, C).
    """

    pre_activations: tuple[FloatArray, ...]
    activations: tuple[FloatArray, ...]
    probs: FloatArray


def check_inputs(params: MLP, x: Any) -> FloatArray:
    """Validate an input batch against ``params``: a finite (N, fan_in) array of their dtype."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"inputs must be a numpy array, got {type(x).__name__}")
    fan_in = params.layers[0].fan_in
    if x.ndim != 2:
        raise ValueError(
            f"inputs must have shape (N, {fan_in}), got {x.shape}; "
            f"for one sample use x.reshape(1, -1)"
        )
    if x.shape[0] == 0:
        raise ValueError("empty batch: inputs have 0 rows")
    if x.shape[1] != fan_in:
        raise ValueError(
            f"input feature size {x.shape[1]} does not match the first layer, which takes {fan_in}"
        )
    if x.dtype != params.dtype:
        raise TypeError(
            f"dtype mismatch: parameters are {params.dtype} but inputs are {x.dtype}; "
            f"cast with x.astype(np.{params.dtype})"
        )
    if not np.isfinite(x).all():
        raise ValueError("inputs contain NaN or inf; clean or impute them before training")
    return x


def check_labels(y: Any, n: int, n_classes: int) -> IntArray:
    """Validate integer labels of shape (n,) with values in [0, n_classes)."""
    if not isinstance(y, np.ndarray):
        raise TypeError(f"labels must be a numpy array of integers, got {type(y).__name__}")
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(
            f"labels must be integers in [0, {n_classes}), got dtype {y.dtype}; "
            f"for one-hot labels pass y.argmax(axis=1)"
        )
    if y.shape != (n,):
        raise ValueError(f"labels must have shape ({n},) to match the inputs, got {y.shape}")
    if n and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(
            f"labels must lie in [0, {n_classes}), got values in [{y.min()}, {y.max()}]"
        )
    return y


def _hidden(params: MLP, x: FloatArray) -> tuple[list[FloatArray], FloatArray]:
    """Activations a_0 .. a_{L-1} and the logits z_L, without validation."""
    act = get_activation(params.activation)
    acts = [x]
    a = x
    for layer in params.layers[:-1]:
        z = a @ layer.w
        z += layer.b
        act.inplace(z)
        acts.append(z)
        a = z
    last = params.layers[-1]
    logits = a @ last.w
    logits += last.b
    return acts, logits


def _backprop(
    params: MLP,
    acts: list[FloatArray] | tuple[FloatArray, ...],
    dlogits: FloatArray,
    *,
    trace: list[FloatArray] | None = None,
) -> MLP:
    """Gradients of every layer from the cached activations and dL/dz_L.

    ``dlogits`` (N, C) may be overwritten. A ``trace`` list receives the per-row
    gradients met on the way down: dz_L, da_{L-1}, dz_{L-1}, ..., da_1, dz_1 (the
    template class reports them; the training loop passes no trace and pays nothing).
    """
    act = get_activation(params.activation)
    grads: list[Dense] = []
    g = dlogits
    for l in range(len(params.layers) - 1, -1, -1):
        a_prev = acts[l]
        if trace is not None:
            trace.append(g)
        grads.append(Dense(w=a_prev.T @ g, b=g.sum(axis=0)))
        if l:
            g = g @ params.layers[l].w.T
            if trace is not None:
                trace.append(g.copy())
            if params.activation == "relu":
                np.multiply(g, a_prev > 0, out=g)
            else:
                g *= act.grad_from_output(a_prev)
    return MLP(layers=tuple(reversed(grads)), activation=params.activation)


def logits(params: MLP, x: FloatArray) -> FloatArray:
    """The logits z_L, shape (N, C)."""
    return _hidden(params, check_inputs(params, x))[1]


def forward(params: MLP, x: FloatArray) -> FloatArray:
    """Class probabilities softmax(z_L), shape (N, C), for inputs x of shape (N, fan_in)."""
    return softmax(logits(params, x))


def forward_with_cache(params: MLP, x: FloatArray) -> tuple[FloatArray, Cache]:
    """Probabilities (N, C) and the Cache of pre-activations and activations."""
    x = check_inputs(params, x)
    act = get_activation(params.activation)
    zs: list[FloatArray] = []
    acts = [x]
    a = x
    for layer in params.layers:
        z = a @ layer.w + layer.b
        zs.append(z)
        a = act.fn(z)
        acts.append(a)
    probs = softmax(zs[-1])
    return probs, Cache(pre_activations=tuple(zs), activations=tuple(acts[:-1]), probs=probs)


def backward(params: MLP, cache: Cache, y: IntArray) -> MLP:
    """Gradients of the mean cross-entropy, an MLP shaped like ``params``."""
    n, c = cache.probs.shape
    y = check_labels(y, n, c)
    g = cache.probs.copy()
    g[np.arange(n), y] -= 1
    g *= g.dtype.type(1.0 / n)
    return _backprop(params, cache.activations, g)


def loss(params: MLP, x: FloatArray, y: IntArray) -> float:
    """Mean cross-entropy of the batch."""
    z = logits(params, x)
    return cross_entropy(z, check_labels(y, z.shape[0], z.shape[1]))


def grad(params: MLP, x: FloatArray, y: IntArray) -> tuple[float, MLP]:
    """(mean cross-entropy, its gradient with respect to every parameter)."""
    x = check_inputs(params, x)
    y = check_labels(y, x.shape[0], params.sizes[-1])
    return grad_unchecked(params, x, y)


def grad_unchecked(params: MLP, x: FloatArray, y: IntArray) -> tuple[float, MLP]:
    """``grad`` without input validation, for loops that validated the whole dataset once."""
    acts, z = _hidden(params, x)
    value, dz = softmax_cross_entropy_grad(z, y, donate=True)
    return value, _backprop(params, acts, dz)


def predict(params: MLP, x: FloatArray) -> IntArray:
    """The most probable class of each row, shape (N,)."""
    labels: IntArray = logits(params, x).argmax(axis=1)
    return labels
