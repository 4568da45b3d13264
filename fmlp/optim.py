"""Optimizers as pairs of pure functions ``(init, update)`` with a typed state record.

``update(grads, state, params) -> (updates, new_state)``; ``apply_updates(params, updates)``
adds the updates leaf-wise. An SGD step is ``params - lr * grads``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeAlias, TypeVar

import attrs
import numpy as np

from fmlp.params import MLP
from fmlp.tree import static_field, tree_leaves, tree_map, tree_zeros_like

S = TypeVar("S")

Schedule: TypeAlias = Callable[[int], float]
"""A learning rate as a function of the step count (0 for the first step)."""


@attrs.frozen
class Optimizer(Generic[S]):
    """A pair of pure functions: ``init(params) -> state``, ``update(grads, state, params)``.

    ``update_into`` is an optional fast path for training loops whose gradients are
    their own scratch: the same result as ``update``, bit for bit, but written into
    the buffers of ``grads`` (which it returns) instead of new arrays. It never
    modifies ``state`` or ``params``. Without it, loops call ``update``.
    """

    init: Callable[[MLP], S]
    update: Callable[[MLP, S, MLP], tuple[MLP, S]]
    name: str = "optimizer"
    update_into: Callable[[MLP, S, MLP], tuple[MLP, S]] | None = None


@attrs.frozen(eq=False)
class SgdState:
    """Plain SGD keeps only the number of steps taken."""

    count: int = static_field(default=0)


@attrs.frozen(eq=False)
class MomentumState:
    """SGD with momentum keeps a velocity shaped like the parameters."""

    velocity: MLP
    count: int = static_field(default=0)


def _as_schedule(lr: float | Schedule) -> Schedule:
    if callable(lr):
        return lr
    value = float(lr)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"learning rate must be a positive finite number, got {lr}")
    return lambda step: value


def sgd(lr: float | Schedule) -> Optimizer[SgdState]:
    """Stochastic gradient descent: updates = -lr(step) * grads."""
    schedule = _as_schedule(lr)

    def init(params: MLP) -> SgdState:
        return SgdState(count=0)

    def update(grads: MLP, state: SgdState, params: MLP) -> tuple[MLP, SgdState]:
        rate = schedule(state.count)
        return tree_map(lambda g: g * g.dtype.type(-rate), grads), SgdState(count=state.count + 1)

    def update_into(grads: MLP, state: SgdState, params: MLP) -> tuple[MLP, SgdState]:
        rate = schedule(state.count)
        for g in tree_leaves(grads):
            np.multiply(g, g.dtype.type(-rate), out=g)
        return grads, SgdState(count=state.count + 1)

    return Optimizer(init=init, update=update, name=f"sgd(lr={lr})", update_into=update_into)


def momentum(
    lr: float | Schedule, beta: float = 0.9, *, nesterov: bool = False
) -> Optimizer[MomentumState]:
    """SGD with (heavy-ball or Nesterov) momentum: v = beta v + g; updates = -lr v
    (Nesterov: -lr (g + beta v)). The same convention as torch.optim.SGD."""
    schedule = _as_schedule(lr)
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"momentum beta must lie in [0, 1), got {beta}")

    def init(params: MLP) -> MomentumState:
        return MomentumState(velocity=tree_zeros_like(params), count=0)

    def update(grads: MLP, state: MomentumState, params: MLP) -> tuple[MLP, MomentumState]:
        rate = schedule(state.count)
        velocity = tree_map(lambda v, g: v * v.dtype.type(beta) + g, state.velocity, grads)
        if nesterov:
            step = tree_map(
                lambda v, g: (g + v * v.dtype.type(beta)) * g.dtype.type(-rate), velocity, grads
            )
        else:
            step = tree_map(lambda v: v * v.dtype.type(-rate), velocity)
        return step, MomentumState(velocity=velocity, count=state.count + 1)

    def update_into(grads: MLP, state: MomentumState, params: MLP) -> tuple[MLP, MomentumState]:
        rate = schedule(state.count)
        velocity = tree_map(lambda v, g: v * v.dtype.type(beta) + g, state.velocity, grads)
        for v, g in zip(tree_leaves(velocity), tree_leaves(grads), strict=True):
            if nesterov:
                g += v * v.dtype.type(beta)
                g *= g.dtype.type(-rate)
            else:
                np.multiply(v, v.dtype.type(-rate), out=g)
        return grads, MomentumState(velocity=velocity, count=state.count + 1)

    name = f"{'nesterov' if nesterov else 'momentum'}(lr={lr}, beta={beta})"
    return Optimizer(init=init, update=update, name=name, update_into=update_into)


def apply_updates(params: MLP, updates: MLP, *, donate: bool = False) -> MLP:
    """params + updates, leaf-wise. With ``donate=True`` the sum is written into the
    parameters' own buffers, so the caller must not use ``params`` afterwards."""
    if donate:
        for p, u in zip(tree_leaves(params), tree_leaves(updates), strict=True):
            np.add(p, u, out=p)
        return params
    return tree_map(np.add, params, updates)


def step_decay(lr: float, *, every: int, factor: float = 0.5) -> Schedule:
    """lr * factor ** (step // every): a piecewise constant schedule."""
    if every <= 0:
        raise ValueError(f"step_decay needs every > 0, got {every}")
    return lambda step: lr * factor ** (step // every)


def cosine_decay(lr: float, *, total_steps: int, floor: float = 0.0) -> Schedule:
    """floor + (lr - floor) (1 + cos(pi t / T)) / 2, constant at floor after T steps."""
    if total_steps <= 0:
        raise ValueError(f"cosine_decay needs total_steps > 0, got {total_steps}")
    return lambda step: (
        floor
        + (lr - floor) * 0.5 * (1 + float(np.cos(np.pi * min(step, total_steps) / total_steps)))
    )
