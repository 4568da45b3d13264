"""The CNN of the CNN study, described without torch: a small record of the network, its
parameter count layer by layer, and the fully connected width that brings that count to
a target (the MLP's).

The network is ``conv -> maxpool -> ReLU`` blocks (the same function as ``conv -> ReLU
-> maxpool``, cheaper), then a flatten, one hidden fully connected layer with ReLU, and
the 10-way output layer. Dropout, when asked for, sits before the hidden and before the
output layer (``dropout``), and after each conv block (``conv_dropout``). The torch
module built from this record lives in ``net`` (imported only by the runs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final, Literal

import attrs

from fmlp.checks import positive_int
from fmlp.types import is_int

__all__ = [
    "DEFAULT_BLOCKS",
    "QUICK_BLOCKS",
    "CNNSpec",
    "ConvBlock",
    "Layer",
    "count_params",
    "describe",
    "fc_width_for",
    "feature_shape",
    "layer_table",
    "match_params",
]


def _positive_int(name: str, value: object) -> int:
    return positive_int(name, value)


@attrs.frozen
class ConvBlock:
    """One ``Conv2d(k x k, padding) -> MaxPool2d(pool) -> ReLU`` block (pool 1: none)."""

    channels: int
    kernel: int = 5
    padding: int = 0
    pool: int = 2

    def __attrs_post_init__(self) -> None:
        _positive_int("conv channels", self.channels)
        _positive_int("conv kernel", self.kernel)
        _positive_int("pool size", self.pool)
        if not is_int(self.padding) or self.padding < 0:
            raise ValueError(f"conv padding must be a non-negative integer, got {self.padding!r}")


DEFAULT_BLOCKS: Final = (ConvBlock(16, kernel=5), ConvBlock(32, kernel=5))
"""conv5x5(1->16)+pool2 -> ReLU -> conv5x5(16->32)+pool2 -> ReLU: 512 features."""
QUICK_BLOCKS: Final = (ConvBlock(4, kernel=5), ConvBlock(8, kernel=5))
"""The smoke run's smaller convolutions (the same shapes, fewer channels)."""


@attrs.frozen
class CNNSpec:
    """A whole CNN: conv blocks, a hidden FC layer of width ``fc``, ``n_classes`` outputs.

    ``dropout``: probability on the FC layers' inputs (0: none). ``conv_dropout``: after
    each conv block. Inputs are (N, ``in_channels``, ``image_size``, ``image_size``).
    """

    blocks: tuple[ConvBlock, ...]
    fc: int
    dropout: float = 0.0
    conv_dropout: float = 0.0
    in_channels: int = 1
    image_size: int = 28
    n_classes: int = 10

    def __attrs_post_init__(self) -> None:
        if not self.blocks:
            raise ValueError("a CNNSpec needs at least one conv block")
        _positive_int("fc width", self.fc)
        _positive_int("in_channels", self.in_channels)
        _positive_int("image_size", self.image_size)
        _positive_int("n_classes", self.n_classes)
        for name, p in (("dropout", self.dropout), ("conv_dropout", self.conv_dropout)):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1), got {p!r}")
        feature_shape(self)  # raises when the image shrinks to nothing

    @property
    def regularized(self) -> bool:
        return self.dropout > 0 or self.conv_dropout > 0


LayerKind = Literal["Conv2d", "MaxPool2d", "ReLU", "Dropout", "Flatten", "Linear"]


@attrs.frozen
class Layer:
    """One row of the layer table: its name and kind, kernel (conv and pool), input and
    output channels or widths (conv and linear), dropout probability, output shape
    (C, H, W) or (features,), and parameters (weights + biases)."""

    name: str
    kind: LayerKind
    output_shape: tuple[int, ...]
    params: int = 0
    kernel: int | None = None
    padding: int | None = None
    stride: int | None = None
    n_in: int | None = None
    n_out: int | None = None
    p: float | None = None


def _block_sizes(spec: CNNSpec) -> list[tuple[int, int]]:
    """(size after conv, size after pool) per block."""
    out = []
    size = spec.image_size
    for i, b in enumerate(spec.blocks):
        conv = size + 2 * b.padding - b.kernel + 1
        if conv <= 0:
            raise ValueError(
                f"conv block {i} ({b.kernel}x{b.kernel}, padding {b.padding}) does not fit a "
                f"{size}x{size} input: use a smaller kernel, more padding or fewer blocks"
            )
        pooled = conv // b.pool
        if pooled <= 0:
            raise ValueError(f"pool {b.pool} of block {i} does not fit its {conv}x{conv} input")
        out.append((conv, pooled))
        size = pooled
    return out


def feature_shape(spec: CNNSpec) -> tuple[int, int, int]:
    """(channels, height, width) entering the flatten."""
    size = _block_sizes(spec)[-1][1]
    return spec.blocks[-1].channels, size, size


def layer_table(spec: CNNSpec) -> tuple[Layer, ...]:
    """The network layer by layer, in the order ``net.build_cnn`` builds it."""
    rows: list[Layer] = []
    c_in = spec.in_channels
    for i, (b, (conv, pooled)) in enumerate(zip(spec.blocks, _block_sizes(spec)), start=1):
        rows.append(
            Layer(
                name=f"conv{i}",
                kind="Conv2d",
                kernel=b.kernel,
                padding=b.padding,
                stride=1,
                n_in=c_in,
                n_out=b.channels,
                output_shape=(b.channels, conv, conv),
                params=(c_in * b.kernel * b.kernel + 1) * b.channels,
            )
        )
        shape = (b.channels, pooled, pooled)
        if b.pool > 1:
            rows.append(
                Layer(
                    name=f"pool{i}",
                    kind="MaxPool2d",
                    kernel=b.pool,
                    stride=b.pool,
                    output_shape=shape,
                )
            )
        rows.append(Layer(name=f"relu{i}", kind="ReLU", output_shape=shape))
        if spec.conv_dropout > 0:
            rows.append(
                Layer(
                    name=f"dropout_conv{i}", kind="Dropout", p=spec.conv_dropout, output_shape=shape
                )
            )
        c_in = b.channels
    c, h, w = feature_shape(spec)
    flat = c * h * w
    rows.append(Layer(name="flatten", kind="Flatten", output_shape=(flat,)))
    if spec.dropout > 0:
        rows.append(Layer(name="dropout_fc1", kind="Dropout", p=spec.dropout, output_shape=(flat,)))
    rows.append(
        Layer(
            name="fc1",
            kind="Linear",
            n_in=flat,
            n_out=spec.fc,
            output_shape=(spec.fc,),
            params=(flat + 1) * spec.fc,
        )
    )
    rows.append(Layer(name="relu_fc1", kind="ReLU", output_shape=(spec.fc,)))
    if spec.dropout > 0:
        rows.append(
            Layer(name="dropout_fc2", kind="Dropout", p=spec.dropout, output_shape=(spec.fc,))
        )
    rows.append(
        Layer(
            name="fc2",
            kind="Linear",
            n_in=spec.fc,
            n_out=spec.n_classes,
            output_shape=(spec.n_classes,),
            params=(spec.fc + 1) * spec.n_classes,
        )
    )
    return tuple(rows)


def count_params(spec: CNNSpec) -> int:
    """Weights and biases of the CNN, counted from the spec (no torch needed)."""
    return sum(row.params for row in layer_table(spec))


def fc_width_for(
    blocks: Sequence[ConvBlock], target: int, *, image_size: int = 28, n_classes: int = 10
) -> int:
    """The hidden FC width whose CNN's parameter count is nearest ``target``.

    The count is affine in the width: ``convs + (flat + 1) w + (w + 1) classes``, so the
    best width is one of the two integers around the exact solution (ties: the smaller).
    Dropout adds no parameters, so it does not enter.
    """
    target = _positive_int("target parameter count", target)
    base = CNNSpec(blocks=tuple(blocks), fc=1, image_size=image_size, n_classes=n_classes)
    c0 = count_params(base)
    slope = count_params(attrs.evolve(base, fc=2)) - c0
    exact = 1 + (target - c0) / slope
    candidates = {max(1, math.floor(exact)), max(1, math.ceil(exact))}
    return min(candidates, key=lambda w: (abs(count_params(attrs.evolve(base, fc=w)) - target), w))


def match_params(
    blocks: Sequence[ConvBlock],
    target: int,
    *,
    tolerance: float = 0.10,
    image_size: int = 28,
    n_classes: int = 10,
) -> CNNSpec:
    """A CNN (without dropout) with these conv ``blocks`` whose FC width brings its
    parameter count nearest ``target``; ValueError when even the best width is off by
    more than ``tolerance`` (relative), e.g. when the convolutions alone hold more than
    the target."""
    fc = fc_width_for(blocks, target, image_size=image_size, n_classes=n_classes)
    spec = CNNSpec(blocks=tuple(blocks), fc=fc, image_size=image_size, n_classes=n_classes)
    n = count_params(spec)
    if abs(n - target) > tolerance * target:
        raise ValueError(
            f"no FC width brings this CNN within {tolerance:.0%} of {target:,} parameters: the "
            f"nearest (fc={fc}) has {n:,}; use fewer or smaller conv channels"
        )
    return spec


def describe(spec: CNNSpec) -> str:
    """One line: e.g. ``conv5x5(1->16)+pool2 -> conv5x5(16->32)+pool2 -> fc 512->1299 -> 10``."""
    parts = []
    c_in = spec.in_channels
    for b in spec.blocks:
        pad = f",pad{b.padding}" if b.padding else ""
        pool = f"+pool{b.pool}" if b.pool > 1 else ""
        parts.append(f"conv{b.kernel}x{b.kernel}({c_in}->{b.channels}{pad}){pool}")
        c_in = b.channels
    c, h, w = feature_shape(spec)
    drop = f", dropout {spec.dropout:g} before both FC layers" if spec.dropout else ""
    cdrop = f", dropout {spec.conv_dropout:g} after each conv block" if spec.conv_dropout else ""
    return " -> ".join(parts) + f" -> fc {c * h * w}->{spec.fc} -> {spec.n_classes}{drop}{cdrop}"
