"""JAX as a training loop: an epoch is one ``jax.jit`` function, a ``jax.lax.scan`` of the
SGD step. jax is the optional ``bench`` extra, imported by name only when asked for. A
float64 loop turns on jax's process-wide ``jax_enable_x64``; ``x64_restored`` puts it
back."""

from __future__ import annotations

import contextlib
import importlib
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from analyses.benchmark.spec import LR
from fmlp import MLP, Dense
from fmlp.types import FloatArray, IntArray


def import_jax() -> Any | None:
    """jax, or None when it is not installed (it is the optional ``bench`` extra;
    imported by name so the type check does not need it)."""
    try:
        return importlib.import_module("jax")
    except ImportError:
        return None


@contextlib.contextmanager
def x64_restored(jax: Any | None) -> Iterator[None]:
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


def mlp_loss(jax: Any) -> Any:
    """The MLP's mean cross-entropy as a JAX function ``loss(p, xb, yb)`` of the layers
    ``p`` (a tuple of (w, b)): ReLU between the layers, log-softmax at the end."""
    jnp = importlib.import_module("jax.numpy")

    def loss(p: Any, xb: Any, yb: Any) -> Any:
        a = xb
        for w, b in p[:-1]:
            a = jax.nn.relu(a @ w + b)
        w, b = p[-1]
        logp = jax.nn.log_softmax(a @ w + b)
        return -jnp.mean(jnp.take_along_axis(logp, yb[:, None], axis=1))

    return loss


class JaxLoop:
    """JAX: the epoch is one ``jax.jit`` function, a ``jax.lax.scan`` of the SGD step over
    the full batches (the batch gathered inside the step), then the partial batch."""

    def __init__(self, jax: Any, params: MLP, x: FloatArray, y: IntArray, batch: int) -> None:
        if params.dtype == np.float64:
            jax.config.update("jax_enable_x64", True)
        self.jax = jax
        self.batch = batch
        self.n = x.shape[0]
        self.full, self.rest = divmod(self.n, batch)
        self.x = jax.device_put(x)
        self.y = jax.device_put(y.astype(np.int32))  # int32 indices work with and without x64
        self.p = tuple(
            (jax.device_put(layer.w), jax.device_put(layer.b)) for layer in params.layers
        )

        loss_fn = mlp_loss(jax)

        def step(p: Any, idx: Any, xs: Any, ys: Any) -> Any:
            g = jax.grad(loss_fn)(p, xs[idx], ys[idx])
            return jax.tree_util.tree_map(lambda q, gq: q - LR * gq, p, g)

        has_rest = self.rest > 0

        def epoch(p: Any, idx_full: Any, idx_rest: Any, xs: Any, ys: Any) -> Any:
            if self.full:
                p, _ = jax.lax.scan(lambda q, idx: (step(q, idx, xs, ys), None), p, idx_full)
            if has_rest:
                p = step(p, idx_rest, xs, ys)
            return p

        order = np.arange(self.n)
        t0 = time.perf_counter()
        lowered = jax.jit(epoch, donate_argnums=0).lower(
            self.p, *self._split(order), self.x, self.y
        )
        self.compiled = lowered.compile()
        self.compile_seconds = time.perf_counter() - t0

    def _split(self, order: IntArray) -> tuple[Any, Any]:
        order = order.astype(np.int32)
        full = order[: self.full * self.batch].reshape(self.full, self.batch)
        return self.jax.device_put(full), self.jax.device_put(order[self.full * self.batch :])

    def epoch(self, order: IntArray) -> None:
        self.p = self.compiled(self.p, *self._split(order), self.x, self.y)
        self.jax.block_until_ready(self.p)

    def params(self) -> MLP:
        return MLP(layers=tuple(Dense(w=np.array(w), b=np.array(b)) for w, b in self.p))
