"""Softmax and cross-entropy, computed through log-softmax so extreme logits stay finite."""

from __future__ import annotations

import numpy as np

from fmlp.types import FloatArray, IntArray


def log_softmax(z: FloatArray) -> FloatArray:
    """log softmax along the last axis: z - max - log(sum(exp(z - max))). Shape of z."""
    shifted: FloatArray = z - z.max(axis=-1, keepdims=True)
    out: FloatArray = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return out


def softmax(z: FloatArray) -> FloatArray:
    """exp(z) / sum(exp(z)) along the last axis, for (C,) or (N, C); stable for any finite z."""
    e: FloatArray = np.exp(z - z.max(axis=-1, keepdims=True))
    e /= e.sum(axis=-1, keepdims=True)
    return e


def cross_entropy(logits: FloatArray, y: IntArray) -> float:
    """Mean over the batch of -log softmax(logits)[y]. logits (N, C), y (N,) integer."""
    logp = log_softmax(logits)
    return float(-logp[np.arange(len(y)), y].mean(dtype=np.float64))


def softmax_cross_entropy_grad(
    logits: FloatArray, y: IntArray, *, donate: bool = False
) -> tuple[float, FloatArray]:
    """The mean cross-entropy and its gradient with respect to the logits, fused.

    logits (N, C), y (N,). Returns (loss, (softmax(logits) - onehot(y)) / N), the
    gradient in the logits' dtype. With ``donate=True`` the logits' buffer is reused
    for the gradient, so the caller must not use ``logits`` afterwards.
    """
    n = logits.shape[0]
    rows = np.arange(n)
    g = logits if donate else logits.copy()
    g -= g.max(axis=1, keepdims=True)
    picked = g[rows, y].astype(np.float64)
    np.exp(g, out=g)
    total = g.sum(axis=1, keepdims=True)
    loss = float(np.mean(np.log(total[:, 0].astype(np.float64)) - picked))
    g /= total
    g[rows, y] -= 1
    g *= g.dtype.type(1.0 / n)
    return loss, g
