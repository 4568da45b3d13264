"""The CNN of the CNN study: a small record that describes it, the torch module built from
that record, its parameter count layer by layer (computed without building it), and the
choice of the fully connected width that brings its count to a target (the MLP's).

The network is ``conv -> maxpool -> ReLU`` blocks (the same as ``conv -> ReLU ->
maxpool``, cheaper), then a flatten, one hidden fully connected layer with ReLU, and the
10-way output layer. Dropout, when asked for, sits
before the hidden and before the output layer (``dropout``), and after each conv block
(``conv_dropout``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np

from fmlp.types import is_int

__all__ = [
    "CNNSpec",
    "ConvBlock",
    "build_cnn",
    "count_params",
    "describe",
    "fc_width_for",
    "feature_shape",
    "layer_table",
    "match_params",
    "module_param_count",
]


def _positive_int(name: str, value: object) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


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

    def as_dict(self) -> dict[str, Any]:
        return {
            "blocks": [attrs.asdict(b) for b in self.blocks],
            "fc": self.fc,
            "dropout": self.dropout,
            "conv_dropout": self.conv_dropout,
            "in_channels": self.in_channels,
            "image_size": self.image_size,
            "n_classes": self.n_classes,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CNNSpec:
        return cls(
            blocks=tuple(ConvBlock(**b) for b in d["blocks"]),
            fc=d["fc"],
            dropout=d["dropout"],
            conv_dropout=d["conv_dropout"],
            in_channels=d["in_channels"],
            image_size=d["image_size"],
            n_classes=d["n_classes"],
        )


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


def layer_table(spec: CNNSpec) -> list[dict[str, Any]]:
    """The network layer by layer, as the report describes it: one row per layer with its
    kind, kernel, channels or widths, output shape (C, H, W) or (features,) and
    parameter count (weights + biases)."""
    rows: list[dict[str, Any]] = []
    c_in = spec.in_channels
    sizes = _block_sizes(spec)
    for i, (b, (conv, pooled)) in enumerate(zip(spec.blocks, sizes), start=1):
        rows.append(
            {
                "name": f"conv{i}",
                "kind": "Conv2d",
                "kernel": b.kernel,
                "padding": b.padding,
                "stride": 1,
                "in": c_in,
                "out": b.channels,
                "output_shape": [b.channels, conv, conv],
                "params": (c_in * b.kernel * b.kernel + 1) * b.channels,
            }
        )
        if b.pool > 1:
            rows.append(
                {
                    "name": f"pool{i}",
                    "kind": "MaxPool2d",
                    "kernel": b.pool,
                    "stride": b.pool,
                    "output_shape": [b.channels, pooled, pooled],
                    "params": 0,
                }
            )
        rows.append(
            {
                "name": f"relu{i}",
                "kind": "ReLU",
                "output_shape": [b.channels, pooled, pooled],
                "params": 0,
            }
        )
        if spec.conv_dropout > 0:
            rows.append(
                {
                    "name": f"dropout_conv{i}",
                    "kind": "Dropout",
                    "p": spec.conv_dropout,
                    "output_shape": [b.channels, pooled, pooled],
                    "params": 0,
                }
            )
        c_in = b.channels
    c, h, w = feature_shape(spec)
    flat = c * h * w
    rows.append({"name": "flatten", "kind": "Flatten", "output_shape": [flat], "params": 0})
    if spec.dropout > 0:
        rows.append(
            {
                "name": "dropout_fc1",
                "kind": "Dropout",
                "p": spec.dropout,
                "output_shape": [flat],
                "params": 0,
            }
        )
    rows.append(
        {
            "name": "fc1",
            "kind": "Linear",
            "in": flat,
            "out": spec.fc,
            "output_shape": [spec.fc],
            "params": (flat + 1) * spec.fc,
        }
    )
    rows.append({"name": "relu_fc1", "kind": "ReLU", "output_shape": [spec.fc], "params": 0})
    if spec.dropout > 0:
        rows.append(
            {
                "name": "dropout_fc2",
                "kind": "Dropout",
                "p": spec.dropout,
                "output_shape": [spec.fc],
                "params": 0,
            }
        )
    rows.append(
        {
            "name": "fc2",
            "kind": "Linear",
            "in": spec.fc,
            "out": spec.n_classes,
            "output_shape": [spec.n_classes],
            "params": (spec.fc + 1) * spec.n_classes,
        }
    )
    return rows


def count_params(spec: CNNSpec) -> int:
    """Weights and biases of the CNN, counted from the spec (no torch needed)."""
    return sum(int(row["params"]) for row in layer_table(spec))


def fc_width_for(blocks: Sequence[ConvBlock], target: int, **spec_kw: Any) -> int:
    """The hidden FC width whose CNN's parameter count is nearest ``target``.

    The count is affine in the width: ``convs + (flat + 1) w + (w + 1) classes``, so the
    best width is one of the two integers around the exact solution.
    """
    target = _positive_int("target parameter count", target)
    base = CNNSpec(blocks=tuple(blocks), fc=1, **spec_kw)
    c0 = count_params(base)
    slope = count_params(attrs.evolve(base, fc=2)) - c0
    exact = 1 + (target - c0) / slope
    candidates = {max(1, math.floor(exact)), max(1, math.ceil(exact))}
    return min(candidates, key=lambda w: (abs(count_params(attrs.evolve(base, fc=w)) - target), w))


def match_params(
    blocks: Sequence[ConvBlock], target: int, *, tolerance: float = 0.10, **spec_kw: Any
) -> CNNSpec:
    """A CNN with these conv ``blocks`` whose FC width brings its parameter count nearest
    ``target``; raises ValueError when even the best width is off by more than
    ``tolerance`` (relative), e.g. when the convs alone hold more than the target."""
    fc = fc_width_for(blocks, target, **spec_kw)
    spec = CNNSpec(blocks=tuple(blocks), fc=fc, **spec_kw)
    n = count_params(spec)
    if abs(n - target) > tolerance * target:
        raise ValueError(
            f"no FC width brings this CNN within {tolerance:.0%} of {target:,} parameters: the "
            f"nearest (fc={fc}) has {n:,}; use fewer or smaller conv channels"
        )
    return spec


def describe(spec: CNNSpec) -> str:
    """One line: e.g. ``conv5x5(1->16)+pool2 -> conv5x5(16->32)+pool2 -> fc 512->1255 -> 10``."""
    parts = []
    c_in = spec.in_channels
    for b in spec.blocks:
        pad = f",pad{b.padding}" if b.padding else ""
        pool = f"+pool{b.pool}" if b.pool > 1 else ""
        parts.append(f"conv{b.kernel}x{b.kernel}({c_in}->{b.channels}{pad}){pool}")
        c_in = b.channels
    c, h, w = feature_shape(spec)
    drop = f" dropout {spec.dropout:g}" if spec.dropout else ""
    return " -> ".join(parts) + f" -> fc {c * h * w}->{spec.fc} -> {spec.n_classes}{drop}"


# ----------------------------------------------------------------------------- torch


@functools.cache
def _dropout_class() -> Any:
    import torch
    from torch import nn

    class Dropout(nn.Module):
        """Inverted dropout, as ``nn.Dropout``: in training, each element is kept with
        probability 1 - p and scaled by 1 / (1 - p); the identity in eval mode. The mask
        comes from ``torch.rand_like`` rather than ``bernoulli_``, whose CPU kernel took
        about four times as long and a fifth of a training step's time here."""

        def __init__(self, p: float) -> None:
            super().__init__()
            self.p = float(p)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if not self.training or self.p == 0.0:
                return x
            keep = torch.rand_like(x) >= self.p
            return x * keep.to(x.dtype) * (1.0 / (1.0 - self.p))

        def extra_repr(self) -> str:
            return f"p={self.p}"

    return Dropout


def build_cnn(spec: CNNSpec) -> Any:
    """The torch ``nn.Sequential`` of ``spec``, initialized from torch's global generator
    (seed it, e.g. inside ``torch.random.fork_rng``). Typed Any to keep torch optional
    for importers of this module."""
    from torch import nn

    Dropout = _dropout_class()

    layers: list[nn.Module] = []
    c_in = spec.in_channels
    for b in spec.blocks:
        # max-pool before ReLU: the same function and gradient as ReLU then max-pool
        # (both are monotone), with the ReLU on a pool^2 times smaller tensor.
        layers.append(nn.Conv2d(c_in, b.channels, b.kernel, padding=b.padding))
        if b.pool > 1:
            layers.append(nn.MaxPool2d(b.pool))
        layers.append(nn.ReLU(inplace=True))
        if spec.conv_dropout > 0:
            layers.append(Dropout(spec.conv_dropout))
        c_in = b.channels
    c, h, w = feature_shape(spec)
    layers.append(nn.Flatten())
    if spec.dropout > 0:
        layers.append(Dropout(spec.dropout))
    layers += [nn.Linear(c * h * w, spec.fc), nn.ReLU(inplace=True)]
    if spec.dropout > 0:
        layers.append(Dropout(spec.dropout))
    layers.append(nn.Linear(spec.fc, spec.n_classes))
    return nn.Sequential(*layers)


def module_param_count(module: Any) -> int:
    """Parameters of a built torch module, counted by torch."""
    return sum(int(p.numel()) for p in module.parameters())
