"""One-pass optimizer updates: a known chain of ``fmlp.optim`` applied to each parameter
array in a single compiled loop that reads the parameters, the gradient and the state
once and writes the parameters and the state once, with the bits of the numpy path.

``plan(optimizer)`` reads the optimizer's ``spec`` and returns a ``FusedUpdate`` when the
chain has the shape the kernels implement, else None:

    [add_decayed_weights]  [trace (heavy-ball or Nesterov) | scale_by_adam]
    [add_decayed_weights]  scale_by_learning_rate

(each bracket optional, chains nested in any way), followed by ``apply_updates``. That
covers ``sgd``, ``momentum``, ``adam``, ``adamw`` and their L2-regularized forms
``chain(add_decayed_weights(wd), ...)``, with any schedule. Other chains, optimizers
built by hand and anything without numba (or with ``FMLP_FUSED=0``, see
``fmlp.kernels``) run the numpy rules.

The update writes the parameters and the optimizer state in place, so only a loop that
owns both may use it: ``make_step(..., donate=True)``, which ``fit``, ``resume`` and
``train_epoch`` call on private copies. ``Optimizer.update`` stays pure.

Same bits means every bit of every finite or infinite result; where a NaN arises from two
NaN operands, which NaN comes out is left open by IEEE 754 (see ``fmlp._numba_kernels``),
and the next step's loss is then not finite, so the fit stops updating there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar, cast

import attrs
import numpy as np

from fmlp import blas, kernels
from fmlp.activations import get_activation
from fmlp.optim import (
    AdamSpec,
    AnyOptimizer,
    ChainSpec,
    DecaySpec,
    LearningRateSpec,
    RuleSpec,
    ScaleByAdamState,
    ScaleByLearningRateState,
    TraceSpec,
    TraceState,
    adam_bias_corrections,
)
from fmlp.params import MLP
from fmlp.types import FloatArray

S = TypeVar("S")

Primitive = LearningRateSpec | TraceSpec | DecaySpec | AdamSpec


def _leaves(tree: MLP) -> list[FloatArray]:
    """An MLP's arrays in ``tree_leaves``'s order (w, b of each layer), read directly:
    this runs on every training step."""
    if not isinstance(tree, MLP):
        raise TypeError(f"expected an MLP, got {type(tree).__name__}")
    return [a for layer in tree.layers for a in (layer.w, layer.b)]


def _flatten_spec(spec: RuleSpec) -> list[Primitive]:
    if isinstance(spec, ChainSpec):
        return [p for part in spec.parts for p in _flatten_spec(part)]
    return [spec]


def _flatten_state(spec: RuleSpec, state: object, out: list[object]) -> None:
    """The primitive states of ``state`` (shaped as ``spec`` says) into ``out``, in order."""
    if isinstance(spec, ChainSpec):
        if not isinstance(state, tuple) or len(state) != len(spec.parts):
            raise TypeError(
                f"a chain of {len(spec.parts)} takes a tuple of {len(spec.parts)} states"
            )
        for part, s in zip(spec.parts, state):
            _flatten_state(part, s, out)
    else:
        out.append(state)


def _rebuild_state(spec: RuleSpec, new: list[object], at: list[int]) -> object:
    """``state``'s structure with the primitive states taken from ``new`` in order."""
    if isinstance(spec, ChainSpec):
        return tuple(_rebuild_state(part, new, at) for part in spec.parts)
    i = at[0]
    at[0] += 1
    return new[i]


@attrs.frozen
class FusedUpdate:
    """A chain matched to the kernels: optional L2 term before the core rule, the core
    rule (None, ``TraceSpec`` or ``AdamSpec``), optional decoupled decay after it, the
    learning rate; ``spec`` is the whole chain, which shapes its state."""

    spec: RuleSpec
    pre: DecaySpec | None
    core: TraceSpec | AdamSpec | None
    post: DecaySpec | None
    lr: LearningRateSpec
    lr_index: int
    core_index: int | None

    def step(self, params: MLP, grads: MLP, state: S) -> S | None:
        """Write ``params + update`` into ``params`` and the new moments into the state's
        own buffers; return the new state (new records around the same arrays). ``grads``
        is read only. Returns None, having written nothing, when the arrays do not fit
        the kernels (not C-contiguous, not all of the parameters' float dtype, or read-only
        where they would be written)."""
        k = kernels.module()
        if k is None:
            return None
        # the primitive states, in the order of _flatten_spec
        prims: list[object] = []
        _flatten_state(self.spec, state, prims)
        lr_state = prims[self.lr_index]
        core_state = prims[self.core_index] if self.core_index is not None else None
        if not isinstance(lr_state, ScaleByLearningRateState):
            raise TypeError(f"expected a ScaleByLearningRateState, got {type(lr_state).__name__}")
        p_leaves = _leaves(params)
        g_leaves = _leaves(grads)
        dtype = params.dtype
        if isinstance(self.core, TraceSpec):
            if not isinstance(core_state, TraceState):
                raise TypeError(f"expected a TraceState, got {type(core_state).__name__}")
            extra = [_leaves(core_state.trace)]
        elif isinstance(self.core, AdamSpec):
            if not isinstance(core_state, ScaleByAdamState):
                raise TypeError(f"expected a ScaleByAdamState, got {type(core_state).__name__}")
            extra = [_leaves(core_state.mu), _leaves(core_state.nu)]
        else:
            extra = []
        if len(g_leaves) != len(p_leaves) or any(len(e) != len(p_leaves) for e in extra):
            raise TypeError("the gradients and the optimizer state do not match the parameters")
        for i, p in enumerate(p_leaves):
            arrays = [p, *(e[i] for e in extra), g_leaves[i]]  # the gradient is only read
            if not all(a.shape == p.shape for a in arrays):
                return None
            if not kernels.fits(dtype, *arrays, written=len(arrays) - 1):
                return None
        t = dtype.type
        rate = self.lr.schedule(lr_state.count)
        neg_rate = t(-rate)
        has_pre, has_post = self.pre is not None, self.post is not None
        pre_wd = t(self.pre.weight_decay if self.pre is not None else 0.0)
        post_wd = t(self.post.weight_decay if self.post is not None else 0.0)
        flat = [[a.reshape(-1) for a in leaves] for leaves in (p_leaves, g_leaves, *extra)]
        new_core: object = None
        if isinstance(self.core, AdamSpec):
            assert isinstance(core_state, ScaleByAdamState)
            a = self.core
            count = core_state.count + 1
            bias1, bias2_sqrt = adam_bias_corrections(a.b1, a.b2, count)
            consts = (
                t(a.b1),
                t(1.0 - a.b1),
                t(a.b2),
                t(1.0 - a.b2),
                t(bias2_sqrt),
                t(a.eps),
                t(bias1),
            )
            for p, g, m, v in zip(*flat):
                k.adam_update(p, g, m, v, *consts, pre_wd, has_pre, post_wd, has_post, neg_rate)
            new_core = ScaleByAdamState(mu=core_state.mu, nu=core_state.nu, count=count)
        elif isinstance(self.core, TraceSpec):
            assert isinstance(core_state, TraceState)
            decay, nesterov = t(self.core.decay), self.core.nesterov
            for p, g, v in zip(*flat):
                k.trace_update(
                    p, g, v, decay, nesterov, pre_wd, has_pre, post_wd, has_post, neg_rate
                )
            new_core = TraceState(trace=core_state.trace)
        else:
            for p, g in zip(*flat):
                k.sgd_update(p, g, pre_wd, has_pre, post_wd, has_post, neg_rate)
        prims[self.lr_index] = ScaleByLearningRateState(count=lr_state.count + 1)
        if self.core_index is not None:
            prims[self.core_index] = new_core
        return cast(S, _rebuild_state(self.spec, prims, [0]))

    def sgd_in_gemm(
        self, params: MLP, activations: Sequence[FloatArray], dlogits: FloatArray, state: S
    ) -> S | None:
        """The backward pass and a plain SGD step in one: each layer's weights are updated
        inside the product that would have made their gradient (``fmlp.blas``:
        ``W <- (1 - lr wd) W - lr a^T dz``, no gradient buffer), its bias by the rule
        itself, and dz is carried down with the weights as they were. ``activations`` and
        ``dlogits`` are as ``fmlp.model.backprop`` takes them; ``dlogits`` is read only.

        The weights may differ from the unfused step's in the last bit (the gradient is
        not rounded before it is scaled and added); the biases, the state and everything
        else are the unfused step's. Returns None, having written nothing, when the chain
        is not plain SGD (with at most one decay term), numpy's BLAS is not available, or
        the arrays do not fit (C-contiguous, one float dtype, the parameters writeable).
        """
        if self.core is not None or not blas.available():
            return None
        prims: list[object] = []
        _flatten_state(self.spec, state, prims)
        lr_state = prims[self.lr_index]
        if not isinstance(lr_state, ScaleByLearningRateState):
            raise TypeError(f"expected a ScaleByLearningRateState, got {type(lr_state).__name__}")
        dtype = params.dtype
        layers = params.layers
        if len(activations) != len(layers) or not kernels.fits(dtype, dlogits):
            return None
        for layer, a in zip(layers, activations, strict=True):
            if not kernels.fits(dtype, layer.w, layer.b, a, written=2):
                return None
        t = dtype.type
        rate = self.lr.schedule(lr_state.count)
        pre_wd = self.pre.weight_decay if self.pre is not None else 0.0
        post_wd = self.post.weight_decay if self.post is not None else 0.0
        has_pre, has_post = self.pre is not None, self.post is not None
        neg_rate = t(-rate)
        alpha, beta = -rate, 1.0 - rate * (pre_wd + post_wd)
        act = get_activation(params.activation)
        relu = act.name == "relu"
        k = kernels.module()
        g = dlogits
        for l in range(len(layers) - 1, -1, -1):
            w, b, a_prev = layers[l].w, layers[l].b, activations[l]
            db = g.sum(axis=0)
            below = g @ w.T if l else None  # with the weights as they were
            if not blas.gemm_at_b(w, a_prev, g, alpha=alpha, beta=beta):
                raise RuntimeError("numpy's BLAS refused a product it was checked for")
            if k is not None:
                k.sgd_update(b, db, t(pre_wd), has_pre, t(post_wd), has_post, neg_rate)
            else:  # the rule's own arithmetic, as the kernel does it
                x = db
                if has_pre:
                    x = x + b * t(pre_wd)
                if has_post:
                    x = x + b * t(post_wd)
                np.add(b, x * neg_rate, out=b)
            if below is not None:
                g = below
                if not (relu and kernels.relu_backprop_(g, a_prev)):
                    act.backprop_inplace(g, a_prev)
        prims[self.lr_index] = ScaleByLearningRateState(count=lr_state.count + 1)
        return cast(S, _rebuild_state(self.spec, prims, [0]))


def match(spec: RuleSpec) -> FusedUpdate | None:
    """The FusedUpdate of a chain of this shape, else None (see the module docstring)."""
    prims = _flatten_spec(spec)
    if not prims or not isinstance(prims[-1], LearningRateSpec):
        return None
    lr = prims[-1]
    pre: DecaySpec | None = None
    core: TraceSpec | AdamSpec | None = None
    post: DecaySpec | None = None
    for p in prims[:-1]:
        if isinstance(p, DecaySpec):
            if core is None and pre is None and post is None:
                pre = p
            elif post is None and (core is not None or pre is not None):
                post = p
            else:
                return None
        elif isinstance(p, TraceSpec | AdamSpec):
            if core is not None or post is not None:
                return None
            core = p
        else:
            return None  # a second learning rate
    return FusedUpdate(
        spec=spec,
        pre=pre,
        core=core,
        post=post,
        lr=lr,
        lr_index=len(prims) - 1,
        core_index=next((i for i, p in enumerate(prims) if p is core), None),
    )


def plan(optimizer: AnyOptimizer) -> FusedUpdate | None:
    """How ``make_step`` runs ``optimizer`` in one pass per parameter array, or None when
    it cannot (the kernels are not enabled, or the chain is not of a known shape)."""
    if optimizer.spec is None or not kernels.enabled():
        return None
    return match(optimizer.spec)
