"""The numpy side of the comparison: fmlp's own training as the benchmark runs it
(``fit_fmlp``), and the in-place reference loop, what numpy alone can do for the same
training, against which fmlp is measured."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import fmlp
from analyses.benchmark.spec import LR, SEED
from fmlp import MLP, Dense
from fmlp.types import FloatArray, IntArray


def fit_fmlp(
    params: MLP,
    x: FloatArray,
    y: IntArray,
    *,
    epochs: int,
    batch: int,
    validation: tuple[FloatArray, IntArray] | None = None,
    callback: Callable[[int, fmlp.EpochMetrics], None] | None = None,
) -> tuple[fmlp.TrainState[Any], fmlp.EpochMetrics]:
    """fmlp's training as the benchmark measures it: ``fmlp.fit`` by SGD at the benchmark's
    learning rate and seed. Without ``validation`` it evaluates nothing between epochs (the
    timed epochs); with it, it evaluates the training and validation sets after each
    epoch, as a study would (what the memory child measures)."""
    return fmlp.fit(
        params,
        x,
        y,
        epochs=epochs,
        batch_size=batch,
        lr=LR,
        seed=SEED,
        validation=validation,
        eval_train=validation is not None,
        callback=callback,
    )


class ReferenceLoop:
    """What numpy can do: a minimal in-place SGD loop for a ReLU MLP.

    Every buffer is allocated once; every product writes into its buffer with ``out=``;
    the softmax-cross-entropy gradient is computed in the logits' buffer and scaled by
    -lr / m there, so the weight and bias gradients come out as the updates themselves
    and are added to the weights in place. It owns private copies of the weights and
    trains on (x, y) by SGD at the benchmark's learning rate.
    """

    def __init__(self, params: MLP, x: FloatArray, y: IntArray, batch: int) -> None:
        if params.activation != "relu":
            raise ValueError("the reference loop implements ReLU MLPs only")
        self.w = [np.array(layer.w) for layer in params.layers]
        self.b = [np.array(layer.b) for layer in params.layers]
        self.dtype = params.dtype
        self.x = x
        self.y = y
        sizes = params.sizes
        self.batch = batch
        self.xb = np.empty((batch, sizes[0]), self.dtype)
        self.h = [np.empty((batch, s), self.dtype) for s in sizes[1:]]
        self.d = [np.empty((batch, s), self.dtype) for s in sizes[1:-1]]
        self.mask = [np.empty((batch, s), np.bool_) for s in sizes[1:-1]]
        self.dw = [np.empty_like(w) for w in self.w]
        self.db = [np.empty_like(b) for b in self.b]
        self.rows = np.arange(batch)

    def step(self, idx: IntArray) -> None:
        """One SGD step on the samples ``idx``."""
        m = idx.shape[0]
        xb = self.xb[:m]
        # idx is a permutation, so no index can be out of range; "raise" is 4x slower
        np.take(self.x, idx, axis=0, out=xb, mode="clip")
        a = xb
        last = len(self.w) - 1
        for l in range(last + 1):
            h = self.h[l][:m]
            np.matmul(a, self.w[l], out=h)
            h += self.b[l]
            if l < last:
                np.maximum(h, 0, out=h)
            a = h
        z = a
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        z[self.rows[:m], self.y[idx]] -= 1
        z *= self.dtype.type(-LR / m)
        g = z
        for l in range(last, -1, -1):
            a_prev = xb if l == 0 else self.h[l - 1][:m]
            np.matmul(a_prev.T, g, out=self.dw[l])
            np.sum(g, axis=0, out=self.db[l])
            if l:
                gp = self.d[l - 1][:m]
                np.matmul(g, self.w[l].T, out=gp)
                mask = self.mask[l - 1][:m]
                np.greater(a_prev, 0, out=mask)
                np.multiply(gp, mask, out=gp)
                g = gp
            self.w[l] += self.dw[l]
            self.b[l] += self.db[l]

    def epoch(self, order: IntArray) -> None:
        """One epoch over the samples in ``order``, the last batch possibly partial."""
        for start in range(0, order.shape[0], self.batch):
            self.step(order[start : start + self.batch])

    def params(self) -> MLP:
        return MLP(layers=tuple(Dense(w=w.copy(), b=b.copy()) for w, b in zip(self.w, self.b)))
