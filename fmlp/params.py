"""Parameter records (``Dense``, ``MLP``) and their initialization schemes."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence

import attrs
import numpy as np
from numpy.typing import DTypeLike

from fmlp.checks import expect, got, invalid
from fmlp.tree import STATIC
from fmlp.types import (
    SCHEME_NAMES,
    ActivationName,
    FloatArray,
    Floating,
    SchemeName,
    Seed,
    check_activation,
    check_dtype,
    is_int,
)


@attrs.frozen(eq=False)
class Dense:
    """One affine layer ``z = a @ w + b``.

    w: (fan_in, fan_out); b: (fan_out,).
    """

    w: FloatArray
    b: FloatArray

    @property
    def fan_in(self) -> int:
        return int(self.w.shape[0])

    @property
    def fan_out(self) -> int:
        return int(self.w.shape[1])


@attrs.frozen(eq=False)
class MLP:
    """A multilayer perceptron: affine ``layers`` with ``activation`` between them.

    The hidden layers apply ``activation``; the last layer gives logits, turned into
    class probabilities by a softmax. ``activation`` is static configuration.
    """

    layers: tuple[Dense, ...]
    activation: ActivationName = attrs.field(default="relu", metadata=STATIC)

    def __attrs_post_init__(self) -> None:
        if not self.layers:
            raise ValueError("an MLP needs at least one layer")
        check_activation(self.activation)
        dtype = self.layers[0].w.dtype
        for i, layer in enumerate(self.layers):
            if layer.w.ndim != 2 or layer.b.shape != (layer.w.shape[1],):
                raise ValueError(
                    f"layer {i}: w must be (fan_in, fan_out) and b (fan_out,), "
                    f"got w {layer.w.shape} and b {layer.b.shape}"
                )
            if layer.w.dtype != dtype or layer.b.dtype != dtype:
                raise TypeError(
                    f"layer {i}: all parameters must share one dtype ({dtype}), "
                    f"got w {layer.w.dtype} and b {layer.b.dtype}"
                )
            if i and layer.w.shape[0] != self.layers[i - 1].w.shape[1]:
                raise ValueError(
                    f"layer {i} takes {layer.w.shape[0]} inputs but layer {i - 1} "
                    f"gives {self.layers[i - 1].w.shape[1]}"
                )

    @property
    def sizes(self) -> tuple[int, ...]:
        """Widths from input to output, e.g. (784, 512, 512, 10)."""
        return (self.layers[0].fan_in, *(layer.fan_out for layer in self.layers))

    @property
    def dtype(self) -> np.dtype[Floating]:
        return self.layers[0].w.dtype


def n_params(params: MLP) -> int:
    """Number of weights and biases; 784-512-512-10 has 669,706."""
    expect(params, MLP, "n_params", "params", "an fmlp.MLP (made by fmlp.init)")
    return sum(layer.w.size + layer.b.size for layer in params.layers)


def count_params(sizes: Sequence[int]) -> int:
    """Number of weights and biases of an MLP of widths ``sizes``, without building it."""
    check_sizes(sizes)
    return sum((a + 1) * b for a, b in itertools.pairwise(sizes))


def check_sizes(sizes: Sequence[int]) -> tuple[int, ...]:
    """Validate layer widths: at least input and output, all positive integers."""
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Iterable):
        raise TypeError(
            f"sizes must be a sequence of layer widths, e.g. (784, 512, 512, 10); got {got(sizes)}"
        )
    sizes = tuple(sizes)
    if len(sizes) < 2:
        raise ValueError(
            "sizes must list at least the input and output widths, "
            f"e.g. (784, 512, 512, 10); got {sizes}"
        )
    for s in sizes:
        if not is_int(s) or s <= 0:
            raise invalid("every width", sizes, must="be a positive integer", show=str)
    return tuple(int(s) for s in sizes)


def as_generator(seed: Seed) -> np.random.Generator:
    """An explicit Generator from an int seed, or the given Generator itself."""
    if isinstance(seed, np.random.Generator):
        return seed
    if not is_int(seed):
        raise TypeError(f"seed must be an int or a numpy Generator, got {type(seed).__name__}")
    return np.random.default_rng(int(seed))


def init_weight(
    scheme: SchemeName, fan_in: int, fan_out: int, rng: np.random.Generator, dtype: DTypeLike
) -> FloatArray:
    """One weight matrix (fan_in, fan_out) drawn by ``scheme``.

    zero: all 0. normal: N(0, 1). glorot: U(-d, d), d = sqrt(6 / (fan_in + fan_out)).
    he: N(0, 2 / fan_in).
    """
    shape = (fan_in, fan_out)
    if scheme == "zero":
        w = np.zeros(shape)
    elif scheme == "normal":
        w = rng.standard_normal(shape)
    elif scheme == "glorot":
        d = math.sqrt(6.0 / (fan_in + fan_out))
        w = rng.uniform(-d, d, shape)
    elif scheme == "he":
        w = rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)
    else:
        raise ValueError(
            f"unknown init scheme {scheme!r}: expected one of {', '.join(SCHEME_NAMES)}"
        )
    return np.ascontiguousarray(w, dtype=dtype)


def init(
    sizes: Sequence[int],
    *,
    scheme: SchemeName = "glorot",
    activation: ActivationName = "relu",
    seed: Seed,
    dtype: DTypeLike = np.float64,
) -> MLP:
    """A new MLP with widths ``sizes`` (input, hidden..., classes), biases zero.

    Weights are drawn layer by layer from ``seed`` (an int or a numpy Generator); the
    draws are made in float64 and cast, so float32 and float64 models of one seed match.
    """
    sizes = check_sizes(sizes)
    if scheme not in SCHEME_NAMES:
        raise ValueError(
            f"unknown init scheme {scheme!r}: expected one of {', '.join(SCHEME_NAMES)}"
        )
    act = check_activation(activation)
    dt = check_dtype(dtype)
    rng = as_generator(seed)
    layers = tuple(
        Dense(w=init_weight(scheme, a, b, rng, dt), b=np.zeros(b, dtype=dt))
        for a, b in itertools.pairwise(sizes)
    )
    return MLP(layers=layers, activation=act)
