"""Optimizers as composable gradient transformations, on optax's model.

A transformation is a pair of pure functions, ``init(params) -> state`` and
``update(grads, state, params) -> (updates, new_state)``, with a small typed state record;
``chain`` composes transformations (its state is the tuple of theirs) and
``apply_updates(params, updates)`` adds the updates leaf-wise. The optimizers are chains:

    sgd(lr)                = scale_by_learning_rate(lr)
    momentum(lr, beta)     = chain(trace(beta), scale_by_learning_rate(lr))
    adam(lr, b1, b2, eps)  = chain(scale_by_adam(b1, b2, eps), scale_by_learning_rate(lr))
    adamw(lr, ..., wd)     = chain(scale_by_adam(...), add_decayed_weights(wd),
                                   scale_by_learning_rate(lr))

and L2 regularization as torch.optim.SGD's ``weight_decay`` does it is
``chain(add_decayed_weights(wd), sgd(lr))`` (or ``momentum``). A learning rate is a number
or a schedule, a function of the step count (``step_decay``, ``cosine_decay``).

Each rule is written once, as a ``Rule``: ``rule(inputs, state, params, out) -> (result,
new_state)``. From it come the pure ``update`` (the rule given fresh output buffers) and
the training loop's fast path ``update_into`` (the rule given the gradients' own
buffers), so the two agree bit for bit. A rule

- reads ``inputs``, ``state`` and ``params`` and never writes them, except that ``out``
  may be ``inputs`` itself: it writes a leaf of ``out`` only elementwise and only once it
  has read everything it needs from the same leaf of ``inputs``;
- returns as ``result`` either ``out`` (written) or a tree no one will write: its
  ``inputs`` unchanged, or arrays of its own new state (``trace`` hands its new velocity
  on, and the next rule writes the scaled velocity into ``out`` in one pass);
- builds a new state of new arrays, never holding a buffer of ``inputs`` or ``out``.

Each transformation of this module also describes its maths as a small record, its
``spec`` (``LearningRateSpec``, ``TraceSpec``, ``DecaySpec``, ``AdamSpec``, and
``ChainSpec`` for a chain of transformations that all have one). ``fmlp.fused`` reads it
to run a known chain as one compiled pass per parameter array inside ``fit``, with the
same bits as the rules here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeAlias, TypeVar

import attrs
import numpy as np

from fmlp.checks import (
    expect,
    expect_int,
    expect_real,
    got,
    nonnegative_finite,
    positive_finite,
    unit_interval,
)
from fmlp.params import MLP
from fmlp.tree import static_field, tree_leaves, tree_map, tree_zeros_like
from fmlp.types import FloatArray

S = TypeVar("S")

Schedule: TypeAlias = Callable[[int], float]
"""A learning rate as a function of the step count (0 for the first step)."""


@attrs.frozen
class LearningRateSpec:
    """``scale_by_learning_rate``: x * -schedule(count)."""

    schedule: Schedule


@attrs.frozen
class TraceSpec:
    """``trace``: v = decay v + x; x = v (Nesterov: x + decay v)."""

    decay: float
    nesterov: bool


@attrs.frozen
class DecaySpec:
    """``add_decayed_weights``: x + weight_decay * params."""

    weight_decay: float


@attrs.frozen
class AdamSpec:
    """``scale_by_adam`` with its hyper-parameters."""

    b1: float
    b2: float
    eps: float


@attrs.frozen
class ChainSpec:
    """``chain`` of transformations whose specs are ``parts``, in order."""

    parts: tuple[RuleSpec, ...]


RuleSpec: TypeAlias = LearningRateSpec | TraceSpec | DecaySpec | AdamSpec | ChainSpec
"""What a transformation of this module computes, as data (see ``fmlp.fused``)."""


class Rule(Protocol[S]):
    """One transformation's maths: ``rule(inputs, state, params, out) -> (result, new_state)``
    under the contract in this module's docstring."""

    def __call__(self, inputs: MLP, state: S, params: MLP, out: MLP, /) -> tuple[MLP, S]: ...


def _into(out: MLP, write: Callable[..., object], *trees: MLP) -> MLP:
    """``write(o, *xs)`` for each leaf ``o`` of ``out`` and the matching leaves ``xs`` of
    ``trees``; returns ``out`` itself (no new tree is built on the hot path)."""
    for o, *xs in zip(tree_leaves(out), *(tree_leaves(t) for t in trees), strict=True):
        write(o, *xs)
    return out


def _run(rule: Rule[S], grads: MLP, state: S, params: MLP, out: MLP) -> tuple[MLP, S]:
    """Apply ``rule`` and leave its result in ``out``, which is returned."""
    result, new_state = rule(grads, state, params, out)
    for r, o in zip(tree_leaves(result), tree_leaves(out), strict=True):
        if r is not o:
            np.copyto(o, r)
    return out, new_state


@attrs.frozen
class Optimizer(Generic[S]):
    """A gradient transformation: ``init(params) -> state`` and the pure
    ``update(grads, state, params) -> (updates, new_state)``.

    ``rule`` is the transformation's maths when it has one (every transformation of this
    module does; ``transformation`` builds ``update`` from it). A pair built by hand,
    ``Optimizer(init, update)``, has none and still chains. ``update_into`` is the fast
    path of training loops whose gradients are their own scratch. ``spec`` describes the
    maths as data, for ``fmlp.fused`` (None: not known, so never fused).
    """

    init: Callable[[MLP], S]
    update: Callable[[MLP, S, MLP], tuple[MLP, S]]
    name: str = "optimizer"
    rule: Rule[S] | None = None
    spec: RuleSpec | None = None

    def update_into(self, grads: MLP, state: S, params: MLP) -> tuple[MLP, S]:
        """``update``'s result, bit for bit, written into the buffers of ``grads`` (which
        it returns) instead of new arrays. It never modifies ``state`` or ``params``.
        Without a ``rule`` this is ``update`` itself."""
        if self.rule is None:
            return self.update(grads, state, params)
        return _run(self.rule, grads, state, params, grads)


AnyOptimizer: TypeAlias = Optimizer[Any]
"""An optimizer whose state's type is not known here: a part of a chain, the optimizer
``fmlp.fused.plan`` inspects. (Optimizer is invariant in its state: ``update`` takes it
and ``init`` returns it, so no narrower type accepts them all.)"""


def transformation(
    init: Callable[[MLP], S], rule: Rule[S], name: str, spec: RuleSpec | None = None
) -> Optimizer[S]:
    """The Optimizer of ``rule``: ``update`` runs it into fresh buffers shaped like the
    gradients, ``update_into`` into the gradients' own buffers. ``spec``: the rule's maths
    as data, when it is one of this module's."""

    def update(grads: MLP, state: S, params: MLP) -> tuple[MLP, S]:
        return _run(rule, grads, state, params, tree_map(np.empty_like, grads))

    return Optimizer(init=init, update=update, name=name, rule=rule, spec=spec)


def _rule_of(t: Optimizer[S]) -> Rule[S]:
    """``t``'s rule, or one that calls its pure ``update`` (whose result is its own)."""
    if t.rule is not None:
        return t.rule
    update = t.update

    def rule(inputs: MLP, state: S, params: MLP, out: MLP) -> tuple[MLP, S]:
        return update(inputs, state, params)

    return rule


# ------------------------------------------------------------------ states


@attrs.frozen(eq=False)
class EmptyState:
    """The state of a transformation that keeps none (``add_decayed_weights``)."""


@attrs.frozen(eq=False)
class ScaleByLearningRateState:
    """The number of steps taken, which a schedule turns into the learning rate."""

    count: int = static_field(default=0)


@attrs.frozen(eq=False)
class TraceState:
    """The momentum buffer (velocity) v, shaped like the parameters."""

    trace: MLP


@attrs.frozen(eq=False)
class ScaleByAdamState:
    """Adam's first and second moment estimates and the number of steps taken."""

    mu: MLP
    nu: MLP
    count: int = static_field(default=0)


# ------------------------------------------------------------------ transformations


def chain(*transforms: AnyOptimizer) -> Optimizer[tuple[object, ...]]:
    """Apply ``transforms`` in order, each to the updates of the one before.

    The state is the tuple of their states. ``chain()`` is the identity.
    """
    for i, t in enumerate(transforms):
        expect(t, Optimizer, "chain", f"argument {i + 1}", "an fmlp.Optimizer (e.g. fmlp.sgd(0.1))")
    rules = tuple(_rule_of(t) for t in transforms)

    def init(params: MLP) -> tuple[object, ...]:
        return tuple(t.init(params) for t in transforms)

    def rule(
        inputs: MLP, state: tuple[object, ...], params: MLP, out: MLP
    ) -> tuple[MLP, tuple[object, ...]]:
        if len(state) != len(rules):
            raise TypeError(f"a chain of {len(rules)} takes a tuple of {len(rules)} states")
        new_states = []
        x = inputs
        for r, s in zip(rules, state):
            x, s = r(x, s, params, out)
            new_states.append(s)
        return x, tuple(new_states)

    name = f"chain({', '.join(t.name for t in transforms)})"
    return transformation(init, rule, name, _chain_spec(transforms))


def _chain_spec(transforms: tuple[AnyOptimizer, ...]) -> ChainSpec | None:
    """The spec of a chain: its parts' specs, or None when one of them has none."""
    parts = tuple(t.spec for t in transforms)
    if any(p is None for p in parts):
        return None
    return ChainSpec(parts=tuple(p for p in parts if p is not None))


def _as_schedule(lr: float | Schedule) -> Schedule:
    if callable(lr):
        return lr
    if isinstance(lr, bool) or not isinstance(lr, (int, float, np.integer, np.floating)):
        raise TypeError(
            f"lr (the learning rate) must be a positive number or a schedule (a function of "
            f"the step count, e.g. fmlp.cosine_decay(0.1, total_steps=1000)), got {got(lr)}"
        )
    value = float(lr)
    positive_finite("learning rate", lr, show=str)
    return lambda step: value


def scale_by_learning_rate(lr: float | Schedule) -> Optimizer[ScaleByLearningRateState]:
    """updates = -lr(count) * inputs, ``lr`` a number or a schedule of the step count."""
    schedule = _as_schedule(lr)

    def init(params: MLP) -> ScaleByLearningRateState:
        return ScaleByLearningRateState(count=0)

    def rule(
        inputs: MLP, state: ScaleByLearningRateState, params: MLP, out: MLP
    ) -> tuple[MLP, ScaleByLearningRateState]:
        rate = schedule(state.count)
        result = _into(out, lambda o, x: np.multiply(x, x.dtype.type(-rate), out=o), inputs)
        return result, ScaleByLearningRateState(count=state.count + 1)

    return transformation(init, rule, f"scale_by_learning_rate({lr})", LearningRateSpec(schedule))


def trace(decay: float, *, nesterov: bool = False) -> Optimizer[TraceState]:
    """Momentum: v = decay * v + inputs; updates = v (Nesterov: inputs + decay * v).

    torch.optim.SGD's momentum buffer, with no dampening; v starts at zero.
    """
    expect_real(decay, "trace", "decay (momentum beta)")
    unit_interval("momentum beta", decay, show=str)

    def init(params: MLP) -> TraceState:
        return TraceState(trace=tree_zeros_like(params))

    def velocity(v: FloatArray, g: FloatArray) -> FloatArray:
        new: FloatArray = v * v.dtype.type(decay) + g
        return new

    def nesterov_step(o: FloatArray, v: FloatArray, g: FloatArray) -> None:
        np.add(g, v * v.dtype.type(decay), out=o)

    def rule(inputs: MLP, state: TraceState, params: MLP, out: MLP) -> tuple[MLP, TraceState]:
        v = tree_map(velocity, state.trace, inputs)
        result = _into(out, nesterov_step, v, inputs) if nesterov else v
        return result, TraceState(trace=v)

    name = f"trace({decay}{', nesterov' if nesterov else ''})"
    return transformation(init, rule, name, TraceSpec(decay=decay, nesterov=nesterov))


def add_decayed_weights(weight_decay: float) -> Optimizer[EmptyState]:
    """L2 regularization: updates = inputs + weight_decay * params (the gradient of
    weight_decay / 2 * |params|^2 added to the loss's)."""
    wd = expect_real(weight_decay, "add_decayed_weights", "weight_decay")
    nonnegative_finite("weight_decay", weight_decay, show=str)

    def add(o: FloatArray, x: FloatArray, p: FloatArray) -> None:
        np.add(x, p * p.dtype.type(wd), out=o)

    def init(params: MLP) -> EmptyState:
        return EmptyState()

    def rule(inputs: MLP, state: EmptyState, params: MLP, out: MLP) -> tuple[MLP, EmptyState]:
        return _into(out, add, inputs, params), state

    return transformation(init, rule, f"add_decayed_weights({weight_decay})", DecaySpec(wd))


def scale_by_adam(
    b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> Optimizer[ScaleByAdamState]:
    """Adam's direction, as torch.optim.Adam computes it: at step t = count + 1,
    mu = b1 mu + (1 - b1) g, nu = b2 nu + (1 - b2) g^2 and
    updates = (mu / (1 - b1^t)) / (sqrt(nu) / sqrt(1 - b2^t) + eps)."""
    for label, b in (("b1", b1), ("b2", b2)):
        expect_real(b, "scale_by_adam", label)
        unit_interval(f"adam's {label}", b, show=str)
    expect_real(eps, "scale_by_adam", "eps")
    nonnegative_finite("adam's eps", eps, show=str)

    def init(params: MLP) -> ScaleByAdamState:
        return ScaleByAdamState(mu=tree_zeros_like(params), nu=tree_zeros_like(params), count=0)

    def first(m: FloatArray, g: FloatArray) -> FloatArray:
        t = m.dtype.type
        new: FloatArray = m * t(b1) + g * t(1.0 - b1)
        return new

    def second(v: FloatArray, g: FloatArray) -> FloatArray:
        t = v.dtype.type
        new: FloatArray = v * t(b2) + (g * g) * t(1.0 - b2)
        return new

    def rule(
        inputs: MLP, state: ScaleByAdamState, params: MLP, out: MLP
    ) -> tuple[MLP, ScaleByAdamState]:
        count = state.count + 1
        bias1, bias2_sqrt = adam_bias_corrections(b1, b2, count)

        def direction(o: FloatArray, m: FloatArray, v: FloatArray) -> None:
            t = o.dtype.type
            np.sqrt(v, out=o)
            o /= t(bias2_sqrt)
            o += t(eps)
            np.divide(m, o, out=o)
            o /= t(bias1)

        mu = tree_map(first, state.mu, inputs)
        nu = tree_map(second, state.nu, inputs)  # every read of inputs is done here
        return _into(out, direction, mu, nu), ScaleByAdamState(mu=mu, nu=nu, count=count)

    name = f"scale_by_adam(b1={b1}, b2={b2}, eps={eps})"
    return transformation(init, rule, name, AdamSpec(b1=b1, b2=b2, eps=eps))


def adam_bias_corrections(b1: float, b2: float, count: int) -> tuple[float, float]:
    """Adam's bias corrections at step t = ``count`` (1 for the first step):
    (1 - b1^t, sqrt(1 - b2^t)), in float64."""
    return 1.0 - b1**count, math.sqrt(1.0 - b2**count)


# ------------------------------------------------------------------ optimizers


def sgd(lr: float | Schedule) -> Optimizer[ScaleByLearningRateState]:
    """Stochastic gradient descent: updates = -lr(step) * grads."""
    return attrs.evolve(scale_by_learning_rate(lr), name=f"sgd(lr={lr})")


def momentum(
    lr: float | Schedule, beta: float = 0.9, *, nesterov: bool = False
) -> Optimizer[tuple[object, ...]]:
    """SGD with (heavy-ball or Nesterov) momentum: v = beta v + g; updates = -lr v
    (Nesterov: -lr (g + beta v)). The same convention as torch.optim.SGD.

    ``chain(trace(beta, nesterov=nesterov), scale_by_learning_rate(lr))``: its state is
    ``(TraceState, ScaleByLearningRateState)``.
    """
    name = f"{'nesterov' if nesterov else 'momentum'}(lr={lr}, beta={beta})"
    opt = chain(trace(beta, nesterov=nesterov), scale_by_learning_rate(lr))
    return attrs.evolve(opt, name=name)


def adam(
    lr: float | Schedule, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> Optimizer[tuple[object, ...]]:
    """Adam, as torch.optim.Adam: ``chain(scale_by_adam(b1, b2, eps),
    scale_by_learning_rate(lr))``, state ``(ScaleByAdamState, ScaleByLearningRateState)``."""
    opt = chain(scale_by_adam(b1, b2, eps), scale_by_learning_rate(lr))
    return attrs.evolve(opt, name=f"adam(lr={lr}, b1={b1}, b2={b2}, eps={eps})")


def adamw(
    lr: float | Schedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.01,
) -> Optimizer[tuple[object, ...]]:
    """Adam with decoupled weight decay, as torch.optim.AdamW: p <- p - lr wd p - lr adam.

    ``chain(scale_by_adam(b1, b2, eps), add_decayed_weights(weight_decay),
    scale_by_learning_rate(lr))``: the decay is added after Adam's scaling, so it is not
    divided by sqrt(nu) (unlike ``chain(add_decayed_weights(wd), adam(lr))``, which is
    torch.optim.Adam's L2 ``weight_decay``).
    """
    opt = chain(
        scale_by_adam(b1, b2, eps), add_decayed_weights(weight_decay), scale_by_learning_rate(lr)
    )
    name = f"adamw(lr={lr}, b1={b1}, b2={b2}, eps={eps}, weight_decay={weight_decay})"
    return attrs.evolve(opt, name=name)


def apply_updates(params: MLP, updates: MLP, *, donate: bool = False) -> MLP:
    """params + updates, leaf-wise. With ``donate=True`` the sum is written into the
    parameters' own buffers, so the caller must not use ``params`` afterwards."""
    if donate:
        for p, u in zip(tree_leaves(params), tree_leaves(updates), strict=True):
            np.add(p, u, out=p)
        return params
    return tree_map(np.add, params, updates)


# ------------------------------------------------------------------ schedules


def step_decay(lr: float, *, every: int, factor: float = 0.5) -> Schedule:
    """lr * factor ** (step // every): a piecewise constant schedule."""
    expect_real(lr, "step_decay", "lr")
    expect_real(factor, "step_decay", "factor")
    if expect_int(every, "step_decay", "every") <= 0:
        raise ValueError(f"step_decay needs every > 0, got {every}")
    return lambda step: lr * factor ** (step // every)


def cosine_decay(lr: float, *, total_steps: int, floor: float = 0.0) -> Schedule:
    """floor + (lr - floor) (1 + cos(pi t / T)) / 2, constant at floor after T steps."""
    expect_real(lr, "cosine_decay", "lr")
    expect_real(floor, "cosine_decay", "floor")
    if expect_int(total_steps, "cosine_decay", "total_steps") <= 0:
        raise ValueError(f"cosine_decay needs total_steps > 0, got {total_steps}")
    return lambda step: (
        floor
        + (lr - floor) * 0.5 * (1 + float(np.cos(np.pi * min(step, total_steps) / total_steps)))
    )
