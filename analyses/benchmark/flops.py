"""The exact FLOPs of a training step and of an epoch: the shapes of the matrix products
of one SGD step of an MLP (3 forward, 3 weight gradients, 2 input gradients for three
layers) and their 2 m k n FLOPs. No timing here; ``gemm`` times these shapes."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import attrs


def layer_dims(sizes: Sequence[int]) -> list[tuple[int, int]]:
    """(fan_in, fan_out) of every layer."""
    return list(itertools.pairwise(sizes))


@attrs.frozen
class GemmShape:
    """One matrix product of a training step: (m, k) @ (k, n), operands laid out as the
    step has them (``trans_a``: the left operand is the transpose of a C-contiguous
    array; ``trans_b`` the same for the right one)."""

    name: str
    m: int
    k: int
    n: int
    trans_a: bool = False
    trans_b: bool = False

    @property
    def flops(self) -> int:
        """2 m k n: a multiply and an add per term."""
        return 2 * self.m * self.k * self.n


def step_gemms(sizes: Sequence[int], batch: int) -> list[GemmShape]:
    """The matrix products of one SGD step on ``batch`` rows: for each layer l the forward
    a_{l-1} @ W_l and the weight gradient a_{l-1}^T @ dz_l; for every layer but the first
    the input gradient dz_l @ W_l^T. 8 products for 3 layers."""
    dims = layer_dims(sizes)
    fwd = [GemmShape(f"a{l}@W{l + 1}", batch, i, o) for l, (i, o) in enumerate(dims)]
    dw = [
        GemmShape(f"a{l}^T@dz{l + 1}", i, batch, o, trans_a=True) for l, (i, o) in enumerate(dims)
    ]
    dx = [
        GemmShape(f"dz{l + 1}@W{l + 1}^T", batch, o, i, trans_b=True)
        for l, (i, o) in enumerate(dims)
        if l > 0
    ]
    return fwd + dw + dx


def step_flops(sizes: Sequence[int], batch: int) -> int:
    """Exact FLOPs (2 m k n per product) of the matrix products of one step."""
    return sum(g.flops for g in step_gemms(sizes, batch))


def batch_sizes_of_epoch(n: int, batch: int) -> list[int]:
    """The sizes of an epoch's mini-batches: full ones and a last partial one."""
    full, rest = divmod(n, batch)
    return [batch] * full + ([rest] if rest else [])


def epoch_flops(sizes: Sequence[int], n: int, batch: int) -> int:
    """Exact FLOPs of the matrix products of one epoch over ``n`` samples."""
    full, rest = divmod(n, batch)
    return full * step_flops(sizes, batch) + (step_flops(sizes, rest) if rest else 0)
