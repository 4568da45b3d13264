"""Elementwise activations, each beside its derivative.

``f(z)`` is the activation of the pre-activation ``z``; ``f_grad(z)`` is df/dz at ``z``;
``f_grad_from_output(a)`` is the same derivative written in terms of ``a = f(z)``,
which is what backpropagation keeps in its cache. ``f_`` applies ``f`` in place and
``f_backprop_(g, a)`` multiplies an upstream gradient ``g`` by ``f'(z)`` in place, given
``a = f(z)``: the two in-place forms the training loop uses, each equal bit for bit to
its out-of-place counterpart.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import attrs
import numpy as np

from fmlp.types import ACTIVATION_NAMES, ActivationName, ArrayFn, FloatArray


def relu(z: FloatArray) -> FloatArray:
    """max(z, 0)."""
    return np.maximum(z, z.dtype.type(0))


def relu_(z: FloatArray) -> None:
    """relu in place."""
    np.maximum(z, z.dtype.type(0), out=z)


def relu_grad(z: FloatArray) -> FloatArray:
    """1 where z > 0, else 0 (the subgradient 0 is taken at the kink z = 0)."""
    return (z > 0).astype(z.dtype)


def relu_grad_from_output(a: FloatArray) -> FloatArray:
    """relu'(z) from a = relu(z): 1 where a > 0."""
    return (a > 0).astype(a.dtype)


def relu_backprop_(g: FloatArray, a: FloatArray) -> None:
    """g *= relu'(z) in place, from a = relu(z): multiplying by the boolean mask a > 0
    skips the float copy of the mask that ``relu_grad_from_output`` makes."""
    np.multiply(g, a > 0, out=g)


def tanh(z: FloatArray) -> FloatArray:
    """tanh(z)."""
    return np.tanh(z)


def tanh_(z: FloatArray) -> None:
    """tanh in place."""
    np.tanh(z, out=z)


def tanh_grad(z: FloatArray) -> FloatArray:
    """1 - tanh(z)^2."""
    return tanh_grad_from_output(np.tanh(z))


def tanh_grad_from_output(a: FloatArray) -> FloatArray:
    """1 - a^2 for a = tanh(z)."""
    return a.dtype.type(1) - a * a


def tanh_backprop_(g: FloatArray, a: FloatArray) -> None:
    """g *= 1 - a^2 in place, for a = tanh(z)."""
    g *= tanh_grad_from_output(a)


def sigmoid(z: FloatArray) -> FloatArray:
    """1 / (1 + exp(-z)), computed as (1 + tanh(z / 2)) / 2, which never overflows."""
    half = z.dtype.type(0.5)
    return half + half * np.tanh(half * z)


def sigmoid_(z: FloatArray) -> None:
    """sigmoid in place."""
    half = z.dtype.type(0.5)
    z *= half
    np.tanh(z, out=z)
    z *= half
    z += half


def sigmoid_grad(z: FloatArray) -> FloatArray:
    """s(z) (1 - s(z))."""
    return sigmoid_grad_from_output(sigmoid(z))


def sigmoid_grad_from_output(a: FloatArray) -> FloatArray:
    """a (1 - a) for a = sigmoid(z)."""
    return a * (a.dtype.type(1) - a)


def sigmoid_backprop_(g: FloatArray, a: FloatArray) -> None:
    """g *= a (1 - a) in place, for a = sigmoid(z)."""
    g *= sigmoid_grad_from_output(a)


@attrs.frozen
class Activation:
    """An activation's function, its derivative in both forms, and their in-place forms.

    ``inplace(z)`` overwrites z with f(z); ``backprop_inplace(g, a)`` overwrites g with
    g * f'(z) given a = f(z) (the step of backpropagation through the activation).
    """

    name: ActivationName
    fn: ArrayFn
    grad: ArrayFn
    grad_from_output: ArrayFn
    inplace: Callable[[FloatArray], None]
    backprop_inplace: Callable[[FloatArray, FloatArray], None]


ACTIVATIONS: Final[dict[str, Activation]] = {
    "relu": Activation("relu", relu, relu_grad, relu_grad_from_output, relu_, relu_backprop_),
    "tanh": Activation("tanh", tanh, tanh_grad, tanh_grad_from_output, tanh_, tanh_backprop_),
    "sigmoid": Activation(
        "sigmoid", sigmoid, sigmoid_grad, sigmoid_grad_from_output, sigmoid_, sigmoid_backprop_
    ),
}


def get_activation(name: str) -> Activation:
    """The activation called ``name``; ValueError listing the known names otherwise."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}: expected one of {', '.join(ACTIVATION_NAMES)}"
        ) from None
