"""The training loops of the per-optimizer benchmark (``optimizers``), one class per
framework, all behind ``training.Loop``'s interface (``epoch(order)``, ``params()``):

- ``FmlpLoop``: ``fmlp.train_epoch`` on a state it owns (``donate=True``, as ``fit``
  runs it), with the one-pass kernels or, under ``FMLP_FUSED=0``, the numpy rules;
- ``InPlaceLoop`` (from ``numpy_loops``, where it is also the main benchmark's
  reference): what numpy alone can do for the same training: preallocated buffers,
  ``out=`` products and the update in as few numpy passes as each rule allows;
- ``TorchOptLoop``: torch eager, ``nn.Linear``/``ReLU``, autograd and ``torch.optim``,
  with its default implementation or ``fused=True``;
- ``OptaxLoop``: JAX, an epoch as one ``jax.jit`` of a ``lax.scan`` of optax's step, the
  parameters and optimizer state donated;
- ``GemmOnlyLoop``: the 8 matrix products of each step and nothing else: the bound.

Every loop trains the same model from the same weights on the same samples in the same
order (``epoch_order``), with the hyper-parameters of ``OPTIMIZERS`` (``spec``).
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

import fmlp
from analyses.benchmark.jax_loop import Layers, ScanLoop, Traced, device_layers, mlp_loss
from analyses.benchmark.numpy_loops import InPlaceLoop
from analyses.benchmark.spec import (
    OPTIMIZER_NAMES,
    OPTIMIZERS,
    SEED,
    OptimizerName,
    OptimizerSetting,
)
from analyses.benchmark.torch_loop import TorchLoop
from fmlp import MLP
from fmlp.kernels import ENV_VAR
from fmlp.optim import Optimizer
from fmlp.tree import tree_copy
from fmlp.types import FloatArray, IntArray

if TYPE_CHECKING:
    import torch

__all__ = [
    "OPTIMIZERS",
    "OPTIMIZER_NAMES",
    "FmlpLoop",
    "GemmOnlyLoop",
    "InPlaceLoop",
    "OptaxLoop",
    "OptimizerName",
    "OptimizerSetting",
    "TorchOptLoop",
    "fmlp_optimizer",
    "fused_set",
    "import_optax",
]

Carry: TypeAlias = tuple[Layers, object]
"""What an optax epoch threads through its steps: the layers and optax's state."""


def fmlp_optimizer(s: OptimizerSetting) -> Optimizer[Any]:
    """fmlp's optimizer for a setting (fmlp's own constructors leave the state of the
    chained rules untyped)."""
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
    with the one-pass kernels (``fused``) or the numpy rules, and for plain SGD with the
    update inside the weight-gradient product (``sgd_in_gemm``, opt-in in fmlp). The time
    of an epoch includes ``train_epoch``'s check that the data are finite (a few ms)."""

    def __init__(
        self,
        params: MLP,
        x: FloatArray,
        y: IntArray,
        batch: int,
        s: OptimizerSetting,
        fused: bool,
        *,
        sgd_in_gemm: bool = False,
    ) -> None:
        if sgd_in_gemm and s.name != "sgd":
            raise ValueError("only plain SGD folds its update into the weight-gradient GEMM")
        self.opt = fmlp_optimizer(s)
        self.state = fmlp.init_state(tree_copy(params), self.opt)
        self.x, self.y, self.batch, self.fused = x, y, batch, fused
        self.sgd_in_gemm = sgd_in_gemm
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
                sgd_in_gemm=self.sgd_in_gemm,
            )
        self.count += 1

    def params(self) -> MLP:
        return self.state.params


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


def import_optax() -> ModuleType | None:
    """optax (the ``bench`` extra, with jax), or None when it is not installed."""
    try:
        return importlib.import_module("optax")
    except ImportError:
        return None


class OptaxLoop(ScanLoop[Carry]):
    """JAX with optax: each step gathers its batch, takes optax's update and
    ``optax.apply_updates``; the parameters and the optimizer state are donated
    (``ScanLoop``)."""

    def __init__(
        self,
        jax: ModuleType,
        optax: ModuleType,
        params: MLP,
        x: FloatArray,
        y: IntArray,
        batch: int,
        s: OptimizerSetting,
    ) -> None:
        if s.name in ("sgd", "momentum"):
            tx = optax.sgd(s.lr, momentum=s.momentum or None)
        elif s.name == "adam":
            tx = optax.adam(s.lr)
        else:
            tx = optax.adamw(s.lr, weight_decay=s.weight_decay)
        p = device_layers(jax, params)
        loss_fn = mlp_loss(jax)

        def step(carry: Carry, idx: Traced, xs: Traced, ys: Traced) -> Carry:
            p, st = carry
            g = jax.grad(loss_fn)(p, xs[idx], ys[idx])
            updates, st = tx.update(g, st, p)
            stepped: Layers = optax.apply_updates(p, updates)
            return stepped, st

        super().__init__(jax, x, y, batch, (p, tx.init(p)), step, _layers)


def _layers(carry: Carry) -> Layers:
    return carry[0]
