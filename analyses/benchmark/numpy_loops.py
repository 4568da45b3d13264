"""The numpy side of the comparison: fmlp's own training as the benchmark runs it
(``fit_fmlp``), and the in-place loop, what numpy alone can do for the same training,
against which fmlp is measured: with plain SGD at the benchmark's rate it is the main
benchmark's ``reference`` (``ReferenceLoop``), with each optimizer's rule the
per-optimizer benchmark's ``in-place`` (and, with ``gemm_update``, ``in-place-gemm``)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import fmlp
from analyses.benchmark.spec import LR, SEED, SGD, OptimizerSetting
from fmlp import MLP, Dense, blas
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
) -> tuple[fmlp.TrainState[object], fmlp.EpochMetrics]:
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


class InPlaceLoop:
    """What numpy can do: a ReLU MLP trained with preallocated buffers and ``out=``
    products, the softmax cross-entropy gradient computed in the logits' buffer, and each
    rule's update in place, a layer's as soon as its gradients are known (its weights
    have then already given the gradient of the layer below). For SGD, -lr / m is folded
    into the logits' gradient, so the weight and bias gradients come out as the updates
    themselves. It owns private copies of the weights and trains on (x, y) with the rule
    and hyper-parameters of ``s``.

    ``gemm_update`` (plain SGD only) does the weight update inside the weight-gradient
    product: BLAS gemm with alpha = 1 and beta = 1 into the weights (numpy's own BLAS,
    through ``fmlp.blas``).
    """

    def __init__(
        self,
        params: MLP,
        x: FloatArray,
        y: IntArray,
        batch: int,
        s: OptimizerSetting,
        *,
        gemm_update: bool = False,
    ) -> None:
        if params.activation != "relu":
            raise ValueError("the in-place loop implements ReLU MLPs only")
        self.s = s
        if gemm_update and s.name != "sgd":
            raise ValueError("only plain SGD folds its update into the weight-gradient GEMM")
        if gemm_update and not blas.available():
            raise ValueError("numpy's BLAS was not found: no gemm with alpha and beta")
        self.in_gemm = gemm_update
        self.w = [np.array(layer.w) for layer in params.layers]
        self.b = [np.array(layer.b) for layer in params.layers]
        self.t = params.dtype.type
        dtype = params.dtype
        self.x, self.y, self.batch = x, y, batch
        sizes = params.sizes
        self.xb = np.empty((batch, sizes[0]), dtype)
        self.h = [np.empty((batch, n), dtype) for n in sizes[1:]]
        self.d = [np.empty((batch, n), dtype) for n in sizes[1:-1]]
        self.mask = [np.empty((batch, n), np.bool_) for n in sizes[1:-1]]
        self.params_ = [p for pair in zip(self.w, self.b) for p in pair]
        self.grads = [np.empty_like(p) for p in self.params_]
        self.tmp = [np.empty_like(p) for p in self.params_] if s.name != "sgd" else []
        self.m = [np.zeros_like(p) for p in self.params_] if s.name != "sgd" else []
        self.v = [np.zeros_like(p) for p in self.params_] if s.name in ("adam", "adamw") else []
        self.rows = np.arange(batch)
        self.count = 0

    def step(self, idx: IntArray) -> None:
        """One step on the samples ``idx``."""
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
        sgd = self.s.name == "sgd"
        z *= self.t(-self.s.lr / m if sgd else 1.0 / m)
        g = z
        if self.in_gemm:
            self._backward_into_weights(xb, g, m)
            return
        self.count += 1
        for l in range(last, -1, -1):
            a_prev = xb if l == 0 else self.h[l - 1][:m]
            dw, db = self.grads[2 * l], self.grads[2 * l + 1]
            np.matmul(a_prev.T, g, out=dw)
            np.sum(g, axis=0, out=db)
            if l:
                gp = self.d[l - 1][:m]
                np.matmul(g, self.w[l].T, out=gp)  # with the weights before this step
                mask = self.mask[l - 1][:m]
                np.greater(a_prev, 0, out=mask)
                np.multiply(gp, mask, out=gp)
                g = gp
            if sgd:
                self.w[l] += dw
                self.b[l] += db
            else:
                self._update(2 * l, self.w[l], dw)
                self._update(2 * l + 1, self.b[l], db)

    def _backward_into_weights(self, xb: FloatArray, g: FloatArray, m: int) -> None:
        """Plain SGD with w += a^T g (g already scaled by -lr / m) done by BLAS gemm with
        alpha = 1 and beta = 1 into the weights themselves."""
        for l in range(len(self.w) - 1, -1, -1):
            a_prev = xb if l == 0 else self.h[l - 1][:m]
            np.sum(g, axis=0, out=self.grads[2 * l + 1])
            gp = None
            if l:
                gp = self.d[l - 1][:m]
                np.matmul(g, self.w[l].T, out=gp)  # with the old weights
                mask = self.mask[l - 1][:m]
                np.greater(a_prev, 0, out=mask)
                np.multiply(gp, mask, out=gp)
            if not blas.gemm_at_b(self.w[l], a_prev, g, alpha=1.0, beta=1.0):
                raise RuntimeError("numpy's BLAS refused the weights' product")
            self.b[l] += self.grads[2 * l + 1]
            if gp is not None:
                g = gp

    def _update(self, i: int, p: FloatArray, g: FloatArray) -> None:
        """The momentum, Adam or AdamW update of parameter ``i`` (``p``) from its mean
        gradient ``g``, in place."""
        s, t = self.s, self.t
        tmp = self.tmp[i]
        if s.name == "momentum":
            v = self.m[i]
            v *= t(s.momentum)
            v += g
            np.multiply(v, t(-s.lr), out=tmp)
            p += tmp
            return
        mu, nu = self.m[i], self.v[i]
        b1, b2, eps = 0.9, 0.999, 1e-8
        mu *= t(b1)
        np.multiply(g, t(1 - b1), out=tmp)
        mu += tmp
        nu *= t(b2)
        np.multiply(g, g, out=tmp)
        tmp *= t(1 - b2)
        nu += tmp
        bias1, bias2_sqrt = 1 - b1**self.count, (1 - b2**self.count) ** 0.5
        if s.name == "adamw":
            p *= t(1 - s.lr * s.weight_decay)
        np.sqrt(nu, out=tmp)
        tmp *= t(1 / bias2_sqrt)
        tmp += t(eps)
        np.divide(mu, tmp, out=tmp)
        tmp *= t(-s.lr / bias1)
        p += tmp

    def epoch(self, order: IntArray) -> None:
        """One epoch over the samples in ``order``, the last batch possibly partial."""
        for start in range(0, order.shape[0], self.batch):
            self.step(order[start : start + self.batch])

    def params(self) -> MLP:
        return MLP(layers=tuple(Dense(w=w.copy(), b=b.copy()) for w, b in zip(self.w, self.b)))


class ReferenceLoop(InPlaceLoop):
    """The main benchmark's ``reference``: the in-place loop with plain SGD at the
    benchmark's learning rate."""

    def __init__(self, params: MLP, x: FloatArray, y: IntArray, batch: int) -> None:
        super().__init__(params, x, y, batch, SGD)
