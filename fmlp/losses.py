"""Softmax and cross-entropy, computed through log-softmax so extreme logits stay finite.

The cross-entropy of logits z (N, C) and labels y (N,) is the mean over rows (or the
sum, or each row's own value) of -log softmax(z)[n, y_n], with log softmax(z)[n, k] =
(z[n, k] - m_n) - log sum_j exp(z[n, j] - m_n) and m_n the row's maximum. One private
routine, ``_log_softmax_at``, computes it: the value routine ``cross_entropy`` and the
fused value-and-gradient routine ``softmax_cross_entropy_grad`` (the training step's)
both call it, and ``softmax`` shares its shifted exponential.
"""

from __future__ import annotations

from typing import Final, Literal, TypeAlias, get_args, overload

import numpy as np
from numpy.typing import NDArray

from fmlp.types import FloatArray, IntArray

F64: TypeAlias = NDArray[np.float64]
Reduction: TypeAlias = Literal["mean", "sum", "none"]
"""How ``cross_entropy`` reduces the per-row losses: their mean, their sum, or none."""

REDUCTIONS: Final[tuple[str, ...]] = get_args(Reduction)


def log_softmax(z: FloatArray) -> FloatArray:
    """log softmax along the last axis: z - max - log(sum(exp(z - max))). Shape of z."""
    shifted: FloatArray = z - z.max(axis=-1, keepdims=True)
    out: FloatArray = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return out


def _exp_shifted(z: FloatArray, out: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Write exp(z - m) into ``out`` (which may be ``z``), m the maximum along the last
    axis; returns (m, the sums of ``out`` along the last axis), both with keepdims."""
    m = z.max(axis=-1, keepdims=True)
    np.subtract(z, m, out=out)
    np.exp(out, out=out)
    return m, out.sum(axis=-1, keepdims=True)


def softmax(z: FloatArray) -> FloatArray:
    """exp(z) / sum(exp(z)) along the last axis, for (C,) or (N, C); stable for any finite z."""
    e = np.empty_like(z)
    _, total = _exp_shifted(z, e)
    e /= total
    return e


def _log_softmax_at(z: FloatArray, y: IntArray, out: FloatArray) -> tuple[F64, FloatArray]:
    """log softmax(z)[n, y_n] for each row, in float64, shape (N,); also writes exp(z - m)
    into ``out`` (which may be ``z``: the picked logits are read first) and returns its row
    sums (N, 1), from which the caller can finish the softmax."""
    rows = np.arange(z.shape[0])
    picked = z[rows, y]  # before ``out`` may overwrite z
    m, total = _exp_shifted(z, out)
    shifted_picked = (picked - m[:, 0]).astype(np.float64)
    logp: F64 = shifted_picked - np.log(total[:, 0].astype(np.float64))
    return logp, total


def _reduce(logp: F64, reduction: Literal["mean", "sum"]) -> float:
    if reduction == "mean":
        return float(-np.mean(logp))
    if reduction == "sum":
        return float(-np.sum(logp))
    raise ValueError(
        f"unknown reduction {reduction!r}: expected one of {', '.join(map(repr, REDUCTIONS))}"
    )


@overload
def cross_entropy(
    logits: FloatArray, y: IntArray, *, reduction: Literal["mean", "sum"] = "mean"
) -> float: ...
@overload
def cross_entropy(logits: FloatArray, y: IntArray, *, reduction: Literal["none"]) -> F64: ...
def cross_entropy(logits: FloatArray, y: IntArray, *, reduction: Reduction = "mean") -> float | F64:
    """-log softmax(logits)[n, y_n], averaged (``"mean"``) or summed (``"sum"``, for
    evaluating a dataset in chunks) over the rows, or each row's own (``"none"``: a
    float64 array of shape (N,)). logits (N, C), y (N,) integer.

    Accumulated in float64; the mean is exactly the value ``softmax_cross_entropy_grad``
    returns. An unknown ``reduction`` is a ValueError listing the three.
    """
    logp, _ = _log_softmax_at(logits, y, np.empty_like(logits))
    if reduction == "none":
        losses: F64 = -logp
        return losses
    return _reduce(logp, reduction)


def softmax_cross_entropy_grad(
    logits: FloatArray, y: IntArray, *, donate: bool = False
) -> tuple[float, FloatArray]:
    """The mean cross-entropy and its gradient with respect to the logits, fused.

    logits (N, C), y (N,). Returns (loss, (softmax(logits) - onehot(y)) / N), the
    gradient in the logits' dtype. With ``donate=True`` the logits' buffer is reused
    for the gradient, so the caller must not use ``logits`` afterwards.
    """
    n = logits.shape[0]
    g: FloatArray = logits if donate else np.empty_like(logits)
    logp, total = _log_softmax_at(logits, y, g)
    g /= total
    g[np.arange(n), y] -= 1
    g *= g.dtype.type(1.0 / n)
    return _reduce(logp, "mean"), g
