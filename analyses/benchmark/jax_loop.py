"""JAX as a training loop: an epoch is one ``jax.jit`` function, a ``jax.lax.scan`` of the
SGD step. jax is the optional ``bench`` extra, imported by name only when asked for. A
float64 loop turns on jax's process-wide ``jax_enable_x64``; ``x64_restored`` puts it
back.

jax ships no type information this project can use without installing it, so jax is
handled as the module it is (``ModuleType``: what its functions return is unchecked)
and the arrays the loss and the step compute with as ``Traced``, the few operations
they use."""

from __future__ import annotations

import contextlib
import importlib
import time
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Generic, Protocol, TypeAlias, TypeVar

import numpy as np

from analyses.benchmark.spec import LR
from fmlp import MLP, Dense
from fmlp.types import FloatArray, IntArray


class Traced(Protocol):
    """A JAX array, or the tracer that stands for one inside ``jit``, as far as the loss
    and the steps use one."""

    def __getitem__(self, index: object, /) -> Traced: ...

    def __matmul__(self, other: Traced, /) -> Traced: ...

    def __add__(self, other: Traced, /) -> Traced: ...

    def __sub__(self, other: Traced, /) -> Traced: ...

    def __rmul__(self, other: float, /) -> Traced: ...


Layers: TypeAlias = tuple[tuple[Traced, Traced], ...]
"""The MLP as JAX sees it: each layer's (w, b)."""

LossFn: TypeAlias = Callable[[Layers, Traced, Traced], Traced]
"""``loss(p, xb, yb)``: the mean cross-entropy of the layers ``p`` on a batch."""

C = TypeVar("C")

Step: TypeAlias = Callable[[C, Traced, Traced, Traced], C]
"""One training step ``step(carry, idx, xs, ys)``: the batch is ``xs[idx], ys[idx]``."""


def import_jax() -> ModuleType | None:
    """jax, or None when it is not installed (it is the optional ``bench`` extra;
    imported by name so the type check does not need it)."""
    try:
        return importlib.import_module("jax")
    except ImportError:
        return None


@contextlib.contextmanager
def x64_restored(jax: ModuleType | None) -> Iterator[None]:
    """jax's ``jax_enable_x64`` as it was before the block, after it (nothing without
    jax)."""
    if jax is None:
        yield
        return
    x64 = jax.config.read("jax_enable_x64")
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", x64)


def mlp_loss(jax: ModuleType) -> LossFn:
    """The MLP's mean cross-entropy as a JAX function ``loss(p, xb, yb)`` of the layers
    ``p`` (a tuple of (w, b)): ReLU between the layers, log-softmax at the end."""
    jnp = importlib.import_module("jax.numpy")

    def loss(p: Layers, xb: Traced, yb: Traced) -> Traced:
        a = xb
        for w, b in p[:-1]:
            a = jax.nn.relu(a @ w + b)
        w, b = p[-1]
        logp = jax.nn.log_softmax(a @ w + b)
        mean: Traced = -jnp.mean(jnp.take_along_axis(logp, yb[:, None], axis=1))
        return mean

    return loss


def device_layers(jax: ModuleType, params: MLP) -> Layers:
    """The MLP's (w, b) of each layer on JAX's device."""
    return tuple((jax.device_put(layer.w), jax.device_put(layer.b)) for layer in params.layers)


class ScanLoop(Generic[C]):
    """A JAX training loop: the epoch is one ``jax.jit`` function, a ``jax.lax.scan`` of
    ``step`` over the full batches (the batch gathered inside the step), then the
    partial batch, with the ``carry`` (the layers, and whatever else the step threads
    through) donated. Compilation is timed apart (``compile_seconds``); ``layers(carry)``
    reads the MLP back."""

    def __init__(
        self,
        jax: ModuleType,
        x: FloatArray,
        y: IntArray,
        batch: int,
        carry: C,
        step: Step[C],
        layers: Callable[[C], Layers],
    ) -> None:
        self.jax = jax
        self.batch = batch
        self.n = x.shape[0]
        self.full, self.rest = divmod(self.n, batch)
        self.x: Traced = jax.device_put(x)
        # int32 indices work with and without x64
        self.y: Traced = jax.device_put(y.astype(np.int32))
        self.carry = carry
        self.layers = layers
        has_rest, full = self.rest > 0, self.full

        def epoch(c: C, idx_full: Traced, idx_rest: Traced, xs: Traced, ys: Traced) -> C:
            if full:
                c, _ = jax.lax.scan(lambda q, idx: (step(q, idx, xs, ys), None), c, idx_full)
            if has_rest:
                c = step(c, idx_rest, xs, ys)
            return c

        t0 = time.perf_counter()
        lowered = jax.jit(epoch, donate_argnums=0).lower(
            carry, *self._split(np.arange(self.n)), self.x, self.y
        )
        self.compiled: Callable[[C, Traced, Traced, Traced, Traced], C] = lowered.compile()
        self.compile_seconds = time.perf_counter() - t0

    def _split(self, order: IntArray) -> tuple[Traced, Traced]:
        order = order.astype(np.int32)
        full = order[: self.full * self.batch].reshape(self.full, self.batch)
        return self.jax.device_put(full), self.jax.device_put(order[self.full * self.batch :])

    def epoch(self, order: IntArray) -> None:
        self.carry = self.compiled(self.carry, *self._split(order), self.x, self.y)
        self.jax.block_until_ready(self.carry)

    def params(self) -> MLP:
        return MLP(
            layers=tuple(Dense(w=np.array(w), b=np.array(b)) for w, b in self.layers(self.carry))
        )


class JaxLoop(ScanLoop[Layers]):
    """JAX: plain SGD at the benchmark's learning rate, ``p - LR * grad``."""

    def __init__(
        self, jax: ModuleType, params: MLP, x: FloatArray, y: IntArray, batch: int
    ) -> None:
        if params.dtype == np.float64:
            jax.config.update("jax_enable_x64", True)
        loss_fn = mlp_loss(jax)

        def step(p: Layers, idx: Traced, xs: Traced, ys: Traced) -> Layers:
            g = jax.grad(loss_fn)(p, xs[idx], ys[idx])
            stepped: Layers = jax.tree_util.tree_map(lambda q, gq: q - LR * gq, p, g)
            return stepped

        super().__init__(jax, x, y, batch, device_layers(jax, params), step, _same)


def _same(p: Layers) -> Layers:
    return p
