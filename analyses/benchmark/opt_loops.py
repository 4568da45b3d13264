"""The training loops of the per-optimizer benchmark (``optimizers``), one class per
framework, all behind ``training.Loop``'s interface (``epoch(order)``, ``params()``):

- ``FmlpLoop``: ``fmlp.train_epoch`` on a state it owns (``donate=True``, as ``fit``
  runs it), with the one-pass kernels or, under ``FMLP_FUSED=0``, the numpy rules;
- ``InPlaceLoop``: what numpy alone can do for the same training: preallocated buffers,
  ``out=`` products and the update in as few numpy passes as each rule allows;
- ``TorchOptLoop``: torch eager, ``nn.Linear``/``ReLU``, autograd and ``torch.optim``,
  with its default implementation or ``fused=True``;
- ``OptaxLoop``: JAX, an epoch as one ``jax.jit`` of a ``lax.scan`` of optax's step, the
  parameters and optimizer state donated;
- ``GemmOnlyLoop``: the 8 matrix products of each step and nothing else: the bound.

Every loop trains the same model from the same weights on the same samples in the same
order (``epoch_order``), with the hyper-parameters of ``OPTIMIZERS``.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias

import attrs
import numpy as np

import fmlp
from analyses.benchmark.jax_loop import mlp_loss
from analyses.benchmark.spec import SEED
from analyses.benchmark.torch_loop import TorchLoop
from fmlp import MLP, Dense
from fmlp.kernels import ENV_VAR
from fmlp.optim import Optimizer
from fmlp.tree import tree_copy
from fmlp.types import FloatArray, IntArray

if TYPE_CHECKING:
    import torch

OptimizerName: TypeAlias = Literal["sgd", "momentum", "adam", "adamw"]
OPTIMIZER_NAMES: Final[tuple[OptimizerName, ...]] = ("sgd", "momentum", "adam", "adamw")


@attrs.frozen
class OptimizerSetting:
    """The hyper-parameters every framework trains with (torch's and optax's defaults for
    the rest: heavy-ball momentum without dampening, b1 0.9, b2 0.999, eps 1e-8)."""

    name: OptimizerName
    lr: float
    momentum: float = 0.0
    weight_decay: float = 0.0


OPTIMIZERS: Final[dict[OptimizerName, OptimizerSetting]] = {
    "sgd": OptimizerSetting("sgd", lr=0.01),
    "momentum": OptimizerSetting("momentum", lr=0.01, momentum=0.9),
    "adam": OptimizerSetting("adam", lr=1e-3),
    "adamw": OptimizerSetting("adamw", lr=1e-3, weight_decay=0.05),
}


def fmlp_optimizer(s: OptimizerSetting) -> Optimizer[Any]:
    """fmlp's optimizer for a setting."""
    if s.name == "sgd":
        return fmlp.sgd(s.lr)
    if s.name == "momentum":
        return fmlp.momentum(s.lr, s.momentum)
    if s.name == "adam":
        return fmlp.adam(s.lr)
    return fmlp.adamw(s.lr, weight_decay=s.weight_decay)


@contextlib.contextmanager
def fused_set(on: bool) -> Iterator[None]:
    """``FMLP_FUSED`` set to 1 or 0 inside the block, as it was after it."""
    before = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = "1" if on else "0"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = before


class FmlpLoop:
    """fmlp's training: ``train_epoch`` with ``donate=True`` on its own copy of the state,
    with the one-pass kernels (``fused``) or the numpy rules. The time of an epoch
    includes ``train_epoch``'s check that the data are finite (a few ms)."""

    def __init__(
        self, params: MLP, x: FloatArray, y: IntArray, batch: int, s: OptimizerSetting, fused: bool
    ) -> None:
        self.opt = fmlp_optimizer(s)
        self.state = fmlp.init_state(tree_copy(params), self.opt)
        self.x, self.y, self.batch, self.fused = x, y, batch, fused
        self.count = 0

    def epoch(self, order: IntArray) -> None:
        with fused_set(self.fused), np.errstate(over="ignore", invalid="ignore"):
            self.state, _ = fmlp.train_epoch(
                self.state,
                self.x,
                self.y,
                optimizer=self.opt,
                batch_size=self.batch,
                seed=SEED,
                epoch=self.count,
                donate=True,
            )
        self.count += 1

    def params(self) -> MLP:
        return self.state.params


class InPlaceLoop:
    """What numpy can do: a ReLU MLP trained with preallocated buffers and ``out=``
    products, the softmax cross-entropy gradient computed in the logits' buffer, and each
    rule's update in place (for SGD, -lr / m folded into the logits' gradient so the
    gradients are the updates)."""

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
        self.s = s
        if gemm_update and s.name != "sgd":
            raise ValueError("only plain SGD folds its update into the weight-gradient GEMM")
        self.gemm = _gemm_of(params.dtype) if gemm_update else None
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
        self.tmp = [np.empty_like(p) for p in self.params_]
        moments = s.name != "sgd"
        self.m = [np.zeros_like(p) for p in self.params_] if moments else []
        self.v = [np.zeros_like(p) for p in self.params_] if s.name in ("adam", "adamw") else []
        self.rows = np.arange(batch)
        self.count = 0

    def step(self, idx: IntArray) -> None:
        m = idx.shape[0]
        xb = self.xb[:m]
        np.take(self.x, idx, axis=0, out=xb, mode="clip")  # idx is a permutation
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
        if self.gemm is not None:
            self._backward_into_weights(xb, g, m)
            return
        for l in range(last, -1, -1):
            a_prev = xb if l == 0 else self.h[l - 1][:m]
            np.matmul(a_prev.T, g, out=self.grads[2 * l])
            np.sum(g, axis=0, out=self.grads[2 * l + 1])
            if l:
                gp = self.d[l - 1][:m]
                np.matmul(g, self.w[l].T, out=gp)
                mask = self.mask[l - 1][:m]
                np.greater(a_prev, 0, out=mask)
                np.multiply(gp, mask, out=gp)
                g = gp
        self.count += 1
        for i, p in enumerate(self.params_):
            self._update(i, p, self.grads[i])

    def _backward_into_weights(self, xb: FloatArray, g: FloatArray, m: int) -> None:
        """Plain SGD with w += a^T g (g already scaled by -lr / m) done by BLAS gemm with
        alpha = 1 and beta = 1 into the weights themselves, written as its transpose so
        that every operand is a Fortran-ordered view and nothing is copied."""
        gemm = self.gemm
        assert gemm is not None
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
            wt = self.w[l].T  # (n, k), Fortran-ordered; w^T += g^T a_prev
            out = gemm(1.0, g.T, a_prev.T, beta=1.0, c=wt, trans_b=1, overwrite_c=1)
            if not np.shares_memory(out, self.w[l]):
                raise RuntimeError("BLAS gemm did not write into the weights in place")
            self.b[l] += self.grads[2 * l + 1]
            if gp is not None:
                g = gp

    def _update(self, i: int, p: FloatArray, g: FloatArray) -> None:
        s, t = self.s, self.t
        if s.name == "sgd":
            p += g
            return
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
        for start in range(0, order.shape[0], self.batch):
            self.step(order[start : start + self.batch])

    def params(self) -> MLP:
        return MLP(layers=tuple(Dense(w=w.copy(), b=b.copy()) for w, b in zip(self.w, self.b)))


def _gemm_of(dtype: np.dtype[np.generic]) -> Any:
    """scipy's BLAS ``sgemm`` or ``dgemm`` for ``dtype`` (numpy exposes no gemm with alpha
    and beta); ImportError without scipy."""
    blas = importlib.import_module("scipy.linalg.blas")
    return blas.sgemm if dtype == np.float32 else blas.dgemm


class GemmOnlyLoop:
    """The 8 matrix products of each step (3 forward, 3 weight gradients, 2 input
    gradients) on preallocated buffers, over the epoch's batch sizes, and nothing else:
    the physical bound of a step. Its parameters never change."""

    def __init__(self, params: MLP, x: FloatArray, batch: int) -> None:
        self.w = [np.array(layer.w) for layer in params.layers]
        self.batch = batch
        sizes = params.sizes
        self.xb = np.ascontiguousarray(x[:batch])
        self.h = [np.ones((batch, n), params.dtype) for n in sizes[1:]]
        self.d = [np.empty((batch, n), params.dtype) for n in sizes[1:-1]]
        self.dw = [np.empty_like(w) for w in self.w]
        self.start = params

    def step(self, m: int) -> None:
        xb = self.xb[:m]
        a = xb
        for l, w in enumerate(self.w):
            np.matmul(a, w, out=self.h[l][:m])
            a = self.h[l][:m]
        g = a
        for l in range(len(self.w) - 1, -1, -1):
            a_prev = xb if l == 0 else self.h[l - 1][:m]
            np.matmul(a_prev.T, g, out=self.dw[l])
            if l:
                np.matmul(g, self.w[l].T, out=self.d[l - 1][:m])
                g = self.d[l - 1][:m]

    def epoch(self, order: IntArray) -> None:
        n = order.shape[0]
        for start in range(0, n, self.batch):
            self.step(min(self.batch, n - start))

    def params(self) -> MLP:
        return self.start


class TorchOptLoop(TorchLoop):
    """torch eager: ``nn.Linear``/``ReLU`` from the same weights, autograd and the
    ``torch.optim`` class of the setting, with its default implementation (on CPU the
    per-tensor loop) or ``fused=True``. torch raises where it does not offer
    ``fused=True`` for that optimizer on this device."""

    def __init__(
        self, params: MLP, x: FloatArray, y: IntArray, batch: int, s: OptimizerSetting, fused: bool
    ) -> None:
        self.s, self.fused = s, fused
        super().__init__(params, x, y, batch)

    def make_optimizer(self, parameters: Iterator[torch.nn.Parameter]) -> torch.optim.Optimizer:
        import torch

        s, optim = self.s, torch.optim
        use = True if self.fused else None  # None: torch's default implementation
        if s.name in ("sgd", "momentum"):
            return optim.SGD(parameters, lr=s.lr, momentum=s.momentum, fused=use)
        if s.name == "adam":
            return optim.Adam(parameters, lr=s.lr, fused=use)
        return optim.AdamW(parameters, lr=s.lr, weight_decay=s.weight_decay, fused=use)


def import_optax() -> Any | None:
    """optax (the ``bench`` extra, with jax), or None when it is not installed."""
    try:
        return importlib.import_module("optax")
    except ImportError:
        return None


class OptaxLoop:
    """JAX with optax: an epoch is one ``jax.jit`` function, a ``lax.scan`` of the step
    (batch gathered inside, ``optax`` update, ``optax.apply_updates``) over the full
    batches, then the partial batch; the parameters and the optimizer state are donated.
    Compilation is timed apart (``compile_seconds``)."""

    def __init__(
        self,
        jax: Any,
        optax: Any,
        params: MLP,
        x: FloatArray,
        y: IntArray,
        batch: int,
        s: OptimizerSetting,
    ) -> None:
        self.jax = jax
        self.batch = batch
        self.n = x.shape[0]
        self.full, self.rest = divmod(self.n, batch)
        self.x = jax.device_put(x)
        self.y = jax.device_put(y.astype(np.int32))
        self.p = tuple(
            (jax.device_put(layer.w), jax.device_put(layer.b)) for layer in params.layers
        )
        if s.name in ("sgd", "momentum"):
            tx = optax.sgd(s.lr, momentum=s.momentum or None)
        elif s.name == "adam":
            tx = optax.adam(s.lr)
        else:
            tx = optax.adamw(s.lr, weight_decay=s.weight_decay)
        self.opt_state = tx.init(self.p)

        loss_fn = mlp_loss(jax)

        def step(carry: Any, idx: Any, xs: Any, ys: Any) -> Any:
            p, st = carry
            g = jax.grad(loss_fn)(p, xs[idx], ys[idx])
            updates, st = tx.update(g, st, p)
            return optax.apply_updates(p, updates), st

        has_rest = self.rest > 0
        full = self.full

        def epoch(carry: Any, idx_full: Any, idx_rest: Any, xs: Any, ys: Any) -> Any:
            if full:
                carry, _ = jax.lax.scan(
                    lambda c, idx: (step(c, idx, xs, ys), None), carry, idx_full
                )
            if has_rest:
                carry = step(carry, idx_rest, xs, ys)
            return carry

        t0 = time.perf_counter()
        lowered = jax.jit(epoch, donate_argnums=0).lower(
            (self.p, self.opt_state), *self._split(np.arange(self.n)), self.x, self.y
        )
        self.compiled = lowered.compile()
        self.compile_seconds = time.perf_counter() - t0

    def _split(self, order: IntArray) -> tuple[Any, Any]:
        order = order.astype(np.int32)
        full = order[: self.full * self.batch].reshape(self.full, self.batch)
        return self.jax.device_put(full), self.jax.device_put(order[self.full * self.batch :])

    def epoch(self, order: IntArray) -> None:
        self.p, self.opt_state = self.compiled(
            (self.p, self.opt_state), *self._split(order), self.x, self.y
        )
        self.jax.block_until_ready(self.p)

    def params(self) -> MLP:
        return MLP(layers=tuple(Dense(w=np.array(w), b=np.array(b)) for w, b in self.p))
