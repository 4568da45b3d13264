"""Forward and hand-written backward passes of an MLP.

Notation for an MLP of L layers: a_0 = x; z_l = a_{l-1} @ w_l + b_l; a_l = f(z_l) for
l < L; the logits are z_L and the output is p = softmax(z_L). The loss is the mean over
the batch of -log p[y]. Backward: dz_L = (p - onehot(y)) / N; dw_l = a_{l-1}^T dz_l;
db_l = sum over rows of dz_l; dz_{l-1} = (dz_l @ w_l^T) * f'(z_{l-1}).

Each piece is written once: ``forward_unchecked`` is the forward pass (``logits``,
``forward``, ``forward_with_cache``, ``grad`` and the training loop call it), ``backprop``
the backward pass (``backward``, ``grad``, the training loop and the template class), and
the loss and dL/dz_L come from ``fmlp.losses``.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import numpy as np

from fmlp import kernels
from fmlp.activations import get_activation
from fmlp.checks import expect_params
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


def check_inputs(params: MLP, x: object) -> FloatArray:
    """Validate an input batch against ``params``: a finite (N, fan_in) array of their dtype."""
    expect_params(params, "the model")
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


def check_labels(y: object, n: int, n_classes: int) -> IntArray:
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


def forward_unchecked(
    params: MLP, x: FloatArray, *, keep_pre_activations: bool = False
) -> tuple[FloatArray, tuple[FloatArray, ...], tuple[FloatArray, ...]]:
    """The forward pass, written once: every other forward function of fmlp calls it.

    x (N, fan_in) is not validated (``check_inputs`` does that; loops validate their
    dataset once). Returns ``(logits, activations, pre_activations)``: the logits z_L
    (N, C); a_0 = x, a_1 .. a_{L-1}, which is what ``backprop`` needs; and, only with
    ``keep_pre_activations=True``, z_1 .. z_L (the last being the logits themselves),
    else ``()``. Without them each hidden activation is applied in place over its
    pre-activation, so the pass makes one array per layer and no more; with them each
    a_l is a new array beside z_l. Both ways give the same numbers bit for bit.
    """
    act = get_activation(params.activation)
    acts = [x]
    zs: list[FloatArray] = []
    a = x
    relu = act.name == "relu"
    for layer in params.layers[:-1]:
        z = a @ layer.w
        if keep_pre_activations:
            z += layer.b
            zs.append(z)
            a = act.fn(z)
        else:
            # one compiled pass where numba is enabled, with the same bits
            if not (relu and kernels.bias_relu_(z, layer.b)):
                z += layer.b
                act.inplace(z)
            a = z
        acts.append(a)
    last = params.layers[-1]
    z_last = a @ last.w
    z_last += last.b
    if keep_pre_activations:
        zs.append(z_last)
    return z_last, tuple(acts), tuple(zs)


def backprop(
    params: MLP,
    activations: Sequence[FloatArray],
    dlogits: FloatArray,
    *,
    trace: list[FloatArray] | None = None,
) -> MLP:
    """The chain rule from dL/dz_L down to every parameter, without validation.

    ``activations`` are a_0 .. a_{L-1} as ``forward_unchecked`` returns them (or as a
    ``Cache`` holds them); ``dlogits`` (N, C) is dL/dz_L for whatever loss L is (it is
    read, not written). Returns the gradients, an MLP shaped like ``params``:
    dw_l = a_{l-1}^T dz_l, db_l = the column sums of dz_l, dz_{l-1} = (dz_l w_l^T) f'(z_{l-1}).

    A ``trace`` list receives the per-row gradients met on the way down, in order:
    dz_L (``dlogits`` itself), da_{L-1}, dz_{L-1}, ..., da_1, dz_1, each (N, h_l) and
    never written again (the template class reports them). Without it nothing is copied.
    """
    act = get_activation(params.activation)
    relu = act.name == "relu"
    grads: list[Dense] = []
    g = dlogits
    for l in range(len(params.layers) - 1, -1, -1):
        a_prev = activations[l]
        if trace is not None:
            trace.append(g)
        grads.append(Dense(w=a_prev.T @ g, b=g.sum(axis=0)))
        if l:
            g = g @ params.layers[l].w.T
            if trace is not None:
                trace.append(g.copy())
            if not (relu and kernels.relu_backprop_(g, a_prev)):
                act.backprop_inplace(g, a_prev)
    return MLP(layers=tuple(reversed(grads)), activation=params.activation)


def logits(params: MLP, x: FloatArray) -> FloatArray:
    """The logits z_L, shape (N, C), for inputs x of shape (N, fan_in)."""
    return forward_unchecked(params, check_inputs(params, x))[0]


def forward(params: MLP, x: FloatArray) -> FloatArray:
    """Class probabilities softmax(z_L), shape (N, C), for inputs x of shape (N, fan_in)."""
    return softmax(logits(params, x))


def forward_with_cache(params: MLP, x: FloatArray) -> tuple[FloatArray, Cache]:
    """Probabilities (N, C) and the Cache of pre-activations and activations.

    The same pass as ``forward`` (``forward_unchecked`` keeping the pre-activations).
    """
    z, acts, zs = forward_unchecked(params, check_inputs(params, x), keep_pre_activations=True)
    probs = softmax(z)
    return probs, Cache(pre_activations=zs, activations=acts, probs=probs)


def backward(
    params: MLP, cache: Cache, y: IntArray, *, trace: list[FloatArray] | None = None
) -> MLP:
    """Gradients of the mean cross-entropy, an MLP shaped like ``params``.

    dL/dz_L = (softmax(z_L) - onehot(y)) / N comes from ``softmax_cross_entropy_grad`` on
    the cached logits (left unchanged); ``trace`` is as in ``backprop``.
    """
    logits_ = cache.pre_activations[-1]
    n, c = logits_.shape
    y = check_labels(y, n, c)
    _, dz = softmax_cross_entropy_grad(logits_, y)
    return backprop(params, cache.activations, dz, trace=trace)


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
    z, acts, _ = forward_unchecked(params, x)
    value, dz = softmax_cross_entropy_grad(z, y, donate=True)
    return value, backprop(params, acts, dz)


def predict(params: MLP, x: FloatArray) -> IntArray:
    """The most probable class of each row, shape (N,)."""
    labels: IntArray = logits(params, x).argmax(axis=1)
    return labels
